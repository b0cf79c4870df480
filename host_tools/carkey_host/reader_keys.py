"""A reader identity made on the host, for tests and benchmarks that run the firmware
reader with a key the simulated phones already trust.

The firmware makes its own identity on a real board (carkey.ecu.admin.init); this one
exists so a test can start a reader and its phones together. `blob` is the identity
record layout of docs/STORAGE.md (CKRI, format 1, group id, sub id, private, public).
"""

import os

from . import ble_phone
from .aliro import crypto
from .aliro.kpersistent_cache import KpersistentCache
from .aliro.user_device import UserDevice


class ReaderKeys:
    """A reader identity made on the host, so simulated phones can trust its group key."""

    def __init__(self):
        key = crypto.generate_private_key()
        self.group_id = os.urandom(16)
        self.sub_id = os.urandom(16)
        self.public_key = crypto.public_key_bytes(key)
        self.identifier = self.group_id + self.sub_id
        self.blob = b"CKRI\x01" + self.group_id + self.sub_id + crypto.private_key_to_bytes(key) + self.public_key

    @property
    def name(self):
        return ble_phone.device_name(self.group_id)

    def device(self, trusted=True, handler=None):
        """A user device holding a fresh credential that trusts (or not) this reader."""
        return UserDevice(crypto.generate_private_key(), {self.group_id: self.public_key} if trusted else {},
                          kpersistent_cache=KpersistentCache(), exchange_handler=handler)
