"""`carkey air …`: the virtual BLE air (docs/VIRTUAL-RADIO.md) and the simulated phone on it."""

import time

from ..errors import CarkeyError, Refused, UsageError
from ..keydir import KeyDir
from ..tcp_link import parse_endpoint
from . import out as _out


def _endpoint(text, what):
    try:
        return parse_endpoint(text)
    except CarkeyError as e:
        raise UsageError(str(e).replace("--tcp", what)) from None


def do_air_serve(args):
    from ..virtual_air import VirtualAir

    host, port = _endpoint(args.listen, "--listen")
    if args.supervision_timeout_ms < 0:
        raise UsageError("--supervision-timeout-ms must be 0 or more")
    try:
        air = VirtualAir(host, port, supervision_timeout_ms=args.supervision_timeout_ms)
    except OSError as e:
        raise CarkeyError(f"cannot listen on {args.listen}: {e.strerror or e}") from None
    with air:
        _out(f"virtual air on {air.address[0]}:{air.address[1]} (boards join with CARKEY_AIR={air.address[0]}:{air.address[1]})")
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)


def do_air_phone(args):
    from ..ble_phone import BleError, MAX_MTU, MIN_MTU, NAME_PREFIX, visit_car
    from .phone import _parse_command
    from ..phone import Phone

    address = _endpoint(args.air, "--air")
    if not MIN_MTU <= args.mtu <= MAX_MTU:
        raise UsageError(f"--mtu must be {MIN_MTU}..{MAX_MTU}")
    if not args.name.startswith(NAME_PREFIX) or len(args.name) != len(NAME_PREFIX) + 8:
        raise UsageError(f"--name looks like {NAME_PREFIX}XXXXXXXX (the car's advertised name)")
    if args.visits < 1:
        raise UsageError("--visits must be 1 or more")
    phone = Phone(KeyDir(args.keys), commands=[_parse_command(c) for c in args.command])
    refused = False
    for n in range(1, args.visits + 1):
        try:
            txn, log = visit_car(phone, address, args.name, n, args.mtu)
        except (BleError, OSError) as e:
            raise CarkeyError(f"visit {n}: {e}") from None
        granted = txn.control_flow is not None and txn.control_flow[0] == 1
        refused |= not granted
        if txn.dropped:
            _out(f"visit {n}: dropped the link (car not trusted)")
        elif txn.error:
            _out(f"visit {n}: link error: {txn.error}")
        else:
            results = "; ".join(r.describe() for r in txn.results) or "no carkey results"
            _out(f"visit {n}: {'granted' if granted else 'refused'}: {results} "
                 f"(MTU {log.mtu}, {log.indications} indications, {log.writes} writes)")
    if refused:
        raise Refused("the car refused")


def register(sub):
    air = sub.add_parser("air", help="the virtual BLE air for boards on the Unix port, and phones on it")
    asub = air.add_subparsers(dest="air_command", metavar="ACTION", required=True)

    p = asub.add_parser("serve", help="run the virtual air hub")
    p.add_argument("--listen", default="127.0.0.1:7300", metavar="HOST:PORT", help="default 127.0.0.1:7300")
    p.add_argument("--supervision-timeout-ms", type=int, default=0, metavar="MS",
                   help="how late peers hear that a node vanished")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    p.set_defaults(func=do_air_serve)

    p = asub.add_parser("phone", help="visit a car on the virtual air as the simulated phone")
    p.add_argument("--keys", required=True, metavar="DIR")
    p.add_argument("--air", default="127.0.0.1:7300", metavar="HOST:PORT")
    p.add_argument("--name", required=True, help="the car's advertised name, carkey-XXXXXXXX")
    p.add_argument("--mtu", type=int, default=247, help="ATT MTU the phone asks for (23..517)")
    p.add_argument("--command", action="append", default=[], metavar="CMD[=ARG]", help="as for `phone serve`")
    p.add_argument("--visits", type=int, default=1, metavar="N", help="connect this many times, one after another")
    p.set_defaults(func=do_air_phone)
