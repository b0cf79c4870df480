"""Heap each firmware module holds once imported, in the order that charges every module
only for itself (its imports loaded before it): the per-module table of docs/PERFORMANCE.md.

The order comes from the modules' own top-level imports (read with `ast`); each module
is then imported in one MicroPython process, after gc.collect(), and charged the
growth of gc.mem_alloc().
"""

import ast
import json
from pathlib import Path

from . import runner


def _source(name, roots):
    rel = Path(*name.split("."))
    for root in roots:
        for cand in (root / rel.with_suffix(".py"), root / rel / "__init__.py"):
            if cand.exists():
                return cand
    return None


def _imports(path):
    out = []
    for node in ast.parse(path.read_text()).body:  # top level only: what loading the module imports
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def import_order(modules, roots):
    """`modules` ordered so that each comes after the modules it imports at load time."""
    wanted = set(modules)
    order, done = [], set()

    def visit(name, stack=()):
        if name in done or name in stack:
            return
        src = _source(name, roots)
        if src is not None:
            for dep in _imports(src):
                parts = dep.split(".")
                for i in range(1, len(parts) + 1):  # a package before its submodules
                    if ".".join(parts[:i]) in wanted:
                        visit(".".join(parts[:i]), stack + (name,))
        done.add(name)
        order.append(name)

    for m in sorted(modules):
        visit(m)
    return [m for m in order if m in wanted]


def module_heap(modules, roots, env):
    """[(module, bytes)] in import order, measured in one MicroPython process."""
    order = import_order(modules, roots)
    prog = "import gc, json\nout = []\n"
    for m in order:
        prog += f"gc.collect()\na = gc.mem_alloc()\nimport {m}\ngc.collect()\nout.append(({m!r}, gc.mem_alloc() - a))\n"
    prog += "print(json.dumps(out))\n"
    proc = runner.run("-c", prog, env=env, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-1500:])
    return [tuple(x) for x in json.loads(proc.stdout.strip().splitlines()[-1])]
