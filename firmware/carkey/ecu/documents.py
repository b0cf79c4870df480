# carkey — owner-signed documents: share, revocation, admin request; parsing, signatures, acceptance.
# SPDX-License-Identifier: MIT
#
# docs/PROTOCOL.md §5, §6 and §9. Parsing accepts exactly one encoding of each
# document: every tag in its place, every length exact and in its shortest form,
# nothing after the end. Acceptance returns a §4.2 result code and, on success,
# what to store; apply_share() and apply_revocation() store it in a key store, and
# committing is the caller's.

import hashlib
from micropython import const

from carkey.crypto import p256
from carkey.ecu import codes, policy
from carkey.ecu.keystore import key_slot
from carkey.protocol import tlv

SHARE_TAG = const(0xE2)
REVOCATION_TAG = const(0xE3)
ADMIN_TAG = const(0xE4)
# Signature contexts: neither is a prefix of the other nor of an Aliro signed-data
# string (which starts with tag 4D), so no signature made for one verifies for another.
_SHARE_CONTEXT = b"carkey/share/v1\x00"
_REVOCATION_CONTEXT = b"carkey/revoke/v1\x00"
_ADMIN_CONTEXT = b"carkey/admin/v1\x00"
_MAX_ADMIN_ARGUMENT = const(64)

_VERSION = const(0x01)
_DELEGATION_NONE = const(0x00)
_GROUP_ID_LEN = const(16)
_PUBLIC_KEY_LEN = const(65)
_SLOT_LEN = const(8)
_SIG_LEN = const(64)

_T_VERSION = const(0x80)
_T_GROUP = const(0x81)
_T_FRIEND = const(0x82)
_T_ROLE = const(0x83)
_T_ENTITLEMENTS = const(0x84)
_T_FROM = const(0x85)
_T_UNTIL = const(0x86)
_T_SCHEDULE = const(0x87)
_T_USE_LIMIT = const(0x88)
_T_SERIAL = const(0x89)
_T_DELEGATION = const(0x8A)
_T_TARGET = const(0x8B)
_T_ACTION = const(0x8C)
_T_OPERATION = const(0x8D)
_T_ARGUMENT = const(0x8E)
_T_CHALLENGE = const(0x8F)
_CHALLENGE_LEN = const(16)
_T_SIGNATURE = const(0x9E)
_T_OWNER = const(0x5A)


class DocumentError(ValueError):
    """A document that is not well formed; the message names the first fault."""


# --- encoding -------------------------------------------------------------------


def share_body(group_id, friend_pub, role, entitlements, valid_from, valid_until, schedule, use_limit, serial, delegation=_DELEGATION_NONE):
    """The signed body of a share document (§5), field values as given, unchecked.

    schedule: bytes of 5-byte windows, or b"" for none (the 87 field is then left out).
    """
    parts = [
        tlv.encode(_T_VERSION, bytes((_VERSION,))),
        tlv.encode(_T_GROUP, group_id),
        tlv.encode(_T_FRIEND, friend_pub),
        tlv.encode(_T_ROLE, bytes((role,))),
        tlv.encode(_T_ENTITLEMENTS, entitlements.to_bytes(2, "big")),
        tlv.encode(_T_FROM, valid_from.to_bytes(4, "big")),
        tlv.encode(_T_UNTIL, valid_until.to_bytes(4, "big")),
    ]
    if schedule:
        parts.append(tlv.encode(_T_SCHEDULE, schedule))
    parts.append(tlv.encode(_T_USE_LIMIT, use_limit.to_bytes(2, "big")))
    parts.append(tlv.encode(_T_SERIAL, serial.to_bytes(4, "big")))
    parts.append(tlv.encode(_T_DELEGATION, bytes((delegation,))))
    return b"".join(parts)


def revocation_body(group_id, target_slot, serial, action):
    """The signed body of a revocation document (§6), unchecked."""
    return b"".join(
        (
            tlv.encode(_T_VERSION, bytes((_VERSION,))),
            tlv.encode(_T_GROUP, group_id),
            tlv.encode(_T_TARGET, target_slot),
            tlv.encode(_T_SERIAL, serial.to_bytes(4, "big")),
            tlv.encode(_T_ACTION, bytes((action,))),
        )
    )


