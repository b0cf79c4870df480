# carkey — the reader's admin operations: first boot, provisioning, owner-signed requests.
# SPDX-License-Identifier: MIT
#
# These are the only ways to change the reader's state besides a tap, so every
# host path (the Unix-port car, USB) goes through them. In factory state (no
# owner) provision() may enroll the first owner; after that, changes arrive as
# owner-signed documents (submit(): share, revocation, admin request, §9), so a
# board whose REPL is closed keeps the same host tools. enroll() is the bench
# path for a state directory the host holds directly (the virtual car). They
# take the state directory and return plain values; nothing here prints or
# returns a private key.

from carkey import storage
from carkey.ecu import codes, policy
from carkey.ecu.auditlog import KIND_ADMIN, TRANSPORT_USB, AuditLog
from carkey.ecu.car import IDENTITY_RECORD, create_identity, load_identity
from carkey.ecu.keystore import Credential, KeyStore

EXPORT_PAGE = 16  # audit records per export-log answer (§9)
KEY_PAGE = 4  # keys per list-keys answer, then revoked slots SLOT_PAGE at a time
SLOT_PAGE = 32
ROLES = {"owner": codes.ROLE_OWNER, "driver": codes.ROLE_DRIVER, "guest": codes.ROLE_GUEST, "valet": codes.ROLE_VALET}
ROLE_NAMES = {v: k for k, v in ROLES.items()}
STATUS_NAMES = ("active", "suspended", "revoked")


class AdminError(ValueError):
    pass


# Installed mode (docs/SECURITY.md): entered by provision(), before the owner is enrolled,
# so a power cut in between leaves the board closed rather than open. Installed, the
# application keeps the REPL closed and the unsigned bench paths (init, enroll,
# enroll_card, set_card_master_key) refuse; only owner-signed documents change the reader.
INSTALLED_RECORD = "installed"
MAINTENANCE_MAX_S = 3600  # the longest maintenance window one signed request opens

# Seconds of maintenance the last accepted request asked for (0: none); the running
# application takes it (take_maintenance) and hands the board back to the REPL.
_maintenance = [0]


def installed(dir):
    """Whether the reader is in installed mode. A record that cannot be read counts as
    installed: a damaged flash must not reopen the bench paths."""
    try:
        return storage.load(dir, INSTALLED_RECORD) is not None
    except (OSError, ValueError):
        return True


def install(dir):
    storage.save(dir, INSTALLED_RECORD, b"\x01")


def _bench(dir, what):
    if installed(dir):
        raise AdminError("%s refused: the reader is installed; only owner-signed requests change it" % what)


def take_maintenance():
    """Seconds of maintenance an accepted request asked for since the last call (0: none)."""
    seconds = _maintenance[0]
    _maintenance[0] = 0
    return seconds


# The admin session (§9): the challenge the car last issued, the number of the last
# request run under it, and whether the session is in the audit log yet. RAM only:
# a reset ends the session, so no captured request can run again, and reading
# (log, keys) never writes to flash beyond the session's one audit record.
_session = [None, 0, False]


def challenge(dir):
    """Open a new admin session (ending any other): the car's public identity and 16
    random bytes, hex, for the owner's tool to sign its requests over."""
    import os

    out = identity(dir)
    out["installed"] = installed(dir)  # the host then knows the raw REPL is closed
    _session[0] = os.urandom(16)
    _session[1] = 0
    _session[2] = False
    out["challenge"] = _session[0].hex()
    return out


def public_identity(ident):
    return {"reader_public_key": ident.public_key.hex(), "group_id": ident.group_id.hex(), "sub_id": ident.sub_id.hex()}


def init(dir):
    """Factory state → a reader identity made here. Refuses if one exists."""
    _bench(dir, "init")
    try:
        ident = create_identity(dir)
    except ValueError:
        raise AdminError("%s already holds a reader identity (enrolled keys trust it)" % dir)
    return public_identity(ident)


def identity(dir):
    try:
        return public_identity(load_identity(dir))
    except storage.StorageError as e:
        raise AdminError(str(e))


def has_identity(dir):
    return storage.load(dir, IDENTITY_RECORD) is not None


