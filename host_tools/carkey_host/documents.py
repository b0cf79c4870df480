"""Share and revocation documents on the host: build, sign, parse, verify and describe them.

docs/PROTOCOL.md §5 and §6, written from the spec with `cryptography` and independently
of the firmware (tests/host/test_documents_cross.py checks that the two agree); roles,
actions, operations and limits are the firmware's numbers (carkey_host.wire). Used by
`carkey keys share` / `carkey keys revoke` and by the simulated phone.

Parsing is as strict as the reader's: every field in its place with its exact length,
lengths in their shortest form, nothing after the end. It does not judge what only
the car can (is the signer an enrolled owner, is the serial fresh); `Share.problems()`
lists what any reader would refuse regardless of its state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .aliro import tlv
from .envelope import COMMANDS
from .wire import ROLE_DEFAULTS, ROLE_NAMES, ROLES, codes

SHARE_TAG = 0xE2
REVOCATION_TAG = 0xE3
SHARE_CONTEXT = b"carkey/share/v1\x00"
REVOCATION_CONTEXT = b"carkey/revoke/v1\x00"
ADMIN_TAG = 0xE4
ADMIN_CONTEXT = b"carkey/admin/v1\x00"
ADMIN_OPERATIONS = {"set-clock": codes.ADMIN_SET_CLOCK, "export-log": codes.ADMIN_EXPORT_LOG,
                    "list-keys": codes.ADMIN_LIST_KEYS, "maintenance": codes.ADMIN_MAINTENANCE,
                    "export-strangers": codes.ADMIN_EXPORT_STRANGERS}
VERSION = 0x01

# Entitlement bit of each command: command id n is bit n - 1 (§4.1).
ENTITLEMENTS = {name: 1 << (cmd - 1) for name, cmd in COMMANDS.items()}
ACTIONS = {"revoke": codes.ACTION_REVOKE, "suspend": codes.ACTION_SUSPEND, "resume": codes.ACTION_RESUME}
ACTION_NAMES = {v: k for k, v in ACTIONS.items()}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_WINDOWS = codes.MAX_WINDOWS
MINUTES_PER_DAY = 1440

_T_VERSION = 0x80
_T_GROUP = 0x81
_T_FRIEND = 0x82
_T_ROLE = 0x83
_T_ENTITLEMENTS = 0x84
_T_FROM = 0x85
_T_UNTIL = 0x86
_T_SCHEDULE = 0x87
_T_USE_LIMIT = 0x88
_T_SERIAL = 0x89
_T_DELEGATION = 0x8A
_T_TARGET = 0x8B
_T_ACTION = 0x8C
_T_OPERATION = 0x8D
_T_ARGUMENT = 0x8E
_T_CHALLENGE = 0x8F
_T_SIGNATURE = 0x9E
_T_OWNER = 0x5A


class DocumentError(ValueError):
    """A document that is not well formed, or arguments that would make one the car refuses."""


def key_slot(pub: bytes) -> bytes:
    """carkey's key slot: the first 8 bytes of SHA-1 of the 65-byte public key (§3)."""
    return hashlib.sha1(pub).digest()[:8]


