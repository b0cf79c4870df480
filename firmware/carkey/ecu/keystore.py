# carkey — the reader's key store: enrolled credentials, revocation list, counters; saved atomically.
# SPDX-License-Identifier: MIT
#
# Everything lives in memory between commits; commit() writes the whole store as
# one record through carkey.storage, so a power cut leaves either the previous
# commit or the new one. Binary format: docs/STORAGE.md. Values of roles and
# states: carkey.ecu.codes (docs/PROTOCOL.md §5, §7).
#
# A credential keeps its fields in one bytearray laid out exactly as its record in
# the file, read and written through properties: about half the RAM of one
# attribute per field, and a commit writes each buffer as it is.

import hashlib
import struct
from binascii import hexlify
from micropython import const

from carkey import storage

MAX_CREDENTIALS = const(32)
MAX_REVOKED = const(128)  # revoked slots are never forgotten: refuse rather than drop one
MAX_COUNTERS = const(16)
MAX_PROFILE = const(128)
MAX_SCHEDULE = const(255)
PUB_LEN = const(65)
SLOT_LEN = const(8)
UID_LEN = const(7)
_PHONE = const(0x04)  # identifier 04 || X || Y: a P-256 credential public key
_CARD = const(0x00)  # identifier 00 || UID(7) || 57 zeros: an NTAG 424 DNA card key
KPERSISTENT_LEN = const(32)

_OWNER = const(1)
_VALET = const(4)
_ACTIVE = const(0)
_REVOKED = const(2)

_RECORD = "keys"
_FORMAT_VERSION = const(1)
_HEAD = ">BBHB"  # format version, credentials, revoked slots, counters
_HEAD_SIZE = const(5)

# Credential record: fixed part, then Kpersistent (if flagged), schedule, profile.
_CRED = ">65sBBBHIIHIIIBB"
_FIXED = const(94)
_ROLE = const(65)
_STATUS = const(66)
_FLAGS = const(67)
_ENTITLEMENTS = const(68)
_NOT_BEFORE = const(70)
_NOT_AFTER = const(74)
_USE_LIMIT = const(78)
_USES = const(80)
_LAST_USE = const(84)
_SERIAL_FLOOR = const(88)
_SCHEDULE_LEN = const(92)
_PROFILE_LEN = const(93)
_FLAG_KPERSISTENT = const(1)

_U16 = const(0xFFFF)
_U32 = const(0xFFFFFFFF)


class KeyStoreError(ValueError):
    def __init__(self, reason):
        super().__init__("keystore: " + reason)


def _bad(field):
    raise KeyStoreError("bad credential field " + field)


def key_slot(pub):
    """carkey's key slot: the first 8 bytes of SHA-1 of the 65-byte identifier."""
    return hashlib.sha1(pub).digest()[:SLOT_LEN]


def card_identifier(uid):
    """The 65-byte identifier of the card with this 7-byte UID: 00 || UID || zeros."""
    if len(uid) != UID_LEN:
        _bad("card uid")
    return bytes(1) + bytes(uid) + bytes(PUB_LEN - 1 - UID_LEN)


def _identifier_ok(r):
    # The first 65 bytes of r: a phone's public key, or a card's UID and zeros.
    if r[0] == _PHONE:
        return True
    if r[0] != _CARD:
        return False
    for i in range(1 + UID_LEN, PUB_LEN):
        if r[i]:
            return False
    return True


class _IntField:
    # A credential's integer field, read and written in place in its record. One small
    # object per field (a descriptor): the two closures and five cells a property
    # needed per field held about 2 KiB more heap, and a read costs the same.
    def __init__(self, offset, fmt, low, high, name):
        self.offset = offset
        self.fmt = fmt
        self.low = low
        self.high = high
        self.name = name

    def __get__(self, c, owner):
        return struct.unpack_from(self.fmt, c._r, self.offset)[0]

    def __set__(self, c, value):
        if not self.low <= value <= self.high:
            _bad(self.name)
        struct.pack_into(self.fmt, c._r, self.offset, value)