def admin_body(group_id, number, operation, argument, challenge):
    """The signed body of an admin request (§9), unchecked: `number` is the request's
    place in the session the car's `challenge` opened."""
    return b"".join(
        (
            tlv.encode(_T_VERSION, bytes((_VERSION,))),
            tlv.encode(_T_GROUP, group_id),
            tlv.encode(_T_SERIAL, number.to_bytes(4, "big")),
            tlv.encode(_T_OPERATION, bytes((operation,))),
            tlv.encode(_T_ARGUMENT, argument),
            tlv.encode(_T_CHALLENGE, challenge),
        )
    )


def _context(tag):
    if tag == SHARE_TAG:
        return _SHARE_CONTEXT
    if tag == REVOCATION_TAG:
        return _REVOCATION_CONTEXT
    if tag == ADMIN_TAG:
        return _ADMIN_CONTEXT
    raise ValueError("unknown document tag")


def digest(tag, body):
    """SHA-256(context ‖ body): what the owner signs for a document of type `tag`."""
    h = hashlib.sha256(_context(tag))
    h.update(body)
    return h.digest()


def assemble(tag, body, signature, owner_pub):
    """tag L [body][9E 40 signature][5A 41 owner public key]."""
    return tlv.encode(tag, body + tlv.encode(_T_SIGNATURE, signature) + tlv.encode(_T_OWNER, owner_pub))


def sign(tag, body, owner_priv, owner_pub):
    """A complete document of type `tag` signed by the owner key pair."""
    return assemble(tag, body, p256.sign(owner_priv, digest(tag, body)), owner_pub)


# --- strict parsing ---------------------------------------------------------------


class _Reader:
    """Walks the TLVs of one document value, each expected in its place."""

    def __init__(self, data, start, end):
        self.data = data
        self.pos = start
        self.end = end

    def peek_tag(self):
        return self.data[self.pos] if self.pos < self.end else -1

    def field(self, tag, size=-1):
        """The value of the next TLV, which must carry `tag` (and `size` bytes if given)."""
        if self.pos >= self.end:
            raise DocumentError("missing tag %02X" % tag)
        got, start, end = _read(self.data, self.pos)
        if got != tag:
            raise DocumentError("expected tag %02X, found %02X" % (tag, got))
        if size >= 0 and end - start != size:
            raise DocumentError("tag %02X length %d, expected %d" % (tag, end - start, size))
        self.pos = end
        return bytes(self.data[start:end])

    def uint(self, tag, size):
        return int.from_bytes(self.field(tag, size), "big")


def _read(data, pos):
    # The shared strict BER-TLV reader: shortest-form lengths only, no truncation.
    try:
        return tlv.read(data, pos)
    except tlv.TlvError as e:
        raise DocumentError(str(e))


def _open(doc, tag, name):
    """Reader over the value of the outer TLV; the document must be exactly that TLV."""
    if not doc or doc[0] != tag:
        raise DocumentError("not a %s document" % name)
    _, start, end = _read(doc, 0)
    if end != len(doc):
        raise DocumentError("trailing bytes")
    return _Reader(doc, start, end)


def _version(r):
    if r.uint(_T_VERSION, 1) != _VERSION:
        raise DocumentError("unsupported version")


def _public_key(r, tag):
    pub = r.field(tag, _PUBLIC_KEY_LEN)
    if pub[0] != 0x04:
        raise DocumentError("tag %02X not an uncompressed public key" % tag)
    return pub


def _signature_and_owner(r, fields, body_start):
    fields["body"] = bytes(r.data[body_start : r.pos])
    fields["signature"] = r.field(_T_SIGNATURE, _SIG_LEN)
    fields["owner"] = _public_key(r, _T_OWNER)
    if r.pos != r.end:
        raise DocumentError("trailing bytes")
    return fields


