"""`carkey vboard`: the virtual board, a pty that behaves like an ESP32's USB serial port."""

import argparse
import signal
import sys
import threading

from ..vboard import VirtualBoard
from . import out as _out

EPILOG = """\
The board's filesystem is DIR: "/" on the board is DIR on the host, so /main.py,
/boot.py and /lib live there and survive restarts. Talk to it as to a real ESP32:

  carkey vboard --dir /tmp/board --link /tmp/carkey-board &
  mpremote connect /tmp/carkey-board fs ls
  carkey deploy --port /tmp/carkey-board --board virtual
  mpremote connect /tmp/carkey-board repl        (Ctrl-] leaves mpremote)

The module path is /lib, then boards/virtual_hw and boards (read-only): the virtual
radio, the PN532 pty UART, the car body. --pn532 and --air tell them where to connect;
--pn532 is a path on this computer (the board's own "/" is DIR), opened here at every
start of the board. What the virtual hardware reports to the host (a device that
cannot be opened, a radio task that stopped) is printed here as `carkey: board: ...`.

Ctrl-D at the board's prompt is a soft reset: boot.py, then main.py, run again in a
fresh interpreter. Runs until Ctrl-C or SIGTERM; see docs/VBOARD.md.
"""


def do_vboard(args):
    env = {}
    if args.pn532:
        env["CARKEY_PN532"] = args.pn532
    if args.air:
        env["CARKEY_AIR"] = args.air
    def on_report(text):
        # What the board's virtual hardware says to the host, e.g. a radio task that died:
        # visible here even when nobody watches the board's REPL.
        print(f"carkey: board: {text}", file=sys.stderr, flush=True)

    board = VirtualBoard(args.dir, link_path=args.link, heapsize=args.heapsize, env=env, on_report=on_report)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        board.start()
        _out(f"virtual board on {board.port}" + (f" (link {args.link})" if args.link else ""))
        _out(f"flash directory {board.flash_dir}; Ctrl-C stops the board")
        while not stop.wait(0.5):
            if board.error is not None:
                raise board.error
    finally:
        board.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    _out("virtual board stopped")
    return 0


def register(sub):
    p = sub.add_parser(
        "vboard",
        help="run the firmware on a virtual ESP32 behind a pty (mpremote and carkey deploy work on it)",
        description="Run a virtual board: the MicroPython Unix port behind a pty that speaks the ESP32 "
        "USB-serial REPL protocol (REPL, raw REPL, raw-paste, Ctrl-C, soft reset).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dir", required=True, metavar="DIR", help="the board's flash directory (created if missing)")
    p.add_argument("--link", metavar="PATH", help="make PATH a symlink to the pty (it must not exist yet)")
    p.add_argument("--heapsize", metavar="SIZE", default=None,
                   help="MicroPython heap, e.g. 64k for a small ESP32 build (default: the port's)")
    p.add_argument("--pn532", metavar="PTY",
                   help="the PN532 stand-in's pty or link on this computer (`carkey nfc-sim --link`)")
    p.add_argument("--air", metavar="HOST:PORT", help="the virtual air for BLE (sets CARKEY_AIR on the board)")
    p.set_defaults(func=do_vboard)