class Credential:
    """One enrolled key. Times are Unix seconds (0 = none); schedule is 5·n bytes
    (docs/PROTOCOL.md §5 tag 87), b"" = always; use_limit 0 = unlimited."""

    role = _IntField(_ROLE, ">B", _OWNER, _VALET, "role")
    status = _IntField(_STATUS, ">B", _ACTIVE, _REVOKED, "status")
    entitlements = _IntField(_ENTITLEMENTS, ">H", 0, _U16, "entitlements")
    not_before = _IntField(_NOT_BEFORE, ">I", 0, _U32, "not_before")
    not_after = _IntField(_NOT_AFTER, ">I", 0, _U32, "not_after")
    use_limit = _IntField(_USE_LIMIT, ">H", 0, _U16, "use_limit")
    uses = _IntField(_USES, ">I", 0, _U32, "uses")
    last_use = _IntField(_LAST_USE, ">I", 0, _U32, "last_use")
    serial_floor = _IntField(_SERIAL_FLOOR, ">I", 0, _U32, "serial_floor")

    def __init__(
        self,
        pub,
        role,
        entitlements,
        not_before=0,
        not_after=0,
        schedule=b"",
        use_limit=0,
        uses=0,
        status=_ACTIVE,
        kpersistent=None,
        last_use=0,
        profile=b"",
        serial_floor=0,
    ):
        if len(pub) != PUB_LEN or not _identifier_ok(pub):
            _bad("pub")
        if pub[0] == _CARD and role == _OWNER:
            _bad("role: a card cannot be an owner")
        self._r = bytearray(_FIXED)
        self._r[:PUB_LEN] = pub
        self.slot = key_slot(pub)
        self.role = role
        self.status = status
        self.entitlements = entitlements
        self.not_before = not_before
        self.not_after = not_after
        self.use_limit = use_limit
        self.uses = uses
        self.last_use = last_use
        self.serial_floor = serial_floor
        self._rebuild(kpersistent, schedule, profile)

    @property
    def pub(self):
        return bytes(self._r[:PUB_LEN])

    @property
    def card_uid(self):
        """The card's 7-byte UID for a card key, None for a phone's key."""
        r = self._r
        return bytes(r[1 : 1 + UID_LEN]) if r[0] == _CARD else None

    def _parts(self):
        """Offsets of Kpersistent, schedule and profile, and the record's end."""
        r = self._r
        kp = _FIXED
        sched = kp + (KPERSISTENT_LEN if r[_FLAGS] & _FLAG_KPERSISTENT else 0)
        prof = sched + r[_SCHEDULE_LEN]
        return kp, sched, prof, prof + r[_PROFILE_LEN]

    def _rebuild(self, kpersistent, schedule, profile):
        # Variable parts change rarely (enrolment, first fast transaction): copy the record.
        if kpersistent is not None and len(kpersistent) != KPERSISTENT_LEN:
            _bad("kpersistent")
        if len(schedule) % 5 or len(schedule) > MAX_SCHEDULE:
            _bad("schedule")
        if len(profile) > MAX_PROFILE:
            _bad("profile")
        nkp = 0 if kpersistent is None else KPERSISTENT_LEN
        r = bytearray(_FIXED + nkp + len(schedule) + len(profile))
        r[:_FIXED] = memoryview(self._r)[:_FIXED]
        r[_FLAGS] = _FLAG_KPERSISTENT if nkp else 0
        r[_SCHEDULE_LEN] = len(schedule)
        r[_PROFILE_LEN] = len(profile)
        pos = _FIXED
        for part in (kpersistent, schedule, profile):
            if part:
                r[pos : pos + len(part)] = part
                pos += len(part)
        old = self._r
        if old[_FLAGS] & _FLAG_KPERSISTENT:
            # Do not leave the old Kpersistent in a freed buffer.
            for i in range(_FIXED, _FIXED + KPERSISTENT_LEN):
                old[i] = 0
        self._r = r

    @property
    def kpersistent(self):
        kp, sched, _, _ = self._parts()
        return bytes(self._r[kp:sched]) if sched > kp else None

    @kpersistent.setter
    def kpersistent(self, k):
        self._rebuild(k, self.schedule, self.profile)

    @property
    def schedule(self):
        _, sched, prof, _ = self._parts()
        return bytes(self._r[sched:prof])

    @schedule.setter
    def schedule(self, value):
        self._rebuild(self.kpersistent, value, self.profile)

    @property
    def profile(self):
        _, _, prof, end = self._parts()
        return bytes(self._r[prof:end])

    @profile.setter
    def profile(self, value):
        self._rebuild(self.kpersistent, self.schedule, value)

    def has_kpersistent(self):
        return bool(self._r[_FLAGS] & _FLAG_KPERSISTENT)

    def __repr__(self):
        # Kpersistent is a secret: say whether there is one, never what it is.
        return "Credential(slot=%s role=%d status=%d entitlements=0x%02x uses=%d kpersistent=%s)" % (
            hexlify(self.slot).decode(),
            self.role,
            self.status,
            self.entitlements,
            self.uses,
            "set" if self.has_kpersistent() else "none",
        )


class _Loaded(Credential):
    """A credential read back from flash: its record is already laid out."""

    def __init__(self, record):
        self._r = record
        self.slot = key_slot(memoryview(record)[:PUB_LEN])


def _read(f, n):
    data = f.read(n)
    if len(data) != n:
        raise KeyStoreError("truncated")
    return data


