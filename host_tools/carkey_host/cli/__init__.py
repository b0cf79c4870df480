"""The `carkey` command line: a thin layer over the carkey_host library.

Each command group lives in its own module of this package and adds itself to the
parser through `register(subparsers)`; the library does the work, so tests call the
library directly and the CLI only parses, prints and maps errors to exit codes.

Exit codes: 0 success, 1 operational error (printed as `carkey: message`), 2 bad usage,
3 a transaction or check that ran but was refused.
"""

import argparse
import importlib
import sys

from .. import __version__
from ..errors import CarkeyError

# Command groups, in the order `carkey --help` lists them.
GROUPS = ("demo", "owner", "car", "reader", "phone", "card", "nfcsim", "air", "vboard", "deploy", "flash", "bench")


def out(text=""):
    print(text, flush=True)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="carkey",
        description="carkey: an open digital car key. Firmware for an ESP32 reader, a simulated phone, tools.",
    )
    parser.add_argument("--version", action="version", version="carkey " + __version__)
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except CarkeyError as e:
        sys.stdout.flush()
        print(f"carkey: {e}", file=sys.stderr)
        if args.verbose:
            raise
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
