# carkey — the reader's admin operations: first-boot identity, enrolment, clock, log export.
# SPDX-License-Identifier: MIT
#
# These are the only ways to change the reader's state besides a tap, so every
# host path (the Unix-port car, provisioning over USB) goes through them. They
# take the state directory and return plain values; nothing here prints or
# returns a private key.

from carkey import storage
from carkey.ecu import codes, policy
from carkey.ecu.auditlog import KIND_ADMIN, TRANSPORT_USB, AuditLog
from carkey.ecu.car import IDENTITY_RECORD, create_identity, load_identity
from carkey.ecu.keystore import Credential, KeyStore

ROLES = {"owner": codes.ROLE_OWNER, "driver": codes.ROLE_DRIVER, "guest": codes.ROLE_GUEST, "valet": codes.ROLE_VALET}
ROLE_NAMES = {v: k for k, v in ROLES.items()}
STATUS_NAMES = ("active", "suspended", "revoked")


class AdminError(ValueError):
    pass


def public_identity(ident):
    return {"reader_public_key": ident.public_key.hex(), "group_id": ident.group_id.hex(), "sub_id": ident.sub_id.hex()}


def init(dir):
    """Factory state → a reader identity made here. Refuses if one exists."""
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
    Entitlements default to the role's; narrowing is allowed, widening is not."""
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
    keys = KeyStore(dir)
    try:
        cred = Credential(pub, role, entitlements, not_before, not_after, use_limit=use_limit, profile=profile)
        old = keys.get(pub)
        if old is not None:
            cred.kpersistent = old.kpersistent
            cred.serial_floor = old.serial_floor
            cred.uses = old.uses
            cred.last_use = old.last_use
        keys.add(cred)
    except ValueError as e:  # KeyStoreError is a ValueError
        raise AdminError("cannot enroll: %s" % e)
    keys.commit()
    AuditLog(dir).append(when, cred.slot, TRANSPORT_USB, KIND_ADMIN, codes.EVENT_ENROLL, codes.OK)
    return describe(cred)


def describe(cred):
    return {
        "slot": cred.slot.hex(),
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


def keys(dir):
    store = KeyStore(dir)
    return {"keys": [describe(c) for c in store], "revoked_slots": [s.hex() for s in store.revoked_slots()]}


def log(dir, since_seq=0):
    return [
        {"seq": seq, "time": when, "slot": slot.hex(), "transport": transport, "kind": kind, "command": command,
         "result": result}
        for seq, when, slot, transport, kind, command, result in AuditLog(dir).records(since_seq)
    ]


def set_clock(dir, unix, clock=None):
    """The owner sets the time: it also becomes the "not earlier than" floor."""
    from carkey.clock import Clock, ClockError

    try:
        (clock or Clock(dir)).set_time(unix)
    except ClockError as e:
        raise AdminError(str(e))
    AuditLog(dir).append(unix, None, TRANSPORT_USB, KIND_ADMIN, codes.EVENT_CLOCK, codes.OK)
    return {"time": unix}
