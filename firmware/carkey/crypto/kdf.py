# carkey — HMAC-SHA256, HKDF-SHA256 (RFC 5869) and ANSI X9.63 KDF with SHA-256.
# SPDX-License-Identifier: MIT

import hashlib
from micropython import const

_BLOCK = const(64)
_HASH_LEN = const(32)

# The pads XOR the whole 64-byte key block at once as one integer: a per-byte loop
# costs several times more in bytecode.
_IPAD = int.from_bytes(b"\x36" * _BLOCK, "big")
_OPAD = int.from_bytes(b"\x5c" * _BLOCK, "big")


def _pads(key):
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    k = int.from_bytes(key, "big") << (8 * (_BLOCK - len(key)))
    return (k ^ _IPAD).to_bytes(_BLOCK, "big"), (k ^ _OPAD).to_bytes(_BLOCK, "big")


def hmac_sha256(key, msg):
    ipad, opad = _pads(key)
    inner = hashlib.sha256(ipad)
    inner.update(msg)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def hkdf_extract(salt, ikm):
    return hmac_sha256(salt if salt else bytes(_HASH_LEN), ikm)


def hkdf_expand(prk, info, length, block=b"", counter=1):
    # OKM from T(counter) on; block is T(counter - 1) (b"" at the start), so a caller
    # holding T(1) already can continue from it (block=T(1), counter=2).
    n = (length + _HASH_LEN - 1) // _HASH_LEN
    if counter < 1 or counter + n > 256 or len(block) != (_HASH_LEN if counter > 1 else 0):
        raise ValueError("HKDF length or block out of range")
    ipad, opad = _pads(prk)
    # The output made once at its full size and filled block by block: no growing
    # buffer and no slice copies (this runs several times per tap).
    out = bytearray(n * _HASH_LEN)
    count = bytearray(1)
    for i in range(n):
        count[0] = counter + i
        inner = hashlib.sha256(ipad)
        inner.update(block)
        inner.update(info)
        inner.update(count)
        outer = hashlib.sha256(opad)
        outer.update(inner.digest())
        block = outer.digest()
        out[i * _HASH_LEN : (i + 1) * _HASH_LEN] = block
    return bytes(out) if len(out) == length else bytes(memoryview(out)[:length])


def hkdf_sha256(ikm, salt, info, length):
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


def x963_kdf_sha256(z, shared_info, length):
    out = bytearray()
    counter = 1
    while len(out) < length:
        h = hashlib.sha256(z)
        h.update(counter.to_bytes(4, "big"))
        h.update(shared_info)
        out.extend(h.digest())
        counter += 1
    return bytes(out[:length])
