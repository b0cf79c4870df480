"""`carkey provision | keys … | clock set | log`: the owner's commands for a car.

The car is a board on its USB serial port (`--port P`, a real ESP32 or `carkey vboard`)
or the virtual car's state directory (`--state DIR`). The owner's credential is a phone
key directory (`--keys DIR`); every change is a document it signs and the car checks.
"""

import json
import time
from datetime import datetime, timezone

from .. import documents, owner
from ..errors import UsageError
from ..keydir import KeyDir, load_public_key_pem, parse_hex
from ..wire import ROLES
from . import out


def _target(args):
    if bool(args.port) == bool(args.state):
        raise UsageError("say which car: --port P (a board) or --state DIR (the virtual car)")
    if args.state:
        from ..vcar import VirtualCar

        return VirtualCar(args.state)
    from ..usb_car import UsbCar

    return UsbCar(args.port)


def _when(text, what):
    if text is None:
        return 0
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what}: not a date and time: {text!r} (e.g. 2026-12-24T18:00, taken as UTC)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp())


def _share_fields(args):
    fields = {"valid_from": _when(args.valid_from, "--valid-from"), "valid_until": _when(args.valid_until, "--valid-until"),
              "use_limit": args.use_limit}
    try:
        fields["schedule"] = [documents.Window.parse(w) for w in args.schedule]
    except documents.DocumentError as e:
        raise UsageError(str(e)) from None
    if args.entitlements is not None:
        fields["entitlements"] = args.entitlements
    return fields


def _slot(args, target, kd):
    if args.slot:
        return owner.find_slot(owner.list_keys(target, kd), args.slot)
    return documents.key_slot(load_public_key_pem(args.credential))


def _print_keys(listing, as_json):
    if as_json:
        out(json.dumps(listing))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="keys enrolled in the car")
    for col in ("slot", "kind", "role", "status", "entitlements", "uses", "last use", "fast"):
        table.add_column(col, no_wrap=col == "slot", min_width=16 if col == "slot" else None)
    for k in listing["keys"]:
        last = time.strftime("%Y-%m-%d %H:%M", time.gmtime(k["last_use"])) if k["last_use"] else "-"
        table.add_row(k["slot"], k.get("kind", "phone"), k["role"], k["status"], f"0x{k['entitlements']:04x}",
                      str(k["uses"]), last, "yes" if k["fast_ready"] else "no")
    Console().print(table)
    if listing["revoked_slots"]:
        out("revoked for good: " + ", ".join(listing["revoked_slots"]))


# --- handlers ---------------------------------------------------------------------


def do_provision(args):
    ident = owner.provision(_target(args), KeyDir(args.keys))
    car = owner.car_info(ident)
    out(f"car provisioned: {car['name']}, reader group {ident['group_id']}, owner {ident['owner']['slot']}, clock set")
    out(f"{args.keys} now trusts this car; `carkey car info --keys {args.keys}` shows what a phone needs to trust it")


def do_keys_list(args):
    _print_keys(owner.list_keys(_target(args), KeyDir(args.keys)), args.json)


def do_keys_add(args):
    key = owner.add_key(_target(args), KeyDir(args.keys), load_public_key_pem(args.credential), args.role,
                        **_share_fields(args))
    out(json.dumps(key) if args.json else f"enrolled key slot {key['slot']} as {key['role']}")


def do_keys_share(args):
    kd = KeyDir(args.keys)
    target = _target(args) if args.port or args.state else None
    group = parse_hex(args.group_id, 16, "--group-id") if args.group_id else None
    made = owner.share_file(kd, load_public_key_pem(args.credential), args.role, target, group, **_share_fields(args))
    with open(args.out, "w") as f:
        f.write(made.to_json())
    out(f"share file for {made.name} written to {args.out}; send it to the friend, who runs "
        f"`carkey phone import-share --keys FRIEND_DIR --file {args.out}` and then unlocks")


def _change(action):
    def do(args):
        target, kd = _target(args), KeyDir(args.keys)
        slot = _slot(args, target, kd)
        owner.change_key(target, kd, slot, action)
        out(f"key {slot.hex()} {action}{'d' if action.endswith('e') else 'ed'}")

    return do


def do_clock_set(args):
    when = owner.set_clock(_target(args), KeyDir(args.keys), _when(args.time, "--time") or None)
    out(f"car clock set to {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(when))} UTC")


def do_maintenance(args):
    if not 1 <= args.minutes <= owner.MAINTENANCE_MAX_S // 60:
        raise UsageError(f"--minutes is 1 to {owner.MAINTENANCE_MAX_S // 60}")
    seconds = owner.maintenance(_target(args), KeyDir(args.keys), args.minutes * 60)
    out(f"car REPL open for {seconds // 60} min (deploy, mpremote); then the car resets into its application")