def enroll(dir, pub, role, entitlements=None, not_before=0, not_after=0, use_limit=0, profile=b"", when=0):
    """Enroll (or update) a key: pub is the 65-byte uncompressed public key.
    Entitlements default to the role's; narrowing is allowed, widening is not.
    Factory state only (a bench path): installed, the owner shares keys instead."""
    _bench(dir, "enroll")
    return _enroll(dir, pub, role, entitlements, not_before, not_after, use_limit, profile, when)


def _enroll(dir, pub, role, entitlements=None, not_before=0, not_after=0, use_limit=0, profile=b"", when=0):
    load_identity(dir)  # a key store without a reader is of no use: refuse early
    if role not in ROLE_NAMES:
        raise AdminError("unknown role %r" % role)
    defaults = policy.default_entitlements(role)
    if entitlements is None:
        entitlements = defaults
    elif entitlements & ~defaults:
        raise AdminError("entitlements 0x%04x exceed the %s role (0x%04x)" % (entitlements, ROLE_NAMES[role], defaults))
    if profile:
        from carkey.ecu.carbus import ProfileError, profile_items

        try:
            profile_items(profile)
        except ProfileError as e:
            raise AdminError("bad profile: %s" % e)
    store = KeyStore(dir)
    try:
        cred = Credential(pub, role, entitlements, not_before, not_after, use_limit=use_limit, profile=profile)
        old = store.get(pub)
        if old is not None:
            cred.kpersistent = old.kpersistent
            cred.serial_floor = old.serial_floor
            cred.uses = old.uses
            cred.last_use = old.last_use
        store.add(cred)
    except ValueError as e:  # KeyStoreError is a ValueError
        raise AdminError("cannot enroll: %s" % e)
    store.commit()
    AuditLog(dir).append(when, cred.slot, TRANSPORT_USB, KIND_ADMIN, codes.EVENT_ENROLL, codes.OK)
    return describe(cred)


def enroll_card(dir, uid, role, entitlements=None, not_before=0, not_after=0, use_limit=0, when=0):
    """Enroll (or update) the NTAG 424 DNA card with this 7-byte UID (never as owner)."""
    from carkey.ecu.keystore import card_identifier

    if role == codes.ROLE_OWNER:
        raise AdminError("a card cannot be an owner: it cannot sign")
    try:
        ident = card_identifier(bytes(uid))
    except ValueError:
        raise AdminError("a card UID is 7 bytes")
    return enroll(dir, ident, role, entitlements, not_before, not_after, use_limit, b"", when)


def set_card_master_key(dir, key):
    """Install the card master key the owner's tool provisions cards with (16 bytes)."""
    from carkey.ecu import cardkey

    _bench(dir, "set_card_master_key")
    load_identity(dir)
    try:
        cardkey.restore(dir, key)
    except cardkey.CardKeyError as e:
        raise AdminError(str(e))
    return {"card_master_key": "installed"}


def describe(cred):
    uid = cred.card_uid
    return {
        "slot": cred.slot.hex(),
        "kind": "card" if uid is not None else "phone",
        "card_uid": uid.hex() if uid is not None else None,
        "public_key": cred.pub.hex(),
        "role": ROLE_NAMES[cred.role],
        "status": STATUS_NAMES[cred.status],
        "entitlements": cred.entitlements,
        "not_before": cred.not_before,
        "not_after": cred.not_after,
        "use_limit": cred.use_limit,
        "uses": cred.uses,
        "last_use": cred.last_use,
        "fast_ready": cred.has_kpersistent(),
    }


