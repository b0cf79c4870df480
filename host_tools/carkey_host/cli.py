"""The `carkey` command line: a thin layer over the carkey_host library."""

import argparse
import sys

from . import __version__


def build_parser():
    parser = argparse.ArgumentParser(prog="carkey", description="carkey: an open digital car key.")
    parser.add_argument("--version", action="version", version="carkey " + __version__)
    parser.add_argument("--verbose", action="store_true", help="show tracebacks on errors")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
