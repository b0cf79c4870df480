# carkey — failed-authentication lockouts: one shared by strangers, one per enrolled key; persisted, bounded.
# SPDX-License-Identifier: MIT
#
# docs/PROTOCOL.md §7. A device that has not proved an enrolled key is a stranger,
# whatever key it names: its failures count in one limiter, whose lockout refuses
# strangers only, so no stranger can keep a key the car knows out. Failures after a
# key proved itself (an EXCHANGE that no longer authenticates) count against that
# key alone. The record holds the strangers' state and at most MAX_KEYS keys'
# states (about 150 bytes): a power cut keeps the last commit (carkey.storage).

from micropython import const

from carkey import storage
from carkey.ecu.policy import LOCKOUT_STATE_LEN, Lockout

RECORD = "lockout"
MAX_KEYS = const(4)
SLOT_LEN = const(8)
_VERSION = const(2)
_ENTRY = const(30)  # slot 8 | lockout state 22


class Lockouts:
    def __init__(self, dir):
        self._dir = dir
        self.strangers = Lockout()
        self._keys = []  # [(slot, Lockout)], least recently failed first
        try:
            self._load(storage.load(dir, RECORD))
        except (storage.StorageError, ValueError):
            # A damaged record must not unlock anything and must not stop the car:
            # start clean, which at worst forgets a few recent failures.
            self.strangers = Lockout()
            self._keys = []

    def _load(self, body):
        if body is None:
            return
        if len(body) == LOCKOUT_STATE_LEN:
            # Format 1 had one lockout for every device: it becomes the strangers'.
            self.strangers = Lockout(body)
            return
        if len(body) < 2 + LOCKOUT_STATE_LEN or body[0] != _VERSION:
            raise ValueError("lockout record")
        n = body[1 + LOCKOUT_STATE_LEN]
        if n > MAX_KEYS or len(body) != 2 + LOCKOUT_STATE_LEN + n * _ENTRY:
            raise ValueError("lockout record length")
        self.strangers = Lockout(body[1 : 1 + LOCKOUT_STATE_LEN])
        pos = 2 + LOCKOUT_STATE_LEN
        for _ in range(n):
            self._keys.append((bytes(body[pos : pos + SLOT_LEN]), Lockout(body[pos + SLOT_LEN : pos + _ENTRY])))
            pos += _ENTRY

    def save(self):
        out = bytearray(2 + LOCKOUT_STATE_LEN + len(self._keys) * _ENTRY)
        out[0] = _VERSION
        out[1 : 1 + LOCKOUT_STATE_LEN] = self.strangers.to_bytes()
        out[1 + LOCKOUT_STATE_LEN] = len(self._keys)
        pos = 2 + LOCKOUT_STATE_LEN
        for slot, lock in self._keys:
            out[pos : pos + SLOT_LEN] = slot
            out[pos + SLOT_LEN : pos + _ENTRY] = lock.to_bytes()
            pos += _ENTRY
        storage.save(self._dir, RECORD, out)

    def key(self, slot):
        """The lockout of the key with this slot, or None (no failures on record)."""
        for s, lock in self._keys:
            if s == slot:
                return lock
        return None

    def strangers_locked(self, now):
        return self.strangers.locked(now)

    def stranger_failure(self, now):
        """A device that proved no enrolled key failed; written at once. Failures
        during the strangers' lockout are not counted (nor written: no flash wear)."""
        if not self.strangers.locked(now):
            self.strangers.failure(now)
            self.save()

    def key_failure(self, slot, now):
        """The key with this slot proved itself, then failed: counted against it."""
        lock = self.key(slot)
        if lock is None:
            lock = Lockout()
            if len(self._keys) == MAX_KEYS:
                self._evict(now)
            self._keys.append((bytes(slot), lock))
        else:
            self._keys.remove((slot, lock))  # keep the order: least recently failed first
            self._keys.append((bytes(slot), lock))
        if not lock.locked(now):
            lock.failure(now)
            self.save()

    def _evict(self, now):
        # Full: drop the least recently failed key that is not locked out, else the
        # lockout that ends first. Only keys that proved themselves get here.
        victim = None
        for entry in self._keys:
            if not entry[1].locked(now):
                victim = entry
                break
        if victim is None:
            victim = min(self._keys, key=lambda e: e[1].until)
        self._keys.remove(victim)

    def granted_standard(self, slot):
        """A granted standard transaction of this key forgets its failures."""
        lock = self.key(slot)
        if lock is not None:
            self._keys.remove((slot, lock))
            self.save()
