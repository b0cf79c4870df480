"""`carkey phone …`: the simulated phone (a user device holding a credential)."""

import time

from .. import envelope as env
from ..errors import CarkeyError, UsageError
from ..keydir import KeyDir, parse_hex
from ..tcp_link import FRAMINGS, parse_endpoint
from ..wire import codes
from . import out as _out


# --- phone ----------------------------------------------------------------------


def do_phone_init(args):
    pub = KeyDir(args.keys).init(force=args.force)
    _out(f"credential created in {args.keys}")
    _out(f"public key: {pub.hex()}")
    _out(f"your own car: `carkey provision --port P --keys {args.keys}` makes this phone its owner")
    _out(f"a friend's car: send {args.keys}/credential.pub.pem to its owner, who runs "
         "`carkey keys share --credential credential.pub.pem --role driver --out friend.share ...`; "
         f"then run `carkey phone import-share --keys {args.keys} --file friend.share`")


def do_phone_trust(args):
    keys = KeyDir(args.keys)
    keys.trust(parse_hex(args.group_id, 16, "--group-id"), parse_hex(args.reader_public_key, 65, "--reader-public-key"))
    _out(f"trusting reader group {args.group_id.lower()}")


def do_phone_import_share(args):
    from .. import documents
    from .. import share_file as sf
    from ..ble_phone import device_name

    try:
        data = open(args.file, "rb").read()
    except OSError as e:
        raise CarkeyError(f"{args.file}: {e.strerror}") from None
    keys = KeyDir(args.keys)
    if data[:1] == bytes([documents.SHARE_TAG]):
        # A bare share document carries no car identity: only for a car this phone trusts.
        try:
            share = documents.parse_share(data)
        except documents.DocumentError as e:
            raise CarkeyError(f"{args.file}: not a share document ({e})") from None
        if share.group_id not in keys.trusted_readers():
            raise CarkeyError(f"{args.file} is a bare share document for a car {args.keys} does not trust; "
                              "ask the owner for the share file `carkey keys share --out FILE` writes")
        name, doc = device_name(share.group_id), data
    else:
        try:
            made = sf.parse(data)
        except sf.ShareFileError as e:
            raise CarkeyError(f"{args.file}: {e}") from None
        share, name, doc = made.share, made.name, made.document
    if share.friend_pub != keys.public_key():
        raise CarkeyError(f"{args.file} shares the car with another key, not with {args.keys}")
    if share.valid_until and share.valid_until <= time.time():
        raise CarkeyError(f"{args.file}: this share ended at {_utc(share.valid_until)}; ask the owner for a new one")
    if data[:1] != bytes([documents.SHARE_TAG]):
        keys.trust(made.group_id, made.reader_public_key, made.name)
    keys.add_share_document(share.group_id, doc)
    _out(f"{args.keys} now trusts car {name} (reader group {share.group_id.hex()}); the share "
         f"({documents.ROLE_NAMES[share.role]}) is presented at the first tap")
    _out(f"unlock with `carkey phone unlock --keys {args.keys} --ble {name}` "
         f"(a car on the virtual air: `carkey phone unlock --keys {args.keys} --air HOST:PORT`)")


