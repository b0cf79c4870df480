# carkey — key stores for tests: the real KeyStore kept in memory, built from plain values.
# SPDX-License-Identifier: MIT
#
# The store points at a directory that does not exist and is never committed, so
# tests exercise the real lookups without touching a file. The bridge entry points
# let host tests run document acceptance inside MicroPython with such a store.

from carkey.ecu.codes import ROLE_OWNER, STATUS_ACTIVE, STATUS_REVOKED
from carkey.ecu.keystore import Credential, KeyStore

_NO_DIR = "/nonexistent/carkey-test-keystore"


def memory_store(creds=(), revoked=()):
    ks = KeyStore(_NO_DIR)
    for c in creds:
        ks.add(c)
    for slot in revoked:
        ks.set_status(slot, STATUS_REVOKED)
    return ks


def owner(pub, serial_floor=0, status=STATUS_ACTIVE):
    return Credential(pub, ROLE_OWNER, 0x7F, status=status, serial_floor=serial_floor)


def store_from(owners, others=(), revoked=()):
    """owners: [pub, serial_floor, status]; others: [pub, role, status, serial_floor]."""
    creds = [owner(o[0], o[1], o[2]) for o in owners]
    creds += [Credential(o[0], o[1], 0x01, status=o[2], serial_floor=o[3]) for o in others]
    return memory_store(creds, revoked)


def accept_share(doc, owners, others, revoked, group_id, friend_pub, now, clock_trusted):
    """documents.accept_share over a store_from store (bridge entry point)."""
    from carkey.ecu import documents

    return documents.accept_share(doc, store_from(owners, others, revoked), group_id, friend_pub, now, clock_trusted)


def accept_revocation(doc, owners, others, revoked, group_id):
    """documents.accept_revocation over a store_from store (bridge entry point)."""
    from carkey.ecu import documents

    return documents.accept_revocation(doc, store_from(owners, others, revoked), group_id)
