# carkey — the key fob's flash: credential, trusted cars, Kpersistent per car, counters.
# SPDX-License-Identifier: MIT
#
# Four records through carkey.storage (power-cut safe, docs/STORAGE.md), so a cut
# while a Kpersistent is updated can never touch the credential or the trust list:
#   fobkey   magic CKFK | format | private 32 | public 65        (made here, never read out)
#   fobcars  magic CKFC | format | n | n x (group id 16 | reader public key 65)
#   fobkp    magic CKFP | format | n | n x (reader identifier 32 | Kpersistent 32), newest first
#   fobcount magic CKFN | format | transactions u32 | granted u32 | refused u32
#   fobshare magic CKFS | format | group id 16 | share document (an owner-signed E2 ...)
# A record that is there but malformed raises FobStateError: the fob says so
# rather than guessing.

import struct
from micropython import const

from carkey import storage

# What only provisioning does (make the key, trust a car, take a share document)
# is in carkey.fob.provision, loaded by these methods when called: a press reads
# and updates records but never loads it.

KEY_RECORD = "fobkey"
CARS_RECORD = "fobcars"
KP_RECORD = "fobkp"
COUNT_RECORD = "fobcount"
SHARE_RECORD = "fobshare"
FORMAT = const(1)  # of every record here (carkey.fob.provision writes them too)
_GROUP_LEN = const(16)
_RID_LEN = const(32)
_PUB_LEN = const(65)
_KP_LEN = const(32)
_CAR_ENTRY = const(81)  # group id 16 | reader public key 65
_KP_ENTRY = const(64)  # reader identifier 32 | Kpersistent 32
MAX_CARS = const(4)
MAX_KPERSISTENT = const(4)  # one per car the fob talks to; the oldest goes first


class FobStateError(ValueError):
    pass


def _head(magic, body, what):
    if body is None:
        return None
    if len(body) < 5 or body[:4] != magic:
        raise FobStateError("%s record is not a fob %s" % (what, what))
    if body[4] != FORMAT:
        raise FobStateError("%s record has unknown format %d" % (what, body[4]))
    return memoryview(body)[5:]


def _entries(magic, body, size, limit, what):
    rest = _head(magic, body, what)
    if rest is None:
        return []
    if not len(rest) or len(rest) != 1 + rest[0] * size or rest[0] > limit:
        raise FobStateError("%s record is damaged" % what)
    return [bytes(rest[1 + i * size : 1 + (i + 1) * size]) for i in range(rest[0])]


def _pack(magic, entries):
    out = bytearray(magic)
    out.append(FORMAT)
    out.append(len(entries))
    for e in entries:
        out.extend(e)
    return out


class FobState:
    def __init__(self, dir):
        self.dir = dir

    # --- credential ---------------------------------------------------------------

    def has_credential(self):
        return storage.load(self.dir, KEY_RECORD) is not None

    def create_credential(self):
        # The fob's key pair, made on the fob (carkey.fob.provision): the public key.
        from carkey.fob import provision

        return provision.create_credential(self)

    def credential(self):
        # (private key, public key); FobStateError if the fob has none.
        rest = _head(b"CKFK", storage.load(self.dir, KEY_RECORD), "key")
        if rest is None:
            raise FobStateError("this fob has no credential yet (fob init)")
        if len(rest) != 32 + _PUB_LEN:
            raise FobStateError("key record is damaged")
        return bytes(rest[:32]), bytes(rest[32:])

    def public_key(self):
        return self.credential()[1]

    # --- trusted cars -----------------------------------------------------------------

    def cars(self):
        # [(group id, reader public key)]
        out = []
        for e in _entries(b"CKFC", storage.load(self.dir, CARS_RECORD), _CAR_ENTRY, MAX_CARS, "cars"):
            out.append((e[:_GROUP_LEN], e[_GROUP_LEN:]))
        return out

    def reader_key(self, group_id):
        # The trusted reader public key of this group, or None.
        for gid, pub in self.cars():
            if gid == group_id:
                return pub
        return None

    def trust(self, group_id, reader_public_key):
        # Trust this car (carkey.fob.provision).
        from carkey.fob import provision

        provision.trust(self, group_id, reader_public_key)

    # --- Kpersistent ------------------------------------------------------------------

    def _kps(self):
        return _entries(b"CKFP", storage.load(self.dir, KP_RECORD), _KP_ENTRY, MAX_KPERSISTENT, "Kpersistent")

    def kpersistent(self, reader_identifier):
        for e in self._kps():
            if e[:_RID_LEN] == reader_identifier:
                return e[_RID_LEN:]
        return None

    def set_kpersistent(self, reader_identifier, kp):
        if len(reader_identifier) != _RID_LEN or len(kp) != _KP_LEN:
            raise FobStateError("reader identifier and Kpersistent are 32 bytes")
        rid = bytes(reader_identifier)
        kps = [e for e in self._kps() if e[:_RID_LEN] != rid]
        kps.insert(0, rid + bytes(kp))
        storage.save(self.dir, KP_RECORD, _pack(b"CKFP", kps[:MAX_KPERSISTENT]))

    def forget_kpersistent(self, reader_identifier):
        self._drop_kp(lambda rid: rid == reader_identifier)

    def _drop_kp(self, match):
        kps = self._kps()
        keep = [e for e in kps if not match(e[:_RID_LEN])]
        if len(keep) != len(kps):
            storage.save(self.dir, KP_RECORD, _pack(b"CKFP", keep))

    # --- counters -------------------------------------------------------------------------

    def counters(self):
        # (transactions, granted, refused)
        rest = _head(b"CKFN", storage.load(self.dir, COUNT_RECORD), "counters")
        if rest is None:
            return 0, 0, 0
        if len(rest) != 12:
            raise FobStateError("counters record is damaged")
        return struct.unpack(">III", rest)

    def count(self, granted):
        n, ok, refused = self.counters()
        body = bytearray(b"CKFN")
        body.append(FORMAT)
        body.extend(struct.pack(">III", n + 1, ok + (1 if granted else 0), refused + (0 if granted else 1)))
        storage.save(self.dir, COUNT_RECORD, body)

    # --- a share document (instead of being enrolled) ------------------------------

    def set_share(self, group_id, document):
        # Present this share document at the next transaction with that car (carkey.fob.provision).
        from carkey.fob import provision

        provision.set_share(self, group_id, document)

    def share(self, group_id):
        rest = _head(b"CKFS", storage.load(self.dir, SHARE_RECORD), "share")
        if rest is None or len(rest) <= _GROUP_LEN:
            return None
        return bytes(rest[_GROUP_LEN:]) if rest[:_GROUP_LEN] == group_id else None

    def drop_share(self):
        # The car accepted it: the key is enrolled now.
        storage.remove(self.dir, SHARE_RECORD)
