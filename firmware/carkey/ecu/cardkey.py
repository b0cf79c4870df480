# carkey — the reader's card master key: one 16-byte AES secret, record "cardkey" beside the reader identity.
# SPDX-License-Identifier: MIT
#
# Every card key is diversified from it (carkey.protocol.ntag424.card_key), so it
# is as secret as the reader's private key and kept the same way: a record file
# through carkey.storage (docs/STORAGE.md §6), never printed or logged. Replacing
# it would orphan every provisioned card, so create() refuses when one exists;
# restore() writes a known key (an owner moving cards to a new reader).

import os
from micropython import const

from carkey import storage

_RECORD = "cardkey"
_VERSION = const(1)
KEY_LEN = const(16)


class CardKeyError(ValueError):
    def __init__(self, reason):
        super().__init__("cardkey: " + reason)


def load(dir):
    """The card master key as a bytearray (wipe it after use), or None if there is none."""
    body = storage.load(dir, _RECORD)
    if body is None:
        return None
    if len(body) != 1 + KEY_LEN:
        raise CardKeyError("record of %d bytes, expected 17" % len(body))
    if body[0] != _VERSION:
        raise CardKeyError("unsupported format version %d" % body[0])
    return bytearray(body[1:])


def _save(dir, key):
    body = bytearray(1 + KEY_LEN)
    body[0] = _VERSION
    body[1:] = key
    try:
        storage.save(dir, _RECORD, body)
    finally:
        for i in range(len(body)):
            body[i] = 0


def create(dir):
    """Draw and store a new card master key; refuses if the reader already has one.
    On an ESP32, call it with the radio up: only then is os.urandom truly random."""
    if storage.load(dir, _RECORD) is not None:
        raise CardKeyError("a card master key exists; replacing it would orphan every card")
    key = bytearray(os.urandom(KEY_LEN))
    _save(dir, key)
    return key


def restore(dir, key):
    """Store a known card master key (replacing any), e.g. when cards move to a new reader."""
    if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_LEN:
        raise CardKeyError("key must be 16 bytes")
    _save(dir, key)
