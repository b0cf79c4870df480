"""`carkey card …`: NTAG 424 DNA card keys (docs/CARDS.md).

Provisioning talks to a card through a link; without NFC hardware support in the
host tools, `--emulated` runs the whole sequence against an emulated factory card
(a dry run). Keys are never printed: only their check values.
"""

from .. import ntag424
from ..errors import CarkeyError
from ..keydir import parse_hex
from . import out as _out


def do_card_new_master_key(args):
    key = ntag424.new_master_key_file(args.out)
    _out(f"card master key written to {args.out} (0600)")
    _out(f"check value: {ntag424.key_check_value(key).hex()}")


def do_card_provision(args):
    uid = parse_hex(args.uid, ntag424.UID_LEN, "--uid")
    master = ntag424.read_master_key(args.master_key_file)
    if not args.emulated:
        raise CarkeyError("no NFC reader support in the host tools yet; use --emulated for a dry run")
    real = parse_hex(args.emulated_real_uid, ntag424.UID_LEN, "--emulated-real-uid") if args.emulated_real_uid else None
    card = ntag424.EmulatedCard(uid, real_uid=real)
    result = ntag424.provision(ntag424.CardLink(card), master, uid)
    _out(f"card {uid.hex()} provisioned (emulated card)")
    _out(f"card key (key {ntag424.CARD_KEY_NO}) check value: {result.card_key_kcv.hex()}")
    _out(f"admin key (key {ntag424.ADMIN_KEY_NO}) check value: {result.admin_key_kcv.hex()}")


def do_card_key_check(args):
    uid = parse_hex(args.uid, ntag424.UID_LEN, "--uid")
    master = ntag424.read_master_key(args.master_key_file)
    _out(ntag424.key_check_value(ntag424.card_key(master, uid)).hex())


def register(sub):
    card = sub.add_parser("card", help="NTAG 424 DNA card keys: master key, provisioning")
    csub = card.add_subparsers(dest="card_command", metavar="ACTION", required=True)

    p = csub.add_parser("new-master-key", help="create a card master key file (16 random bytes, hex, 0600)")
    p.add_argument("--out", required=True, metavar="FILE", help="created; never overwritten")
    p.set_defaults(func=do_card_new_master_key)

    p = csub.add_parser("provision", help="turn a factory card into a carkey card (diversified keys 2 and 0)")
    p.add_argument("--uid", required=True, metavar="HEX7", help="the card's 7-byte UID from anticollision")
    p.add_argument("--master-key-file", required=True, metavar="FILE")
    p.add_argument("--emulated", action="store_true", help="dry run against an emulated factory card")
    p.add_argument("--emulated-real-uid", metavar="HEX7", help="the emulated card reports this UID when authenticated")
    p.set_defaults(func=do_card_provision)

    p = csub.add_parser("key-check", help="print the check value of a card's diversified key")
    p.add_argument("--uid", required=True, metavar="HEX7")
    p.add_argument("--master-key-file", required=True, metavar="FILE")
    p.set_defaults(func=do_card_key_check)