def parse_share(doc):
    """Fields of a well-formed share document (§5) as a dict; raises DocumentError.

    Keys: group_id, friend_pub, role, entitlements, valid_from, valid_until, schedule
    (b"" when absent), use_limit, serial, delegation, body, signature, owner. Role
    and delegation values are left for acceptance to judge; the signature is not
    checked here.
    """
    r = _open(doc, SHARE_TAG, "share")
    body_start = r.pos
    _version(r)
    f = {}
    f["group_id"] = r.field(_T_GROUP, _GROUP_ID_LEN)
    f["friend_pub"] = _public_key(r, _T_FRIEND)
    f["role"] = r.uint(_T_ROLE, 1)
    if not codes.ROLE_OWNER <= f["role"] <= codes.ROLE_VALET:
        raise DocumentError("unknown role")
    f["entitlements"] = r.uint(_T_ENTITLEMENTS, 2)
    f["valid_from"] = r.uint(_T_FROM, 4)
    f["valid_until"] = r.uint(_T_UNTIL, 4)
    if f["valid_until"] and f["valid_until"] <= f["valid_from"]:
        raise DocumentError("empty validity window")
    schedule = b""
    if r.peek_tag() == _T_SCHEDULE:
        schedule = r.field(_T_SCHEDULE)
        if not policy.valid_schedule(schedule):
            raise DocumentError("bad schedule")
    f["schedule"] = schedule
    f["use_limit"] = r.uint(_T_USE_LIMIT, 2)
    f["serial"] = r.uint(_T_SERIAL, 4)
    f["delegation"] = r.uint(_T_DELEGATION, 1)
    return _signature_and_owner(r, f, body_start)


def parse_revocation(doc):
    """Fields of a well-formed revocation document (§6) as a dict; raises DocumentError.

    Keys: group_id, target (key slot), serial, action, body, signature, owner.
    """
    r = _open(doc, REVOCATION_TAG, "revocation")
    body_start = r.pos
    _version(r)
    f = {}
    f["group_id"] = r.field(_T_GROUP, _GROUP_ID_LEN)
    f["target"] = r.field(_T_TARGET, _SLOT_LEN)
    f["serial"] = r.uint(_T_SERIAL, 4)
    f["action"] = r.uint(_T_ACTION, 1)
    if not codes.ACTION_REVOKE <= f["action"] <= codes.ACTION_RESUME:
        raise DocumentError("unknown action")
    return _signature_and_owner(r, f, body_start)


def parse_admin(doc):
    """Fields of a well-formed admin request (§9) as a dict; raises DocumentError.

    Keys: group_id, serial (the request number), operation, argument, challenge, body,
    signature, owner.
    """
    r = _open(doc, ADMIN_TAG, "admin")
    body_start = r.pos
    _version(r)
    f = {}
    f["group_id"] = r.field(_T_GROUP, _GROUP_ID_LEN)
    f["serial"] = r.uint(_T_SERIAL, 4)
    f["operation"] = r.uint(_T_OPERATION, 1)
    f["argument"] = r.field(_T_ARGUMENT)
    if len(f["argument"]) > _MAX_ADMIN_ARGUMENT:
        raise DocumentError("admin argument longer than %d bytes" % _MAX_ADMIN_ARGUMENT)
    f["challenge"] = r.field(_T_CHALLENGE, _CHALLENGE_LEN)
    return _signature_and_owner(r, f, body_start)


# --- acceptance -------------------------------------------------------------------


def _owner(keystore, fields, group_id):
    """The signing owner's credential, or a refusal reason. No serial is checked here:
    a document's serial is judged against the floor of the key it changes (§5, §6),
    so documents about one key never cancel documents about another."""
    if fields["group_id"] != group_id:
        return None, "other reader group"
    owner = keystore.find(fields["owner"])
    if owner is None or owner.role != codes.ROLE_OWNER or owner.status != codes.STATUS_ACTIVE:
        return None, "signer is not an active owner"
    return owner, None


def _refused(code, reason):
    return code, reason
    yield  # a generator that returns at once, so every path can be driven alike


