"""`carkey deploy`: install the compiled firmware and the board description on a board over USB serial."""

import argparse
import json
import sys

from .. import deploy as lib
from . import out as _out

EPILOG = f"""\
What is installed: every firmware module compiled to /lib/carkey/**.mpy, the board
description as /board.py, and /boot.py and /main.py when the firmware has them.
Only files whose SHA-256 differs on the board are copied, files left in /lib/carkey
by older versions are removed, and every copied file is hashed again on the board.
Each file is copied to a temporary name and put in place only when every copy matches,
so an interrupted deploy (Ctrl-C, a pulled cable) leaves the previous firmware whole.

Reaching the board's REPL stops its application; every deploy, also --dry-run, a
refused one or a Ctrl-C, ends with a soft reset that starts it again (--no-restart
leaves the board at its REPL instead).

examples:
  carkey deploy --port /dev/ttyUSB0 --board esp32_devkitc
  carkey deploy --port /tmp/carkey-board --board virtual --dry-run
  carkey deploy --port /dev/ttyACM0 --board esp32_s3 --json --no-restart

exit codes: 0 done, 1 error, 2 bad usage, 4 port missing, 5 port busy,
  6 no MicroPython REPL answered, 7 not enough space, 8 hash mismatch after copying,
  130 interrupted (the message says what the board holds and what to run)

boards: {', '.join(lib.BOARDS)}
"""


def _progress_ui(enabled):
    """A rich progress bar on stderr, or a no-op callback."""
    if not enabled:
        return None, None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), transient=True)
    state = {"total": None, "done_before": 0, "current": 0}

    def callback(event, **info):
        if event == "plan":
            progress.start()
            state["total"] = progress.add_task(f"copying {info['files']} file(s)", total=info["bytes"] or 1)
        elif event == "file":
            state["done_before"] += state["current"]
            state["current"] = 0
            progress.update(state["total"], description=info["dest"])
        elif event == "chunk":
            state["current"] = info["done"]
            progress.update(state["total"], completed=state["done_before"] + info["done"])
        elif event == "verify":
            progress.update(state["total"], description="verifying hashes on the board")

    return progress, callback


def _table(report):
    from rich.console import Console
    from rich.table import Table

    shown = [f for f in report.files if f.action != "unchanged"]
    title = f"{'would change' if report.dry_run else 'deployed'} on {report.port} ({report.board})"
    table = Table(title=title)
    table.add_column("file")
    table.add_column("bytes", justify="right")
    table.add_column("action")
    for f in shown:
        table.add_row(f.dest, str(f.size) if f.action != "removed" else "", f.action)
    console = Console()
    if shown:
        console.print(table)
    unchanged = len(report.files) - len(shown)
    verb = "would copy" if report.dry_run else "copied"
    free = f", {report.free_bytes} bytes free" if report.free_bytes is not None else ""
    console.print(f"{verb} {len(report.copied)} file(s) ({report.bytes_copied} bytes), removed "
                  f"{len(report.removed)}, {unchanged} unchanged{free}, {report.seconds:.2f} s")
    console.print("the board's application was started again" if report.restarted else
                  "the board waits at its REPL, application stopped (press reset or Ctrl-D there to start it)")


def do_deploy(args):
    progress, callback = _progress_ui(not args.json and sys.stderr.isatty())
    try:
        report = lib.deploy(args.port, args.board, dry_run=args.dry_run, restart=not args.no_restart,
                            progress=callback,
                            timeout=args.timeout)
    finally:
        if progress is not None:
            progress.stop()
    if args.json:
        _out(json.dumps(report.as_dict()))
    else:
        _table(report)
    return 0


def register(sub):
    p = sub.add_parser(
        "deploy",
        help="compile the firmware and copy what changed to a board (mpremote over USB serial)",
        description="Compile the firmware with mpy-cross and install it on a board running MicroPython: "
        "compare hashes, copy only what changed, verify.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", required=True, metavar="PORT",
                   help="serial port of the board (/dev/ttyUSB0, /dev/ttyACM0, or the pty of `carkey vboard`)")
    p.add_argument("--board", required=True, choices=lib.BOARDS, metavar="BOARD",
                   help="board description to install: " + ", ".join(lib.BOARDS))
    p.add_argument("--dry-run", action="store_true", help="compare with the board and show what would change; copy nothing")
    p.add_argument("--no-restart", action="store_true",
                   help="leave the board at its REPL, application stopped (default: soft-reset so main.py runs)")
    p.add_argument("--reset", action="store_true", help=argparse.SUPPRESS)  # older scripts: now the default
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts) instead of the table")
    p.add_argument("--timeout", type=float, default=10, metavar="S",
                   help="seconds to wait for the board's REPL (default 10)")
    p.set_defaults(func=do_deploy)