def do_log(args):
    from ..auditlog import format_record, format_tally

    since = args.since
    # One admin session for every poll: the car logs it once, and a running
    # application answers on its console without being stopped.
    with owner.Admin(_target(args), KeyDir(args.keys)) as admin:
        try:
            while True:
                for rec in admin.audit_log(since):
                    out(json.dumps(rec) if args.json else format_record(rec))
                    since = rec["seq"]
                if not args.follow:
                    break
                time.sleep(args.interval)
            # Strangers' refusals live in a ring of their own, counted per interval.
            tallies = admin.stranger_log()
            if tallies and not args.json:
                out("strangers (refusals of keys the car does not know, counted per 10 minutes):")
            for rec in tallies:
                out(json.dumps(dict(rec, ring="strangers")) if args.json else format_tally(rec))
        except KeyboardInterrupt:
            if not args.follow:
                raise  # --follow ends with Ctrl-C; anything else interrupted is an interruption


# --- parser -----------------------------------------------------------------------


def _car_args(p, keys_help="the owner's phone key directory (signs every change)"):
    p.add_argument("--port", metavar="P", help="the board's USB serial port (or a `carkey vboard` link)")
    p.add_argument("--state", metavar="DIR", help="the virtual car's state directory")
    p.add_argument("--keys", required=True, metavar="DIR", help=keys_help)


def _key_args(p):
    p.add_argument("--credential", required=True, metavar="FILE.pem", help="the key's public key PEM")
    p.add_argument("--role", required=True, choices=[r for r in ROLES if r != "owner"])
    p.add_argument("--entitlements", type=lambda t: int(t, 0), metavar="BITS", help="narrow the role's commands, e.g. 0x03")
    p.add_argument("--valid-from", metavar="ISO", help="start, e.g. 2026-12-24T18:00 (UTC)")
    p.add_argument("--valid-until", metavar="ISO",
                   help="end (exclusive), UTC; a time already past is refused (exit 2)")
    p.add_argument("--schedule", action="append", default=[], metavar="WINDOW",
                   help="weekly window, e.g. 'mon-fri 08:00-17:00' (UTC); repeatable, at most 8")
    p.add_argument("--use-limit", type=int, default=0, metavar="N", help="number of uses (0: unlimited)")


def register(sub):
    p = sub.add_parser("provision", help="first boot: the car makes its identity and enrolls you as owner")
    _car_args(p, "your phone key directory: its credential becomes the owner")
    p.set_defaults(func=do_provision)

    keys = sub.add_parser("keys", help="the car's keys: list, add, share, suspend, resume, revoke")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    p = ksub.add_parser("list", help="keys enrolled in the car (an owner-signed request)")
    _car_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=do_keys_list)
    p = ksub.add_parser("add", help="enroll a key now, over USB (an owner-signed share document)")
    _car_args(p)
    _key_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=do_keys_add)
    p = ksub.add_parser("share", help="write a share document for a friend's phone (it presents it at the car)")
    p.add_argument("--port", metavar="P")
    p.add_argument("--state", metavar="DIR")
    p.add_argument("--keys", required=True, metavar="DIR", help="the owner's phone key directory")
    p.add_argument("--group-id", metavar="HEX16", help="which car, if the owner trusts several")
    _key_args(p)
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the share file (JSON, docs/PROTOCOL.md §5a)")
    p.set_defaults(func=do_keys_share)
    for action in ("suspend", "resume", "revoke"):
        p = ksub.add_parser(action, help=f"{action} a key" + (" for good" if action == "revoke" else ""))
        _car_args(p)
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--slot", metavar="HEX", help="the key's slot as `carkey keys list` shows it, or an "
                           "unambiguous prefix (4+ hex digits); a slot no key has is refused (exit 2)")
        which.add_argument("--credential", metavar="FILE.pem", help="the key's public key PEM")
        p.set_defaults(func=_change(action))

    clock = sub.add_parser("clock", help="the car's clock")
    csub = clock.add_subparsers(dest="clock_command", metavar="ACTION", required=True)
    p = csub.add_parser("set", help="set the car's clock (default: this computer's time)")
    _car_args(p)
    p.add_argument("--time", metavar="ISO", help="e.g. 2026-12-24T18:00 (UTC)")
    p.set_defaults(func=do_clock_set)

    p = sub.add_parser("maintenance", help="open an installed car's USB REPL for a while (deploy, recovery)")
    _car_args(p)
    p.add_argument("--minutes", type=int, default=10, metavar="N", help="how long the REPL stays open (1-60)")
    p.set_defaults(func=do_maintenance)

    p = sub.add_parser("log", help="the car's audit log (an owner-signed export)")
    _car_args(p)
    p.add_argument("--since", type=int, default=0, metavar="SEQ", help="records after this sequence number")
    p.add_argument("--follow", action="store_true", help="keep polling for new records")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between polls with --follow")
    p.add_argument("--json", action="store_true", help="one JSON object per record")
    p.set_defaults(func=do_log)