def public_key_bytes(key) -> bytes:
    """65-byte uncompressed point of a public key, a private key, or such bytes."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    key = bytes(key)
    if len(key) != 65 or key[0] != 0x04:
        raise DocumentError("a public key is 65 bytes 04 || X || Y")
    return key


def _private_key(key) -> ec.EllipticCurvePrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    return ec.derive_private_key(int.from_bytes(bytes(key), "big"), ec.SECP256R1())


# --- schedule windows ---------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One weekly window: days bitmap (bit 0 Monday), minutes start..end, UTC.

    end is exclusive (1..1440); end < start wraps midnight into the next day."""

    days: int
    start: int
    end: int

    def valid(self) -> bool:
        return (
            0 < self.days < 0x80
            and 0 <= self.start < MINUTES_PER_DAY
            and 0 < self.end <= MINUTES_PER_DAY
            and self.start != self.end
        )

    def encode(self) -> bytes:
        return bytes([self.days]) + self.start.to_bytes(2, "big") + self.end.to_bytes(2, "big")

    @classmethod
    def parse(cls, text: str) -> "Window":
        """'mon-fri 08:00-17:00', 'sat,sun 22:00-02:00', 'daily 00:00-24:00'."""
        try:
            days_text, times = text.strip().lower().split()
            start_text, end_text = times.split("-")
            days = 0x7F if days_text == "daily" else 0
            if not days:
                for part in days_text.split(","):
                    first, _, last = part.partition("-")
                    a, b = DAYS.index(first), DAYS.index(last or first)
                    for i in range(a, b + 1) if a <= b else list(range(a, 7)) + list(range(0, b + 1)):
                        days |= 1 << i
            window = cls(days, _minutes(start_text), _minutes(end_text))
        except ValueError:
            raise DocumentError(f"bad schedule window {text!r}: want e.g. 'mon-fri 08:00-17:00'") from None
        if not window.valid():
            raise DocumentError(f"bad schedule window {text!r}")
        return window

    def describe(self) -> str:
        days = ",".join(DAYS[i].capitalize() for i in range(7) if self.days >> i & 1)
        wraps = " (ends next day)" if self.end < self.start else ""
        return f"{days} {self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}{wraps}"


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    if len(minutes) != 2 or not 0 <= int(minutes) < 60:
        raise ValueError(text)
    return int(hours) * 60 + int(minutes)


def encode_schedule(windows) -> bytes:
    return b"".join(w.encode() for w in windows)


def decode_schedule(value: bytes) -> tuple[Window, ...]:
    if not value or len(value) % 5 or len(value) // 5 > MAX_WINDOWS:
        raise DocumentError("bad schedule")
    windows = tuple(
        Window(value[i], int.from_bytes(value[i + 1 : i + 3], "big"), int.from_bytes(value[i + 3 : i + 5], "big"))
        for i in range(0, len(value), 5)
    )
    if not all(w.valid() for w in windows):
        raise DocumentError("bad schedule")
    return windows


# --- encoding and signing -------------------------------------------------------


def share_body(group_id, friend_pub, role, entitlements, valid_from, valid_until, schedule, use_limit, serial, delegation=0):
    """The signed body of a share document, values as given (schedule: raw bytes, b"" for none)."""
    items = [
        (_T_VERSION, bytes([VERSION])),
        (_T_GROUP, group_id),
        (_T_FRIEND, friend_pub),
        (_T_ROLE, bytes([role])),
        (_T_ENTITLEMENTS, entitlements.to_bytes(2, "big")),
        (_T_FROM, valid_from.to_bytes(4, "big")),
        (_T_UNTIL, valid_until.to_bytes(4, "big")),
    ]
    if schedule:
        items.append((_T_SCHEDULE, schedule))
    items += [
        (_T_USE_LIMIT, use_limit.to_bytes(2, "big")),
        (_T_SERIAL, serial.to_bytes(4, "big")),
        (_T_DELEGATION, bytes([delegation])),
    ]
    return tlv.encode_all(items)


def revocation_body(group_id, target, serial, action):
    """The signed body of a revocation document, values as given."""
    return tlv.encode_all(
        [
            (_T_VERSION, bytes([VERSION])),
            (_T_GROUP, group_id),
            (_T_TARGET, target),
            (_T_SERIAL, serial.to_bytes(4, "big")),
            (_T_ACTION, bytes([action])),
        ]
    )


def admin_body(group_id, number, operation, argument, challenge):
    """The signed body of an admin request (§9), values as given: `number` is the
    request's place (1, 2, …) in the session the car opened with `challenge`."""
    return tlv.encode_all(
        [
            (_T_VERSION, bytes([VERSION])),
            (_T_GROUP, group_id),
            (_T_SERIAL, number.to_bytes(4, "big")),
            (_T_OPERATION, bytes([operation])),
            (_T_ARGUMENT, argument),
            (_T_CHALLENGE, challenge),
        ]
    )


def _context(tag: int) -> bytes:
    return {SHARE_TAG: SHARE_CONTEXT, REVOCATION_TAG: REVOCATION_CONTEXT, ADMIN_TAG: ADMIN_CONTEXT}[tag]


def signed_data(tag: int, body: bytes) -> bytes:
    """What the owner signs (hashed with SHA-256): the document type's context, then the body."""
    return _context(tag) + body