def accept_share_steps(doc, keystore, group_id, friend_pub, now, clock_trusted):
    """Sliced accept_share (see carkey.crypto.p256 on *_steps): parses and makes the
    cheap checks now (DocumentError raised here), then returns a generator whose
    result is (code, detail); only a document that passes them costs a verification.
    """
    f = parse_share(doc)
    owner, reason = _owner(keystore, f, group_id)
    if owner is None:
        return _refused(codes.DOCUMENT_REFUSED, reason)
    if f["friend_pub"] != friend_pub:
        return _refused(codes.DOCUMENT_REFUSED, "friend key is not the presenting credential")
    if f["role"] == codes.ROLE_OWNER:
        return _refused(codes.DOCUMENT_REFUSED, "owner role cannot be shared")
    if f["delegation"] != _DELEGATION_NONE:
        return _refused(codes.DOCUMENT_REFUSED, "delegation not allowed")
    if f["entitlements"] & ~policy.default_entitlements(f["role"]):
        return _refused(codes.DOCUMENT_REFUSED, "entitlements exceed the role")
    existing = keystore.find(friend_pub)
    if existing is not None:
        if existing.role == codes.ROLE_OWNER:
            return _refused(codes.DOCUMENT_REFUSED, "friend key is an owner")
        # A share for an enrolled key must be newer than the last document that set
        # or changed its record, so an older, wider share cannot be replayed.
        if f["serial"] <= existing.serial_floor:
            return _refused(codes.DOCUMENT_SUPERSEDED, "serial not above the key's floor")
    revoked = keystore.is_revoked(key_slot(friend_pub)) or (existing is not None and existing.status == codes.STATUS_REVOKED)
    return _share_steps(f, revoked, now, clock_trusted)


def _share_steps(f, revoked, now, clock_trusted):
    if not (yield from p256.verify_steps(f["owner"], digest(SHARE_TAG, f["body"]), f["signature"])):
        return codes.DOCUMENT_REFUSED, "bad signature"
    # Only a validly signed document learns about revocation or the clock.
    if revoked:
        return codes.KEY_REVOKED, "friend key revoked"
    if f["valid_from"] or f["valid_until"]:
        if not clock_trusted:
            return codes.CLOCK_UNTRUSTED, "clock not trusted"
        if now < f["valid_from"] or (f["valid_until"] and now >= f["valid_until"]):
            return codes.OUTSIDE_VALIDITY, "outside the validity window"
    credential = {
        "pub": f["friend_pub"],
        "role": f["role"],
        "entitlements": f["entitlements"],
        "not_before": f["valid_from"],
        "not_after": f["valid_until"],
        "schedule": f["schedule"],
        "use_limit": f["use_limit"],
        "serial_floor": f["serial"],
    }
    return codes.OK, {"credential": credential, "owner": f["owner"]}


def accept_share(doc, keystore, group_id, friend_pub, now, clock_trusted):
    """Judge a share document presented by the credential `friend_pub` (§5).

    keystore: needs find(pub) -> credential or None and is_revoked(slot) -> bool.
    group_id: this reader's group id. now: Unix seconds; clock_trusted: whether now
    is at or above the persisted "not earlier than" time.
    Returns (code, detail). On OK detail is a dict: "credential" (the new record's
    fields: pub, slot, role, entitlements, not_before, not_after, schedule,
    use_limit, serial_floor = the document's serial) and "owner" (signer public
    key); the owner's own floor does not move, since friends present their shares
    in any order. Otherwise detail is the reason. Raises DocumentError for a
    malformed document.
    """
    return p256.finish(accept_share_steps(doc, keystore, group_id, friend_pub, now, clock_trusted))


def accept_revocation_steps(doc, keystore, group_id):
    """Sliced accept_revocation, as accept_share_steps."""
    f = parse_revocation(doc)
    owner, reason = _owner(keystore, f, group_id)
    if owner is None:
        return _refused(codes.DOCUMENT_REFUSED, reason)
    target_slot = f["target"]
    if target_slot == key_slot(f["owner"]):
        return _refused(codes.DOCUMENT_REFUSED, "an owner cannot revoke itself")
    target = keystore.find_slot(target_slot)
    if target is not None and f["serial"] <= target.serial_floor:
        return _refused(codes.DOCUMENT_SUPERSEDED, "serial not above the key's floor")
    # Suspend and resume change a record, so the key must be enrolled; revoke also
    # covers keys never seen (a share not yet presented).
    if f["action"] != codes.ACTION_REVOKE and target is None:
        return _refused(codes.DOCUMENT_REFUSED, "target key unknown")
    revoked = keystore.is_revoked(target_slot) or (target is not None and target.status == codes.STATUS_REVOKED)
    return _revocation_steps(f, target is not None, revoked)


