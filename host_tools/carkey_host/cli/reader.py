"""`carkey reader …`: the car's reader firmware, run in the MicroPython Unix port over a state directory."""

import json

from ..errors import Refused, UsageError
from ..keydir import load_public_key_pem
from ..tcp_link import FRAMINGS, parse_endpoint
from ..vcar import ROLES, VirtualCar
from . import out


def do_init(args):
    ident = VirtualCar(args.state).init()
    out(f"reader identity created in {args.state} (the private key stays there)")
    out(f"reader public key: {ident['reader_public_key']}")
    out(f"group id: {ident['group_id']}")
    out(f"next: carkey reader enroll --state {args.state} --credential PHONE_DIR/credential.pub.pem --role owner")


def do_identity(args):
    ident = VirtualCar(args.state).identity()
    if args.json:
        out(json.dumps({k: ident[k] for k in ("reader_public_key", "group_id", "sub_id")}))
    else:
        out(f"reader public key: {ident['reader_public_key']}")
        out(f"group id: {ident['group_id']}")
        out(f"sub id: {ident['sub_id']}")


def do_enroll(args):
    pub = load_public_key_pem(args.credential)
    key = VirtualCar(args.state).enroll(pub, args.role, profile=args.profile.encode("ascii", "replace"))
    if args.json:
        out(json.dumps(key))
    else:
        out(f"enrolled key slot {key['slot']} as {key['role']} (entitlements 0x{key['entitlements']:04x})")


def do_connect(args):
    host, port = parse_endpoint(args.tcp)
    if port == 0:
        raise UsageError("--tcp needs the port the user device listens on")
    sequence = [s.strip() for s in args.sequence.split(",") if s.strip()]
    txns, _ = VirtualCar(args.state).connect(host, port, args.framing, sequence,
                                              on_txn=lambda t: out(t.line()))
    refused = [t.number for t in txns if not t.granted]
    if refused:
        raise Refused(f"transaction(s) {', '.join(map(str, refused))} refused")


def do_log(args):
    records = VirtualCar(args.state).log()
    if args.json:
        out(json.dumps(records))
        return
    from ..auditlog import format_record

    for rec in records:
        out(format_record(rec))


def register(sub):
    reader = sub.add_parser("reader", help="the car's reader firmware, run on this computer (virtual car)")
    rsub = reader.add_subparsers(dest="reader_command", metavar="ACTION", required=True)

    p = rsub.add_parser("init", help="make a new reader identity in a state directory (the car's flash)")
    p.add_argument("--state", required=True, metavar="DIR")
    p.set_defaults(func=do_init)

    p = rsub.add_parser("identity", help="show the reader's public identity (what phones trust)")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help='{"reader_public_key", "group_id", "sub_id"} as hex')
    p.set_defaults(func=do_identity)

    p = rsub.add_parser("enroll", help="enroll a credential public key with a role")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--credential", required=True, metavar="FILE.pem", help="SubjectPublicKeyInfo PEM (P-256)")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--profile", default="", metavar="K=V;...",
                   help="driver profile sent on the car bus after this key unlocks, e.g. 'seat=3;mirror=left' "
                   "(at most 128 ASCII bytes, docs/CARBUS.md)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=do_enroll)

    p = rsub.add_parser("connect", help="run transactions against a listening user device (one connection each)")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--tcp", required=True, metavar="HOST:PORT", help="where the user device listens")
    p.add_argument("--framing", choices=FRAMINGS, default="lp", help="raw: one APDU per write; lp: 2-byte length prefix")
    p.add_argument("--sequence", default="standard", metavar="KIND,...",
                   help="standard or fast per transaction, e.g. standard,fast,fast (exit 0 only if all granted)")
    p.set_defaults(func=do_connect)

    p = rsub.add_parser("log", help="print the reader's audit log")
    p.add_argument("--state", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=do_log)