def keys(dir, page=None, store=None):
    """Enrolled keys and revoked slots; with `page`, one page of them (§9): the keys
    KEY_PAGE at a time, then the revoked slots SLOT_PAGE at a time, and "more"."""
    store = store if store is not None else KeyStore(dir)
    if page is None:
        return {"keys": [describe(c) for c in store], "revoked_slots": [s.hex() for s in store.revoked_slots()]}
    key_pages = (len(store) + KEY_PAGE - 1) // KEY_PAGE
    out = {"keys": [], "revoked_slots": []}
    if page < key_pages:
        i = 0
        for c in store:
            if page * KEY_PAGE <= i < (page + 1) * KEY_PAGE:
                out["keys"].append(describe(c))
            i += 1
        out["more"] = page + 1 < key_pages or store.has_revoked()
        return out
    slots = store.revoked_slots()
    first = (page - key_pages) * SLOT_PAGE
    out["revoked_slots"] = [s.hex() for s in slots[first : first + SLOT_PAGE]]
    out["more"] = first + SLOT_PAGE < len(slots)
    return out


def log(dir, since_seq=0, audit=None, limit=0):
    """Audit records after since_seq, oldest first; at most `limit` of them (0: all)."""
    out = []
    for seq, when, slot, transport, kind, command, result in (audit or AuditLog(dir)).records(since_seq):
        out.append({"seq": seq, "time": when, "slot": slot.hex(), "transport": transport, "kind": kind,
                    "command": command, "result": result})
        if len(out) == limit:
            break
    return out


def strangers(dir, since_seq=0, limit=0):
    """The strangers' coalesced records (carkey.ecu.auditlog.StrangerLog) after
    since_seq, oldest first, each with its count of events; at most `limit` (0: all).
    Counts of the interval still running are in RAM and not yet among them."""
    from carkey.ecu.auditlog import StrangerLog

    out = []
    for seq, when, _slot, transport, kind, command, result, count in StrangerLog(dir).records(since_seq):
        out.append({"seq": seq, "time": when, "transport": transport, "kind": kind, "command": command,
                    "result": result, "count": count})
        if len(out) == limit:
            break
    return out


def set_clock(dir, unix, clock=None, audit=None):
    """The owner sets the time: it also becomes the "not earlier than" floor."""
    from carkey.clock import Clock, ClockError

    try:
        (clock or Clock(dir)).set_time(unix)
    except ClockError as e:
        raise AdminError(str(e))
    (audit or AuditLog(dir)).append(unix, None, TRANSPORT_USB, KIND_ADMIN, codes.EVENT_CLOCK, codes.OK)
    return {"time": unix}


def provision(dir, owner_pub, unix_time=0):
    """Factory state → a reader with its first owner: makes the identity if there is
    none, enrolls owner_pub as owner and sets the clock (when unix_time > 0).
    Refused once any owner is enrolled: from then on only owner-signed requests."""
    store = KeyStore(dir) if has_identity(dir) else None
    if store is not None and store.owners():
        raise AdminError("already provisioned: changes now need a request signed by an owner")
    if store is None:
        _bench(dir, "provision")  # installed without an identity: a damaged flash, not a factory board
        ident = public_identity(create_identity(dir))
    else:
        ident = identity(dir)
    install(dir)  # first: a power cut before the owner is in leaves the board closed
    key = _enroll(dir, owner_pub, codes.ROLE_OWNER, when=unix_time)
    if unix_time:
        set_clock(dir, unix_time)
    ident["owner"] = key
    return ident


