"""Which firmware modules a board runs: the car's application, or the key fob's and only what it imports.

A board description says its KIND (boards/README.md). A car gets every module but the
fob's package. A fob gets the import closure of carkey.fob.app: every `import carkey…`
and `from carkey… import …` statement (at any depth, so imports made inside functions
count) of every module reached, plus the package __init__ files on the way. Read from
the sources with `ast`, so nothing is executed.
"""

import ast
from pathlib import Path

FOB_ROOTS = ("carkey.fob.app",)


def board_kind(board_file: Path) -> str:
    tree = ast.parse(Path(board_file).read_text(), filename=str(board_file))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "KIND" for t in node.targets):
            return ast.literal_eval(node.value)
    return "car"


def _module_file(package_dir: Path, module: str) -> Path | None:
    parts = module.split(".")[1:]  # under carkey/
    base = package_dir.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for alias in node.names:  # `from carkey.fob import state` names a module
                yield f"{node.module}.{alias.name}"


def closure(package_dir: Path, roots=FOB_ROOTS) -> set[str]:
    """Paths (relative to the carkey package, posix, .py) of every module the roots need."""
    package_dir = Path(package_dir)
    seen: set[Path] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module != "carkey" and not module.startswith("carkey."):
            continue
        path = _module_file(package_dir, module)
        if path is None or path in seen:
            continue
        seen.add(path)
        todo.extend(_imports(path))
        # Importing a.b.c runs a/__init__ and a/b/__init__ first.
        parts = module.split(".")
        for i in range(1, len(parts)):
            todo.append(".".join(parts[:i]))
    return {p.relative_to(package_dir).as_posix() for p in seen}


def wanted(board_file: Path, package_dir: Path):
    """A predicate on package-relative source paths: does this board get that module?"""
    if board_kind(board_file) == "fob":
        keep = closure(package_dir)
        return lambda rel: rel in keep
    return lambda rel: not rel.startswith("fob/")
