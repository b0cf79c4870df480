"""`carkey bench --port P`: the firmware benchmark on a board itself."""

import json

from . import out


def do_bench(args):
    from ..bench import TARGETS_ESP32_MS, run_on_board

    if args.runs < 1:
        from ..errors import UsageError

        raise UsageError("--runs must be 1 or more")
    results = run_on_board(args.port, args.operations or None, args.runs, progress=out)
    if args.json:
        out(json.dumps(results, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"carkey firmware benchmark on the board at {args.port} (medians)")
    for col in ("operation", "board ms", "min ms", "target", "alloc/run"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for name, r in results.items():
        target = TARGETS_ESP32_MS.get(name)
        verdict = "-" if target is None else f"<= {target} {'met' if r['board_ms'] <= target else 'MISSED'}"
        table.add_row(name, f"{r['board_ms']:.2f}", f"{r['min_ms']:.2f}", verdict,
                      "-" if r["alloc_bytes"] < 0 else f"{r['alloc_bytes']} B")
    Console().print(table)


def register(sub):
    p = sub.add_parser("bench", help="run the firmware benchmark on a board (after carkey deploy)")
    p.add_argument("--port", required=True, metavar="P", help="the board's USB serial port (or a carkey vboard link)")
    p.add_argument("--runs", type=int, default=5, metavar="N", help="timed runs per operation (median reported)")
    p.add_argument("--json", action="store_true")
    p.add_argument("operations", nargs="*", help="operations (default: all; see firmware/carkey/bench.py)")
    p.set_defaults(func=do_bench)