def submit(dir, doc, now=0, clock=None, audit=None, store=None):
    """Apply one owner-signed document arriving over USB: a share document enrolls or
    updates the key it names, a revocation document revokes, suspends or resumes,
    an admin request runs its operation. Returns {"result": code, ...}; a refused
    document changes nothing. clock, audit, store: the running application's Clock,
    AuditLog (it keeps the log's head in RAM) and KeyStore, so a change reaches it
    and no second copy of the keys takes heap (default: read from dir)."""
    from carkey.ecu import documents

    ident = load_identity(dir)
    store = store if store is not None else KeyStore(dir)
    audit = audit or AuditLog(dir)
    tag = doc[0] if doc else 0
    try:
        if tag == documents.SHARE_TAG:
            friend = documents.parse_share(doc)["friend_pub"]
            # Over USB the owner's signature alone vouches for the key: no device presents it.
            code, detail = documents.accept_share(doc, store, ident.group_id, friend, now, _clock_trusted(dir))
            event = codes.EVENT_SHARE
        elif tag == documents.REVOCATION_TAG:
            code, detail = documents.accept_revocation(doc, store, ident.group_id)
            event = codes.EVENT_REVOCATION
        elif tag == documents.ADMIN_TAG:
            code, detail = documents.accept_admin(doc, store, ident.group_id, _session[0], _session[1])
            event = codes.EVENT_ADMIN
            if code == codes.OK:
                _session[1] = detail["serial"]  # runs once, whatever the operation's outcome
                if not _valid_operation(detail["operation"], detail["argument"]):
                    code, detail = codes.BAD_REQUEST, "unknown operation or bad argument"
        else:
            raise AdminError("not a carkey document (tag %02X)" % tag)
    except documents.DocumentError as e:
        raise AdminError("malformed document: %s" % e)
    out = {"result": code}
    if code != codes.OK:
        out["reason"] = detail
        audit.append(now, None, TRANSPORT_USB, KIND_ADMIN, event, code)
        return out
    if tag == documents.ADMIN_TAG:
        # Nothing to commit: the session is in RAM. One audit record per session.
        if not _session[2]:
            _session[2] = True
            audit.append(now, store.get(detail["owner"]).slot, TRANSPORT_USB, KIND_ADMIN, event, codes.OK)
        out.update(_operation(dir, detail["operation"], detail["argument"], clock, audit, store))
        return out
    from carkey.ecu.keystore import KeyStoreError

    try:
        if tag == documents.SHARE_TAG:
            cred = documents.apply_share(store, detail)
            out["key"] = describe(cred)
            slot = cred.slot
        else:
            documents.apply_revocation(store, detail)
            slot = detail["target"]
        store.commit()
    except KeyStoreError as e:
        # A full list answers as a tap does (NO_ROOM, §9) and changes nothing: RAM goes
        # back to the last commit.
        try:
            store.load()
        except (OSError, ValueError):
            pass  # unreadable: the next commit rewrites the store
        out = {"result": codes.NO_ROOM, "reason": "no room: %s" % e}
        audit.append(now, None, TRANSPORT_USB, KIND_ADMIN, event, codes.NO_ROOM)
        return out
    audit.append(now, slot, TRANSPORT_USB, KIND_ADMIN, event, codes.OK)
    return out


def _clock_trusted(dir):
    from carkey.clock import Clock

    return Clock(dir).trusted()


def _valid_operation(op, arg):
    if op == codes.ADMIN_SET_CLOCK:
        return len(arg) == 4 and int.from_bytes(arg, "big") > 0
    if op in (codes.ADMIN_EXPORT_LOG, codes.ADMIN_EXPORT_STRANGERS):
        return len(arg) == 4
    if op == codes.ADMIN_MAINTENANCE:
        return len(arg) == 2 and 0 < int.from_bytes(arg, "big") <= MAINTENANCE_MAX_S
    return op == codes.ADMIN_LIST_KEYS and len(arg) <= 1


def _operation(dir, op, arg, clock=None, audit=None, store=None):
    if op == codes.ADMIN_SET_CLOCK:
        return set_clock(dir, int.from_bytes(arg, "big"), clock, audit)
    if op == codes.ADMIN_EXPORT_LOG:
        # A page at a time: the answer is built on the heap of a running car.
        records = log(dir, int.from_bytes(arg, "big"), audit, EXPORT_PAGE + 1)
        return {"records": records[:EXPORT_PAGE], "more": len(records) > EXPORT_PAGE}
    if op == codes.ADMIN_EXPORT_STRANGERS:
        records = strangers(dir, int.from_bytes(arg, "big"), EXPORT_PAGE + 1)
        return {"records": records[:EXPORT_PAGE], "more": len(records) > EXPORT_PAGE}
    if op == codes.ADMIN_MAINTENANCE:
        # The application hands the board back once this answer is out (carkey.ecu.app).
        _maintenance[0] = int.from_bytes(arg, "big")
        (audit or AuditLog(dir)).append(clock.now() if clock else 0, None, TRANSPORT_USB, KIND_ADMIN, codes.EVENT_MAINTENANCE, codes.OK)
        return {"maintenance_s": _maintenance[0]}
    return keys(dir, arg[0] if arg else 0, store)