def _revocation_steps(f, known, revoked):
    if not (yield from p256.verify_steps(f["owner"], digest(REVOCATION_TAG, f["body"]), f["signature"])):
        return codes.DOCUMENT_REFUSED, "bad signature"
    if revoked:
        # Revocation is permanent; revoking again (a replay, or a second try) changes nothing.
        return codes.KEY_REVOKED, "target key revoked" if f["action"] != codes.ACTION_REVOKE else "already revoked"
    return codes.OK, {"target": f["target"], "action": f["action"], "owner": f["owner"], "serial": f["serial"], "known": known}


def accept_revocation(doc, keystore, group_id):
    """Judge a revocation document (§6).

    keystore: needs find(pub) and find_slot(slot) -> credential or None, and
    is_revoked(slot) -> bool. Returns (code, detail); on OK detail is a dict:
    "target" (key slot), "action", "owner" (signer public key), "serial" and
    "known" (whether the target is in the key store). The caller then raises the
    owner's floor and the target's floor to the serial and records the action.
    Otherwise detail is the reason. Raises DocumentError for a malformed document.
    """
    return p256.finish(accept_revocation_steps(doc, keystore, group_id))


def accept_admin_steps(doc, keystore, group_id, challenge, last_number):
    """Sliced accept_admin: the cheap checks now (DocumentError raised here), then a
    generator whose result is (code, detail)."""
    f = parse_admin(doc)
    owner, reason = _owner(keystore, f, group_id)
    if owner is None:
        return _refused(codes.DOCUMENT_REFUSED, reason)
    if challenge is None or f["challenge"] != challenge:
        return _refused(codes.DOCUMENT_REFUSED, "not this session's challenge: ask the car for a new one")
    if f["serial"] <= last_number:
        return _refused(codes.DOCUMENT_SUPERSEDED, "request number already used in this session")
    return _admin_steps(f)


def _admin_steps(f):
    if not (yield from p256.verify_steps(f["owner"], digest(ADMIN_TAG, f["body"]), f["signature"])):
        return codes.DOCUMENT_REFUSED, "bad signature"
    return codes.OK, {"operation": f["operation"], "argument": f["argument"], "owner": f["owner"], "serial": f["serial"]}


def accept_admin(doc, keystore, group_id, challenge, last_number):
    """Judge an owner-signed admin request (§9) against the session the car opened with
    `challenge` (16 bytes, None when there is none), whose last request had number
    `last_number`: (code, detail). On OK detail holds "operation", "argument", "owner"
    and "serial" (the request number); the caller records it as the session's last
    number (so the request cannot run twice) and runs the operation."""
    return p256.finish(accept_admin_steps(doc, keystore, group_id, challenge, last_number))


# --- applying what was accepted --------------------------------------------------------


def apply_share(keystore, detail, old=None):
    """Store the friend's record from an accepted share, replacing any record of that
    key (a newer share updates a friend or resumes a suspended one). Returns it."""
    from carkey.ecu.keystore import Credential

    f = detail["credential"]
    cred = Credential(f["pub"], f["role"], f["entitlements"], f["not_before"], f["not_after"], f["schedule"],
                      f["use_limit"], serial_floor=f["serial_floor"])
    old = keystore.find(f["pub"])
    if old is not None:
        cred.kpersistent = old.kpersistent  # the device's cached key stays valid
    keystore.add(cred)
    return cred


def apply_revocation(keystore, detail):
    """Raise the target's floor and apply the action (§6). Returns the target's record,
    or None for a revoked slot never enrolled."""
    serial = detail["serial"]
    action = detail["action"]
    if action == codes.ACTION_REVOKE:
        status = codes.STATUS_REVOKED
    elif action == codes.ACTION_SUSPEND:
        status = codes.STATUS_SUSPENDED
    else:
        status = codes.STATUS_ACTIVE
    target = keystore.set_status(detail["target"], status)
    if target is not None:
        target.serial_floor = serial
    return target
