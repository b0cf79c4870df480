"""The `carkey` command line: a thin layer over the carkey_host library.

Each command group lives in its own module of this package and adds itself to the
parser through `register(subparsers)`; the library does the work, so tests call the
library directly and the CLI only parses, prints and maps errors to exit codes.

Exit codes (README's table): 0 success, 1 operational error, 2 bad usage, 3 refused by
the car, 4 port missing, 5 port busy, 6 nothing answered, 7 no space, 8 hash mismatch,
130 interrupted (Ctrl-C). `main` is the one place that turns an error into its exit
code and its message: `carkey: message` on stderr and, when the command was given
--json, also {"error": message, "exit_code": N} on stdout, so a script reads every
outcome as JSON.
"""

import argparse
import importlib
import json
import sys

from .. import __version__
from ..errors import EXIT_INTERRUPTED, CarkeyError

# Command groups, in the order `carkey --help` lists them.
GROUPS = ("demo", "owner", "car", "reader", "phone", "card", "nfcsim", "air", "vboard", "deploy", "flash", "bench")

GROUPS += ("fob",)  # the key fob: its firmware on this computer and on boards (cli/fob.py)


def out(text=""):
    print(text, flush=True)


class Parser(argparse.ArgumentParser):
    """argparse, keeping its usage error (exit 2) for the JSON answer."""

    usage_error = None

    def error(self, message):
        Parser.usage_error = f"{self.prog}: {message}"
        super().error(message)


def _fail(message, code, as_json):
    sys.stdout.flush()
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), flush=True)
    print(f"carkey: {message}", file=sys.stderr, flush=True)
    return code


def build_parser():
    parser = Parser(
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
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        if e.code == 2 and "--json" in argv and Parser.usage_error:
            print(json.dumps({"error": Parser.usage_error, "exit_code": 2}), flush=True)
        raise
    if args.command is None:
        parser.print_help()
        return 2
    as_json = bool(getattr(args, "json", False))
    try:
        code = args.func(args)
    except CarkeyError as e:
        if args.verbose:
            _fail(str(e), e.exit_code, as_json)
            raise
        return _fail(str(e), e.exit_code, as_json)
    except KeyboardInterrupt:
        # Ctrl-C is how servers and `log --follow` stop: no message. A command that can
        # leave something half-done (deploy) turns it into a CarkeyError that says what
        # happened and what to run next, with this same exit code.
        return EXIT_INTERRUPTED
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