def _utc(t):
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def _visit(args, command):
    """One visit of this phone to a car over BLE: a real board through bleak (--ble) or
    a board on the virtual air (--air); prints what the car answered."""
    from ..ble_phone import BleError, run_bleak_sync, visit_car
    from ..errors import Refused
    from ..phone import Phone

    keys = KeyDir(args.keys)
    phone = Phone(keys, commands=[command])
    if args.ble:
        from ..phone import Transaction

        phone.transaction = txn = Transaction(1)
        try:
            log = run_bleak_sync(args.ble, phone.device.process, args.timeout)
        except (BleError, OSError) as e:
            raise CarkeyError(f"BLE: {e}") from None
        finally:
            txn.control_flow = phone.device.last_control_flow
            phone.device.reset()
            keys.save_kpersistent_cache(phone.device.kpersistent_cache)
            phone.settle_share(txn)
        txn.dropped = log.dropped
    else:
        address = parse_endpoint(args.air)
        name = args.name
        if name is None:
            cars = keys.trusted_cars()
            if not cars:
                raise CarkeyError(f"{args.keys} trusts no car yet: import the owner's share file "
                                  f"(`carkey phone import-share --keys {args.keys} --file FILE`) or provision your car")
            if len(cars) != 1:
                raise CarkeyError(f"{args.keys} trusts {len(cars)} cars ({', '.join(c['name'] for c in cars)}): "
                                  "say which with --name")
            name = cars[0]["name"]
        try:
            txn, log = visit_car(phone, address, name, 1)
        except (BleError, OSError) as e:
            raise CarkeyError(f"virtual air: {e}") from None
    if txn.dropped:
        raise Refused(f"{args.keys} does not trust this car, so it dropped the link: import the owner's share "
                      f"file (`carkey phone import-share --keys {args.keys} --file FILE`), or, for your own car, "
                      "`carkey phone trust` it with what `carkey car info` prints")
    for r in txn.results:
        _out(r.describe())
    if txn.share_dropped is not None:
        _out(f"the car refused this phone's share for good ({env.RESULTS.get(txn.share_dropped, 'refused')}): "
             f"removed from {args.keys}; ask the owner for a new share file")
    if txn.control_flow is None or txn.control_flow[0] != 1:
        raise Refused("the car refused: " + ("; ".join(r.describe() for r in txn.results) or "no answer"))


def do_phone_shares(args):
    """The share documents this phone keeps for cars it is not enrolled in; --remove drops one."""
    import json

    from .. import documents
    from ..ble_phone import device_name

    keys = KeyDir(args.keys)
    stored = keys.share_documents()
    if args.remove:
        wanted = args.remove.lower()
        match = [g for g in stored if wanted in (g.hex(), device_name(g))]
        if not match:
            raise CarkeyError(f"{args.keys} keeps no share for {args.remove!r} (`carkey phone shares` lists them)")
        keys.remove_share_document(match[0])
        _out(f"share for {device_name(match[0])} removed from {args.keys}")
        return
    now = time.time()
    for group, doc in sorted(stored.items()):
        try:
            s = documents.parse_share(doc)
            row = {"name": device_name(group), "group_id": group.hex(), "role": documents.ROLE_NAMES[s.role],
                   "serial": s.serial, "valid_from": s.valid_from, "valid_until": s.valid_until,
                   "ended": s.ended(now)}
        except documents.DocumentError as e:
            row = {"name": device_name(group), "group_id": group.hex(), "error": str(e)}
        if args.json:
            _out(json.dumps(row))
        else:
            state = row.get("error") or ("ended" if row["ended"] else "waiting for the first tap")
            _out(f"{row['name']}  group {row['group_id']}  {row.get('role', '?')}  {state}")
    if not stored and not args.json:
        _out(f"{args.keys} keeps no share documents")


def _command_handler(name):
    def do(args):
        arg = f"{name}={args.minutes}" if name == "drive" else name
        _visit(args, _parse_command(arg))

    return do


def _parse_command(text):
    name, _, arg = text.partition("=")
    if name not in env.COMMANDS:
        raise UsageError(f"unknown command {name!r}; choose from {', '.join(env.COMMANDS)}")
    if name == "drive":
        minutes = int(arg or "30") if (arg or "30").isdigit() else -1
        if not codes.DRIVE_MINUTES_MIN <= minutes <= codes.DRIVE_MINUTES_MAX:
            raise UsageError(f"drive wants minutes {codes.DRIVE_MINUTES_MIN}..{codes.DRIVE_MINUTES_MAX}, "
                             "e.g. --command drive=30")
        return env.COMMANDS[name], bytes([minutes])
    if arg:
        raise UsageError(f"{name} takes no argument")
    return env.COMMANDS[name], b""