class KeyStore:
    """The enrolled credentials of one reader, kept in dir (record "keys")."""

    def __init__(self, dir, name=_RECORD, table_buffer=None):
        self._dir = dir
        self._name = name
        # Where table() reads verification tables (a 4160-byte bytearray the car
        # makes at start-up, so a tap never asks for 4 KiB in one piece); without
        # one, each table is read into a new bytes object.
        self._table_buf = table_buffer
        self.load()

    # -- persistence ------------------------------------------------------

    def load(self):
        """Replace the in-memory state with the last commit (empty if none).

        Raises storage.StorageError if state existed but no copy is intact, and
        KeyStoreError for a format this firmware does not know."""
        self._creds = []  # most recently used first
        self._revoked = bytearray()  # SLOT_LEN bytes per revoked slot
        self._counters = {}
        storage.load_with(self._dir, self._name, self._read_body)

    def _read_body(self, f, length):
        # Parsed straight from the file: only what the store keeps is allocated.
        version, ncred, nrev, ncount = struct.unpack(_HEAD, _read(f, _HEAD_SIZE))
        if version != _FORMAT_VERSION:
            raise KeyStoreError("unsupported format version %d" % version)
        used = _HEAD_SIZE
        for _ in range(ncount):
            n = _read(f, 1)[0]
            try:
                name = str(_read(f, n), "utf-8")
            except UnicodeError:
                raise KeyStoreError("malformed counter name")
            self._counters[name] = struct.unpack(">I", _read(f, 4))[0]
            used += 5 + n
        # Counts are checked against the record's length before anything is allocated
        # for them: a damaged count must not cost more RAM than the record itself.
        if used + nrev * SLOT_LEN + ncred * _FIXED > length:
            raise KeyStoreError("counts exceed the record")
        self._revoked = bytearray(_read(f, nrev * SLOT_LEN))
        used += nrev * SLOT_LEN
        fixed = bytearray(_FIXED)
        for _ in range(ncred):
            if f.readinto(fixed) != _FIXED:
                raise KeyStoreError("truncated")
            if not (_OWNER <= fixed[_ROLE] <= _VALET and fixed[_STATUS] <= _REVOKED and _identifier_ok(fixed)):
                raise KeyStoreError("malformed credential")
            if fixed[0] == _CARD and fixed[_ROLE] == _OWNER:
                raise KeyStoreError("malformed credential")
            size = _FIXED + fixed[_SCHEDULE_LEN] + fixed[_PROFILE_LEN]
            if fixed[_FLAGS] & _FLAG_KPERSISTENT:
                size += KPERSISTENT_LEN
            record = bytearray(size)
            record[:_FIXED] = fixed
            if f.readinto(memoryview(record)[_FIXED:]) != size - _FIXED:
                raise KeyStoreError("truncated")
            self._creds.append(_Loaded(record))
            used += size
        if used != length:
            raise KeyStoreError("length mismatch")

    def _size(self):
        size = _HEAD_SIZE + len(self._revoked)
        for name in self._counters:
            size += 5 + len(name.encode())
        for c in self._creds:
            size += len(c._r)
        return size

    def commit(self):
        """Write the whole store atomically (either this state or the previous one
        survives a power cut). Returns the storage generation."""
        return storage.save_with(self._dir, self._name, self._size(), self._write_body)

    def _write_body(self, out):
        out.write(
            struct.pack(_HEAD, _FORMAT_VERSION, len(self._creds), len(self._revoked) // SLOT_LEN, len(self._counters))
        )
        for name, value in self._counters.items():
            name = name.encode()
            out.write(bytes((len(name),)))
            out.write(name)
            out.write(struct.pack(">I", value))
        out.write(self._revoked)
        for c in self._creds:
            out.write(c._r)

    # -- lookups ----------------------------------------------------------

    def __len__(self):
        return len(self._creds)

    def __iter__(self):
        return iter(self._creds)

    def by_slot(self, slot):
        for c in self._creds:
            if c.slot == slot:
                return c
        return None

    def get(self, pub):
        c = self.by_slot(key_slot(pub))
        if c is not None and memoryview(c._r)[:PUB_LEN] == pub:
            return c
        return None

    lookup = get  # the name carkey.protocol.reader uses
    find = get  # names used by carkey.ecu.documents
    find_slot = by_slot

    def owners(self):
        return [c for c in self._creds if c.role == _OWNER]

    def fast_candidates(self):
        """Credentials with a Kpersistent that are not revoked, most recently used first:
        the order in which the reader tries them against a fast cryptogram."""
        return [c for c in self._creds if c.has_kpersistent() and c.status != _REVOKED]

    # -- changes (in memory until commit) ---------------------------------

    def _known(self, pub):
        c = self.get(pub)
        if c is None:
            raise KeyStoreError("unknown credential")
        return c

    def add(self, cred):
        """Enroll cred, or replace the record with the same public key."""
        if self.is_revoked(cred.slot):
            raise KeyStoreError("key slot revoked")
        old = self.by_slot(cred.slot)
        if old is not None:
            if old._r[:PUB_LEN] != cred._r[:PUB_LEN]:
                raise KeyStoreError("key slot collision")
            self._creds[self._creds.index(old)] = cred
        elif len(self._creds) >= MAX_CREDENTIALS:
            raise KeyStoreError("full")
        else:
            self._creds.append(cred)
        return cred

    def remove(self, slot):
        """Drop the record for slot (a revoked slot stays on the revocation list)."""
        c = self.by_slot(slot)
        if c is not None:
            self._creds.remove(c)
        return c

    def set_kpersistent(self, pub, k):
        """Cache (or with None, forget) the credential's Kpersistent."""
        c = self._known(pub)
        if k is not None and c.status == _REVOKED:
            raise KeyStoreError("credential revoked")
        c.kpersistent = k
        return c

    def record_use(self, pub, when):
        """Count a granted use at Unix time when and move the key to the front of
        the fast-transaction order."""
        c = self._known(pub)
        c.last_use = when
        c.uses += 1
        self._creds.remove(c)
        self._creds.insert(0, c)
        return c

    def set_status(self, slot, status):
        """Set a key's status. Revoking is permanent, applies to slots not enrolled
        (yet), wipes the key's Kpersistent and puts the slot on the revocation list.
        Returns the credential, or None for a revoked slot without a record."""
        c = self.by_slot(slot)
        if status == _REVOKED:
            if len(slot) != SLOT_LEN:
                _bad("slot")
            if not self.is_revoked(slot):
                if len(self._revoked) < MAX_REVOKED * SLOT_LEN:
                    self._revoked.extend(slot)
                elif c is None:
                    raise KeyStoreError("revocation list full")
                # else: a full list, and the key's own revoked record (with its serial
                # floor) keeps it out for good; the owner can always revoke a key it sees.
            if c is not None:
                c.status = _REVOKED
                c.kpersistent = None
            return c
        if not _ACTIVE <= status < _REVOKED:
            _bad("status")
        if self.is_revoked(slot) or (c is not None and c.status == _REVOKED):
            raise KeyStoreError("revocation is permanent")
        if c is None:
            raise KeyStoreError("unknown credential")
        c.status = status
        return c

    def is_revoked(self, slot):
        rev = memoryview(self._revoked)
        for i in range(0, len(rev), SLOT_LEN):
            if rev[i : i + SLOT_LEN] == slot:
                return True
        return False

    def has_revoked(self):
        return len(self._revoked) > 0

    def revoked_slots(self):
        rev = self._revoked
        return [bytes(rev[i : i + SLOT_LEN]) for i in range(0, len(rev), SLOT_LEN)]

    # -- verification tables: per phone key, public, rebuilt if lost --------

    @staticmethod
    def _table_record(cred):
        return "vt" + hexlify(cred.slot).decode()

    def table(self, cred):
        """The key's P-256 verification table (carkey.crypto.p256.verify_table) from
        flash, or None: missing or damaged tables only make verification slower.
        With a table_buffer the table is read into it: valid until the next call
        (one tap at a time)."""
        if cred.card_uid is not None:
            return None
        try:
            if self._table_buf is None:
                return storage.load(self._dir, self._table_record(cred))
            return storage.load_with(self._dir, self._table_record(cred), self._read_table)
        except (storage.StorageError, OSError):
            return None

    def _read_table(self, f, length):
        buf = self._table_buf
        if length != len(buf) or f.readinto(buf) != length:
            return None
        return buf

    def store_table(self, cred, table):
        storage.save(self._dir, self._table_record(cred), table)

    def without_table(self):
        """Active phone keys whose verification table is not on flash yet."""
        return [c for c in self._creds if c.card_uid is None and c.status == _ACTIVE
                and not storage.exists(self._dir, self._table_record(c))]

    # -- counters: small named u32 values persisted with the store ---------

    def counter(self, name):
        return self._counters.get(name, 0)

    def set_counter(self, name, value):
        if not 0 <= value <= _U32:
            raise KeyStoreError("counter out of range")
        if name not in self._counters:
            if len(self._counters) >= MAX_COUNTERS or not 0 < len(name.encode()) < 256:
                raise KeyStoreError("counter name or count")
        self._counters[name] = value

    def bump(self, name, by=1):
        value = self.counter(name) + by
        self.set_counter(name, value)
        return value
