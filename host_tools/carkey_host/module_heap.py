"""Heap each firmware module holds once imported, in the order that charges every module
only for itself (its imports loaded before it): the per-module table of docs/PERFORMANCE.md.

The order comes from the modules' own top-level imports (read with `ast`); each module
is then imported in one MicroPython process, after gc.collect(), and charged the
growth of gc.mem_alloc() less the growth of the interpreter's string pool, which is
reported as one row of its own (STRING_POOL).
"""

import ast
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


# The row that charges the interpreter's string pool (qstrs: every name, attribute
# and file name the loaded code uses). The pool grows in blocks, each twice the last,
# so a module that happens to need the next block would otherwise be charged for all
# of it; the pool is reported once instead.
STRING_POOL = "(string pool: names of every module)"


def module_heap(modules, roots, env, cwd=None):
    """[(module, bytes)] in import order, measured in one MicroPython process: each
    module's growth of the heap less the growth of the string pool, then one
    STRING_POOL row with the pool's growth over all of them."""
    order = import_order(modules, roots)
    prog = "import gc, micropython\ngc.collect()\nprint('@@', '', gc.mem_alloc())\nmicropython.qstr_info()\n"
    for m in order:
        prog += (f"gc.collect()\na = gc.mem_alloc()\nimport {m}\ngc.collect()\n"
                 f"print('@@', {m!r}, gc.mem_alloc() - a)\nmicropython.qstr_info()\n")
    proc = runner.run("-c", prog, env=env, cwd=cwd, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-1500:])
    rows, pools = [], []
    for line in proc.stdout.splitlines():
        if line.startswith("@@ "):
            _, name, grew = line.split(" ")
            rows.append([name, int(grew)])
        elif line.startswith("qstr pool:"):
            pools.append(int(line.rsplit("n_total_bytes=", 1)[1]))
    if len(pools) != len(rows) or not rows:
        raise RuntimeError("unexpected output: " + proc.stdout[-1500:])
    out = []
    for i in range(1, len(rows)):
        out.append((rows[i][0], rows[i][1] - (pools[i] - pools[i - 1])))
    out.append((STRING_POOL, pools[-1] - pools[0]))
    return out
