"""`carkey fob …`: the key fob firmware, run in the MicroPython Unix port over a state directory."""

import json

from .. import envelope as env
from ..errors import Refused
from ..tcp_link import FRAMINGS, parse_endpoint
from ..vfob import VirtualFob, parse_trust
from ..wire import ROLES
from . import out

PRESS_COMMANDS = ("unlock", "lock", "trunk")


def do_init(args):
    pub = VirtualFob(args.state).init()
    out(f"fob credential created in {args.state} (the private key stays there)")
    out(f"credential public key: {pub.hex()}")


def do_identity(args):
    ident = VirtualFob(args.state).identity()
    if args.json:
        out(json.dumps({"credential_public_key": ident["credential_public_key"]}))
        return
    out(f"credential public key: {ident['credential_public_key']}")
    for car in ident["cars"]:
        out(f"trusts reader group {car['group_id']} (key {car['reader_public_key'][:18]}...)")
    n, granted, refused = ident["counters"]
    out(f"transactions: {n} ({granted} granted, {refused} refused)")


def do_trust(args):
    group_id, reader_key = parse_trust(args.group_id, args.reader_public_key)
    VirtualFob(args.state).trust(group_id, reader_key)
    out(f"trusting reader group {group_id.hex()}")


def do_serve(args):
    host, port = parse_endpoint(args.tcp)

    def on_listening(addr):
        out(f"fob listening on {addr[0]}:{addr[1]} ({args.framing} framing)")

    VirtualFob(args.state).serve(host, port, args.framing, args.connections, env.COMMANDS[args.command],
                                 on_listening, lambda c: out(c.line()))


def do_provision(args):
    from ..keydir import KeyDir
    from ..usb_car import UsbCar
    from ..usb_fob import UsbFob
    from ..vfob import provision

    label = provision(UsbFob(args.port), UsbCar(args.car_port), KeyDir(args.keys), args.role, args.name)
    out(f"{label['name']}: enrolled as {label['role']} (key slot {label['slot']}), trusts car {label['group_id']}")


# What the fob showed, in words.
SIGNALS = {
    "granted": "granted (one long glow)",
    "refused-key": "refused: key unknown, revoked or suspended (2 blinks)",
    "refused-time": "refused: outside the key's time window (3 blinks)",
    "locked-out": "refused: locked out after failures (4 blinks)",
    "refused": "refused (5 blinks)",
    "car-not-found": "car not found (3 slow blinks)",
}


def do_import_share(args):
    from .. import documents
    from ..errors import CarkeyError
    from ..keydir import parse_hex

    try:
        doc = open(args.file, "rb").read()
    except OSError as e:
        raise CarkeyError(f"{args.file}: {e.strerror}") from None
    try:
        share = documents.parse_share(doc)
    except documents.DocumentError as e:
        raise CarkeyError(f"{args.file}: not a share document ({e})") from None
    reader_key = parse_hex(args.reader_public_key, 65, "--reader-public-key")
    if bool(args.port) == bool(args.state):
        raise CarkeyError("say which fob: --port P (a board) or --state DIR (the fob on this computer)")
    if args.port:
        from ..usb_fob import UsbFob

        fob_pub = bytes.fromhex(UsbFob(args.port).identity()["credential_public_key"])
        target = UsbFob(args.port)
    else:
        target = VirtualFob(args.state)
        fob_pub = bytes.fromhex(target.identity()["credential_public_key"])
    if share.friend_pub != fob_pub:
        raise CarkeyError(f"{args.file} shares the car with another key, not with this fob")
    target.import_share(share.group_id, reader_key, doc)
    out(f"share for reader group {share.group_id.hex()} stored: the fob presents it at its next press")


def do_press(args):
    from ..usb_fob import UsbFob

    press = UsbFob(args.port, timeout=args.timeout).press(args.command)
    kind = press.get("kind") or "none"
    battery = f", battery {press['battery_mv']} mV" if press.get("battery_mv") is not None else ""
    out(f"{args.command}: {SIGNALS.get(press['signal'], press['signal'])} [kind={kind}{battery}]")
    if not press["granted"]:
        raise Refused(f"{args.command} not granted ({press['outcome']})")


def register(sub):
    fob = sub.add_parser("fob", help="the key fob firmware (run on this computer, or on a board)")
    fsub = fob.add_subparsers(dest="fob_command", metavar="ACTION", required=True)

    p = fsub.add_parser("init", help="make the fob's credential key pair in a state directory (the fob's flash)")
    p.add_argument("--state", required=True, metavar="DIR")
    p.set_defaults(func=do_init)

    p = fsub.add_parser("identity", help="show the fob's credential public key")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help='{"credential_public_key": HEX65}')
    p.set_defaults(func=do_identity)

    p = fsub.add_parser("trust", help="trust a car (reader group) by its public key")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--reader-public-key", required=True, metavar="HEX65", help="from `carkey reader identity`")
    p.add_argument("--group-id", required=True, metavar="HEX16")
    p.set_defaults(func=do_trust)

    p = fsub.add_parser("serve", help="answer readers over TCP, one transaction per connection")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--tcp", required=True, metavar="HOST:PORT", help="where to listen (port 0: any free port)")
    p.add_argument("--framing", choices=FRAMINGS, default="lp", help="raw: one APDU per write; lp: 2-byte length prefix")
    p.add_argument("--command", choices=PRESS_COMMANDS, default="unlock", help="what the fob asks each car for")
    p.add_argument("--connections", type=int, default=None, metavar="N", help="stop after N connections")
    p.set_defaults(func=do_serve)

    p = fsub.add_parser("provision", help="make a fob on USB a key of a car on USB (the owner signs its enrolment)")
    p.add_argument("--port", required=True, metavar="FOB", help="the fob's serial port")
    p.add_argument("--car-port", required=True, metavar="CAR", help="the car's serial port")
    p.add_argument("--keys", required=True, metavar="OWNERDIR", help="the owner's key directory")
    p.add_argument("--role", default="driver", choices=ROLES)
    p.add_argument("--name", default=None, metavar="TEXT", help="a label for this fob in OWNERDIR/fobs.json")
    p.set_defaults(func=do_provision)

    p = fsub.add_parser("import-share", help="give the fob an owner's share document instead of enrolling it")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="FOB", help="the fob's serial port")
    where.add_argument("--state", metavar="DIR", help="the fob firmware on this computer")
    p.add_argument("--file", required=True, metavar="FILE", help="from `carkey keys share --credential FOB.pem --out FILE`")
    p.add_argument("--reader-public-key", required=True, metavar="HEX65", help="the car's reader key (the fob trusts it)")
    p.set_defaults(func=do_import_share)

    p = fsub.add_parser("press", help="press the fob's button over USB; exit 0 only if the car granted")
    p.add_argument("--port", required=True, metavar="P")
    p.add_argument("command", choices=PRESS_COMMANDS)
    p.add_argument("--timeout", type=float, default=30.0, metavar="S")
    p.set_defaults(func=do_press)