def do_phone_serve(args):
    from ..phone import Phone

    host, port = parse_endpoint(args.tcp)
    phone = Phone(KeyDir(args.keys), commands=[_parse_command(c) for c in args.command])

    def on_listening(sockname):
        _out(f"phone listening on {sockname[0]}:{sockname[1]} ({args.framing} framing)")

    def on_transaction(txn):
        _out(f"connection {txn.number}: {txn.describe()}")
        if txn.share_dropped is not None:
            _out(f"connection {txn.number}: the car refused this phone's share for good "
                 f"({env.RESULTS.get(txn.share_dropped, 'refused')}): removed from {args.keys}")

    phone.serve(host, port, args.framing, args.connections, on_listening, on_transaction)


def register(sub):
    phone = sub.add_parser("phone", help="the simulated phone (a user device holding a credential)")
    psub = phone.add_subparsers(dest="phone_command", metavar="ACTION", required=True)

    for name, text in (("unlock", "unlock every door"), ("lock", "lock the car"),
                       ("unlock-driver", "unlock the driver's door"), ("trunk", "release the trunk"),
                       ("drive", "enable driving for --minutes"), ("locate", "horn and lights pulse"),
                       ("status", "ask the car for its state")):
        p = psub.add_parser(name, help=f"{text}, over BLE")
        p.add_argument("--keys", required=True, metavar="DIR")
        radio = p.add_mutually_exclusive_group(required=True)
        radio.add_argument("--ble", metavar="NAME|ADDRESS", help="a real board, through this computer's Bluetooth (bleak)")
        radio.add_argument("--air", metavar="HOST:PORT", help="a board on the virtual air (carkey air serve, carkey vboard)")
        p.add_argument("--name", metavar="carkey-XXXXXXXX", help="with --air: the car's advertised name "
                       "(default: the one car this phone trusts)")
        p.add_argument("--timeout", type=float, default=20.0, metavar="S", help="BLE scan and connect timeout")
        if name == "drive":
            p.add_argument("--minutes", type=int, default=30, metavar="N",
                           help=f"{codes.DRIVE_MINUTES_MIN}..{codes.DRIVE_MINUTES_MAX} (default 30)")
        p.set_defaults(func=_command_handler(name))

    p = psub.add_parser("init", help="create a key directory with a new credential key pair")
    p.add_argument("--keys", required=True, metavar="DIR", help="key directory (created 0700)")
    p.add_argument("--force", action="store_true", help="replace an existing credential")
    p.set_defaults(func=do_phone_init)

    p = psub.add_parser("trust", help="trust a reader group (the car) by its public key")
    p.add_argument("--keys", required=True, metavar="DIR")
    p.add_argument("--reader-public-key", required=True, metavar="HEX65", help="from `carkey reader identity`")
    p.add_argument("--group-id", required=True, metavar="HEX16")
    p.set_defaults(func=do_phone_trust)

    p = psub.add_parser("import-share", help="trust the car in an owner's share file and keep the share for it")
    p.add_argument("--keys", required=True, metavar="DIR")
    p.add_argument("--file", required=True, metavar="FILE", help="the share file from `carkey keys share --out FILE`")
    p.set_defaults(func=do_phone_import_share)

    p = psub.add_parser("shares", help="the shares this phone keeps until a car accepts them; --remove drops one")
    p.add_argument("--keys", required=True, metavar="DIR")
    p.add_argument("--remove", metavar="NAME|GROUP", help="drop the share for this car (carkey-XXXXXXXX or group id)")
    p.add_argument("--json", action="store_true", help="one JSON object per share")
    p.set_defaults(func=do_phone_shares)

    p = psub.add_parser("serve", help="answer readers over TCP, one connection after another")
    p.add_argument("--keys", required=True, metavar="DIR")
    p.add_argument("--tcp", required=True, metavar="HOST:PORT", help="where to listen (port 0: any free port)")
    p.add_argument("--framing", choices=FRAMINGS, default="lp", help="raw: one APDU per write; lp: 2-byte length prefix")
    p.add_argument("--command", action="append", default=[], metavar="CMD[=ARG]",
                   help=f"request this in every transaction ({', '.join(env.COMMANDS)}; drive=MINUTES); "
                   "repeatable; none: the car's default action")
    p.add_argument("--connections", type=int, default=None, metavar="N", help="stop after N connections")
    p.set_defaults(func=do_phone_serve)

    from . import web  # `carkey phone web`: the phone key page (cli/web.py)

    web.register(psub)