def sign_body(owner_key, tag: int, body: bytes) -> bytes:
    """ECDSA P-256 / SHA-256 signature r || s over signed_data(tag, body)."""
    der = _private_key(owner_key).sign(signed_data(tag, body), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def assemble(tag: int, body: bytes, signature: bytes, owner_pub: bytes) -> bytes:
    return tlv.encode(tag, body + tlv.encode(_T_SIGNATURE, signature) + tlv.encode(_T_OWNER, owner_pub))


def verify_signature(owner_pub: bytes, tag: int, body: bytes, signature: bytes) -> bool:
    if len(signature) != 64:
        return False
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), owner_pub)
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        key.verify(der, signed_data(tag, body), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def next_serial(previous: int, now: int) -> int:
    """The serial for an owner's next document: above the last, and at least the Unix
    time, so serials from different owners of one car order by when they were signed."""
    serial = max(previous + 1, int(now))
    if serial > 0xFFFFFFFF:
        raise DocumentError("serial space exhausted")
    return serial


def make_share(
    owner_key,
    group_id: bytes,
    friend_pub,
    role,
    *,
    serial: int,
    entitlements: int | None = None,
    valid_from: int = 0,
    valid_until: int = 0,
    schedule=(),
    use_limit: int = 0,
) -> bytes:
    """A signed share document the car will accept from an enrolled owner (§5).

    role: name or id (not owner); entitlements: bitmap, default the role's; schedule:
    Window objects. Raises DocumentError for anything a reader would refuse."""
    role_id = ROLES.get(role, role) if isinstance(role, str) else role
    if role_id not in ROLE_DEFAULTS:
        raise DocumentError(f"unknown role {role!r}")
    if role_id == ROLES["owner"]:
        raise DocumentError("the owner role cannot be shared")
    if entitlements is None:
        entitlements = ROLE_DEFAULTS[role_id]
    if entitlements & ~ROLE_DEFAULTS[role_id]:
        raise DocumentError(f"entitlements {entitlements:#06x} exceed what a {ROLE_NAMES[role_id]} may have")
    if len(group_id) != 16:
        raise DocumentError("a reader group id is 16 bytes")
    if not (0 <= valid_from <= 0xFFFFFFFF and 0 <= valid_until <= 0xFFFFFFFF):
        raise DocumentError("validity times are 32-bit Unix seconds")
    if valid_until and valid_until <= valid_from:
        raise DocumentError("validity window is empty")
    schedule = tuple(schedule)
    if len(schedule) > MAX_WINDOWS or not all(w.valid() for w in schedule):
        raise DocumentError(f"a schedule has 1..{MAX_WINDOWS} valid windows")
    if not 0 <= use_limit <= 0xFFFF:
        raise DocumentError("use limit is 0..65535")
    if not 0 < serial <= 0xFFFFFFFF:
        raise DocumentError("serial is 1..2^32-1")
    body = share_body(
        group_id, public_key_bytes(friend_pub), role_id, entitlements, valid_from, valid_until,
        encode_schedule(schedule), use_limit, serial,
    )
    return assemble(SHARE_TAG, body, sign_body(owner_key, SHARE_TAG, body), public_key_bytes(owner_key))


def make_revocation(owner_key, group_id: bytes, target, *, serial: int, action="revoke") -> bytes:
    """A signed revocation document (§6). target: a key slot (8 bytes) or public key."""
    action_id = ACTIONS.get(action, action) if isinstance(action, str) else action
    if action_id not in ACTION_NAMES:
        raise DocumentError(f"unknown action {action!r}")
    slot = bytes(target) if isinstance(target, (bytes, bytearray)) and len(target) == 8 else key_slot(public_key_bytes(target))
    owner_pub = public_key_bytes(owner_key)
    if slot == key_slot(owner_pub):
        raise DocumentError("an owner cannot revoke its own key")
    if len(group_id) != 16:
        raise DocumentError("a reader group id is 16 bytes")
    if not 0 < serial <= 0xFFFFFFFF:
        raise DocumentError("serial is 1..2^32-1")
    body = revocation_body(group_id, slot, serial, action_id)
    return assemble(REVOCATION_TAG, body, sign_body(owner_key, REVOCATION_TAG, body), owner_pub)


def make_admin(owner_key, group_id: bytes, operation, argument: bytes = b"", *, challenge: bytes, number: int) -> bytes:
    """A signed admin request (§9): set-clock (argument: Unix seconds, 4 bytes),
    export-log (argument: since sequence number, 4 bytes) or list-keys; request
    `number` (1, 2, …) of the session the car opened with `challenge` (16 bytes)."""
    op = ADMIN_OPERATIONS.get(operation, operation) if isinstance(operation, str) else operation
    if op not in ADMIN_OPERATIONS.values():
        raise DocumentError(f"unknown admin operation {operation!r}")
    if len(group_id) != 16:
        raise DocumentError("a reader group id is 16 bytes")
    if not 0 < number <= 0xFFFFFFFF:
        raise DocumentError("request number is 1..2^32-1")
    if len(challenge) != 16:
        raise DocumentError("a session challenge is 16 bytes")
    if len(argument) > 64:
        raise DocumentError("admin argument is at most 64 bytes")
    body = admin_body(group_id, number, op, argument, challenge)
    return assemble(ADMIN_TAG, body, sign_body(owner_key, ADMIN_TAG, body), public_key_bytes(owner_key))


# --- strict parsing -----------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    group_id: bytes
    friend_pub: bytes
    role: int
    entitlements: int
    valid_from: int
    valid_until: int
    schedule: tuple[Window, ...]
    use_limit: int
    serial: int
    delegation: int
    signature: bytes
    owner_pub: bytes
    body: bytes

    def verify(self) -> bool:
        return verify_signature(self.owner_pub, SHARE_TAG, self.body, self.signature)

    def ended(self, now: float) -> bool:
        """Whether the validity window is over at Unix time `now` (it never comes back)."""
        return bool(self.valid_until) and now >= self.valid_until

    def problems(self) -> list[str]:
        """Why any reader would refuse this document, whatever its key store holds."""
        found = []
        if self.role == ROLES["owner"]:
            found.append("shares the owner role")
        if self.delegation != 0:
            found.append("allows delegation")
        if self.entitlements & ~ROLE_DEFAULTS[self.role]:
            found.append("entitlements exceed the role")
        if not self.verify():
            found.append("signature does not verify")
        return found

    def describe(self) -> str:
        ent = ", ".join(n for n, bit in ENTITLEMENTS.items() if self.entitlements & bit) or "none"
        lines = [
            f"share document for reader group {self.group_id.hex()}",
            f"  friend key slot  {key_slot(self.friend_pub).hex()}",
            f"  role             {ROLE_NAMES[self.role]}",
            f"  entitlements     {ent} ({self.entitlements:#06x})",
            f"  valid            {_when(self.valid_from, 'always')} .. {_when(self.valid_until, 'no end')}",
            f"  schedule         {'; '.join(w.describe() for w in self.schedule) or 'any time'} (UTC)",
            f"  use limit        {self.use_limit or 'unlimited'}",
            f"  serial           {self.serial}",
            f"  delegation       {'none' if self.delegation == 0 else f'{self.delegation:#04x}'}",
            f"  signed by        owner key slot {key_slot(self.owner_pub).hex()}",
        ]
        problems = self.problems()
        lines.append(f"  check            {'; '.join(problems) if problems else 'signature valid'}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Revocation:
    group_id: bytes
    target: bytes
    serial: int
    action: int
    signature: bytes
    owner_pub: bytes
    body: bytes

    def verify(self) -> bool:
        return verify_signature(self.owner_pub, REVOCATION_TAG, self.body, self.signature)

    def describe(self) -> str:
        return "\n".join(
            [
                f"revocation document for reader group {self.group_id.hex()}",
                f"  action           {ACTION_NAMES[self.action]}",
                f"  target key slot  {self.target.hex()}",
                f"  serial           {self.serial}",
                f"  signed by        owner key slot {key_slot(self.owner_pub).hex()}",
                f"  check            {'signature valid' if self.verify() else 'signature does not verify'}",
            ]
        )


def _when(t: int, zero: str) -> str:
    if not t:
        return zero
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Fields:
    """The inner TLVs of a document, taken one by one in their required order."""

    def __init__(self, items):
        self.items = items
        self.pos = 0

    def peek(self):
        return self.items[self.pos].tag if self.pos < len(self.items) else None

    def take(self, tag: int, size: int | None = None) -> bytes:
        if self.pos >= len(self.items):
            raise DocumentError(f"missing tag {tag:02X}")
        item = self.items[self.pos]
        if item.tag != tag:
            raise DocumentError(f"expected tag {tag:02X}, found {item.tag:02X}")
        if size is not None and len(item.value) != size:
            raise DocumentError(f"tag {tag:02X} length {len(item.value)}, expected {size}")
        self.pos += 1
        return item.value

    def uint(self, tag: int, size: int) -> int:
        return int.from_bytes(self.take(tag, size), "big")

    def key(self, tag: int) -> bytes:
        value = self.take(tag, 65)
        if value[0] != 0x04:
            raise DocumentError(f"tag {tag:02X} not an uncompressed public key")
        return value


def _open(doc: bytes, tag: int, name: str) -> tuple[_Fields, bytes]:
    doc = bytes(doc)
    if not doc or doc[0] != tag:
        raise DocumentError(f"not a {name} document")
    try:
        outer = tlv.decode_one(doc)
        items = tlv.decode_all(outer.value)
    except tlv.TlvError as e:
        raise DocumentError(str(e)) from None
    return _Fields(items), outer.value


def _tail(f: _Fields, value: bytes) -> tuple[bytes, bytes, bytes]:
    # The body is everything before the signature. Decoding was strict (one encoding
    # per object), so re-encoding what was read gives back the original bytes.
    body = value[: len(tlv.encode_all(f.items[: f.pos]))]
    signature = f.take(_T_SIGNATURE, 64)
    owner = f.key(_T_OWNER)
    if f.pos != len(f.items):
        raise DocumentError("trailing bytes")
    return body, signature, owner


def parse_share(doc: bytes) -> Share:
    """A well-formed share document; DocumentError otherwise (the signature is not checked)."""
    f, value = _open(doc, SHARE_TAG, "share")
    if f.uint(_T_VERSION, 1) != VERSION:
        raise DocumentError("unsupported version")
    group_id = f.take(_T_GROUP, 16)
    friend_pub = f.key(_T_FRIEND)
    role = f.uint(_T_ROLE, 1)
    if role not in ROLE_NAMES:
        raise DocumentError("unknown role")
    entitlements = f.uint(_T_ENTITLEMENTS, 2)
    valid_from = f.uint(_T_FROM, 4)
    valid_until = f.uint(_T_UNTIL, 4)
    if valid_until and valid_until <= valid_from:
        raise DocumentError("empty validity window")
    schedule = decode_schedule(f.take(_T_SCHEDULE)) if f.peek() == _T_SCHEDULE else ()
    use_limit = f.uint(_T_USE_LIMIT, 2)
    serial = f.uint(_T_SERIAL, 4)
    delegation = f.uint(_T_DELEGATION, 1)
    body, signature, owner = _tail(f, value)
    return Share(group_id, friend_pub, role, entitlements, valid_from, valid_until, schedule, use_limit, serial, delegation, signature, owner, body)


def parse_revocation(doc: bytes) -> Revocation:
    """A well-formed revocation document; DocumentError otherwise (the signature is not checked)."""
    f, value = _open(doc, REVOCATION_TAG, "revocation")
    if f.uint(_T_VERSION, 1) != VERSION:
        raise DocumentError("unsupported version")
    group_id = f.take(_T_GROUP, 16)
    target = f.take(_T_TARGET, 8)
    serial = f.uint(_T_SERIAL, 4)
    action = f.uint(_T_ACTION, 1)
    if action not in ACTION_NAMES:
        raise DocumentError("unknown action")
    body, signature, owner = _tail(f, value)
    return Revocation(group_id, target, serial, action, signature, owner, body)


def parse(doc: bytes) -> Share | Revocation:
    """Either kind of document, by its leading tag."""
    if doc[:1] == bytes([REVOCATION_TAG]):
        return parse_revocation(doc)
    return parse_share(doc)
