"""`carkey nfc-sim`: a PN532 stand-in on a pty with the simulated phone on its antenna."""

import argparse

from ..errors import CarkeyError
from ..keydir import KeyDir
from . import out as _out
from .phone import _parse_command


def do_nfc_sim(args):
    from ..phone import Phone
    from ..pn532_sim import serve_phone

    phone = Phone(KeyDir(args.keys), commands=[_parse_command(c) for c in args.command])

    def on_ready(sim):
        where = f" (link {sim.link})" if sim.link else ""
        _out(f"PN532 stand-in on {sim.path}{where}; phone on the antenna"
             f"{', express mode (waits for ECP)' if args.express else ''}")

    def on_tap(number, txn):
        _out(f"tap {number}: {txn.describe()}")

    try:
        serve_phone(phone, link=args.link, requires_ecp=args.express, taps=args.taps, on_ready=on_ready,
                    on_tap=on_tap)
    except OSError as e:
        raise CarkeyError(f"cannot open the stand-in: {e}") from None


def _positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return int(text)


def register(sub):
    p = sub.add_parser("nfc-sim", help="a PN532 stand-in on a pty with the simulated phone on its antenna")
    p.add_argument("--keys", required=True, metavar="DIR", help="the phone's key directory (carkey phone init)")
    p.add_argument("--link", metavar="PATH", help="also make PATH a symlink to the pty")
    p.add_argument("--command", action="append", default=[], metavar="CMD[=ARG]",
                   help="request this in every transaction (as `phone serve`); repeatable")
    p.add_argument("--express", action="store_true", help="answer polls only after an ECP frame, as express mode")
    p.add_argument("--taps", type=_positive, default=None, metavar="N", help="stop after N transactions")
    p.set_defaults(func=do_nfc_sim)
