# carkey — AES-GCM (NIST SP 800-38D) and AES-CMAC (SP 800-38B) over cryptolib's ECB/CBC.
# SPDX-License-Identifier: MIT
#
# Stock ESP32 firmware has no CTR mode, so CTR is one ECB call over a buffer of
# counter blocks. GHASH multiplies with Python ints: carry-less products come
# from ordinary integer products of operands whose set bits are 5 apart.
#
# API (keys of 16 or 32 bytes, 12-byte IVs; bytes in, bytes out; ValueError on
# bad input or a bad tag):
#   gcm_encrypt(key, iv, plaintext, aad=b"") -> ciphertext || 16-byte tag
#   gcm_decrypt(key, iv, data, aad=b"") -> plaintext; the tag is checked first
#   gcm_decrypt_unverified(key, iv, ciphertext) -> CTR output only, no tag
#   Gcm(key).encrypt / .decrypt / .decrypt_unverified: the same for many
#     messages under one key (the key schedule and GHASH key are kept)
#   cmac(key, msg) -> 16-byte tag; Cmac(key).mac(msg) keeps the subkeys

import cryptolib
from micropython import const

from carkey.crypto.ct import equal

_ECB = const(1)
_CBC = const(2)
_TAG = const(16)
_CHUNK = const(16)  # blocks per cryptolib call and per GHASH int: bounds transient heap
_W = const(256)  # window width: one 255-bit carry-less product per window
_M128 = const(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)
_M127 = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)
_CMAC_RB = const(0x87)
_BYTES = (bytes, bytearray, memoryview)
_ZERO = bytes(16)


def _every5(nbits):
    # Bits 0, 5, 10, ... below nbits: (2^(5k) - 1) / 31 = 1 + 2^5 + 2^10 + ...
    return ((1 << (nbits + 4) // 5 * 5) - 1) // 31


def _class_masks():
    m = _every5(128)
    return tuple((m << c) & _M128 for c in range(5))


def _window_masks():
    # Window k of a product keeps bit positions = k (mod 5) of its low 255 bits.
    m = _every5(255 + 5)
    return tuple((m << k) & ((1 << 255) - 1) for k in range(5))


def _key_masks():
    # _GMASKS[i] keeps, in window (i + j) mod 5, the bits of class j.
    masks = []
    for i in range(5):
        m = 0
        for j in range(5):
            m |= _MASKS[j] << (_W * ((i + j) % 5))
        masks.append(m)
    return tuple(masks)


def _reduction_table():
    # The second reduction round of _ghash, indexed by the low 6 bits of t; kept
    # as small ints (no heap objects) and shifted into place (<< 115) when used.
    table = []
    for j in range(64):
        w = (j ^ (j << 5)) & 63
        table.append(w ^ (w << 5) ^ (w << 6) ^ (w << 7))
    return tuple(table)


def _counter_template():
    # _CHUNK blocks holding 0, 1, 2, ... (first block most significant) and
    # _CHUNK blocks holding 1, from which _blocks cuts any run of counters.
    ctr = ones = 0
    for i in range(_CHUNK):
        ctr = (ctr << 128) | i
        ones = (ones << 128) | 1
    return ctr, ones


_MASKS = _class_masks()
_WMASKS = _window_masks()
_GMASKS = _key_masks()
_FIVE = const(1 | 1 << 256 | 1 << 512 | 1 << 768 | 1 << 1024)  # one 1 per window
_RED = _reduction_table()
_CTR, _ONES = _counter_template()
# The builders are not needed again: dropping them frees their bytecode.
del _every5, _class_masks, _window_masks, _key_masks, _reduction_table, _counter_template


def _check_bytes(value, what):
    if not isinstance(value, _BYTES):
        raise ValueError(what + " must be bytes")


def _cipher(key, mode=_ECB):
    _check_bytes(key, "AES key")
    if len(key) != 16 and len(key) != 32:
        raise ValueError("AES key must be 16 or 32 bytes")
    if mode == _ECB:
        return cryptolib.aes(key, _ECB)
    return cryptolib.aes(key, _CBC, _ZERO)


def _iv_int(iv):
    _check_bytes(iv, "GCM IV")
    if len(iv) != 12:
        raise ValueError("GCM IV must be 12 bytes")
    return int.from_bytes(iv, "big") << 32


# --- GHASH ---------------------------------------------------------------------
# A block is an int read big-endian, so x^k sits at bit 127 - k, and the 255-bit
# product of two blocks has x^k at bit 254 - k. An integer product equals the
# carry-less one when column sums cannot spill into columns that matter: split
# both operands into five classes of bits (positions = c mod 5) and a column of
# a_i * h_j holds at most 26 terms, whose sum (< 32) fits in the 4 bits before
# that product's next column, so bit p keeps the XOR of column p. Per key, G_i
# holds h_j in 256-bit window (i + j) mod 5: XORing y_i * G_i over i leaves class
# k of y * h in window k, and masking and folding the windows gives y * h.


def _ghash_key(h):
    # Five copies of h, one per window, cut down to the classes each G_i wants.
    hh = h * _FIVE
    return tuple(hh & m for m in _GMASKS)


def _ghash(g, y, x, nblocks):
    # Absorbs the nblocks blocks of x (first block most significant) into y.
    # Blocks need not be cut out of x: the class masks drop the bits above.
    m0, m1, m2, m3, m4 = _MASKS
    w0, w1, w2, w3, w4 = _WMASKS
    g0, g1, g2, g3, g4 = g
    red = _RED
    for shift in range(128 * (nblocks - 1), -1, -128):
        y ^= x >> shift
        z = (y & m0) * g0 ^ (y & m1) * g1 ^ (y & m2) * g2 ^ (y & m3) * g3 ^ (y & m4) * g4
        z = (z & w0) ^ (z >> _W & w1) ^ (z >> 2 * _W & w2) ^ (z >> 3 * _W & w3) ^ (z >> 4 * _W & w4)
        # Reduce: t (bits 0..126) holds degrees 254..128, and x^128 = x^7 + x^2
        # + x + 1 sends bit b of t to result bits b + 1, b, b - 1 and b - 6.
        # What falls below bit 0 (degrees 128..133, from t's low 6 bits) goes
        # round once more, via the table.
        t = z & _M127
        y = (z >> 127) ^ t ^ (t << 1) ^ (t >> 1) ^ (t >> 6) ^ (red[t & 63] << 115)
    return y


def _absorb(g, y, data, tail):
    # GHASH over data zero-padded to whole blocks, _CHUNK blocks per int; tail
    # (one block as an int, or -1 for none) rides along with the last chunk.
    n = len(data)
    start = 0
    while True:
        end = start + 16 * _CHUNK
        piece = data[start:end] if start or end < n else data
        k = len(piece)
        nb = (k + 15) >> 4
        x = int.from_bytes(piece, "big") << (8 * (16 * nb - k))
        if end >= n:
            if tail >= 0:
                x = x << 128 | tail
                nb += 1
            return _ghash(g, y, x, nb)
        y = _ghash(g, y, x, nb)
        start = end


# --- GCM -----------------------------------------------------------------------


def _blocks(ecb, iv, first, count):
    # E(iv || first), E(iv || first + 1), ... (count <= _CHUNK) as one int, first
    # block most significant: one cryptolib call, as it has no CTR mode.
    drop = 128 * (_CHUNK - count)
    ones = _ONES >> drop
    ctr = (iv + first) * ones + (_CTR >> drop)
    return int.from_bytes(ecb.encrypt(ctr.to_bytes(16 * count, "big")), "big")


def _start(ecb, iv, n):
    # E(J0) (masks the tag) and the keystream for the first chunk of an n-byte
    # message, from one cryptolib call. Returns (E(J0), keystream int, its blocks).
    nb = min((n + 15) >> 4, _CHUNK - 1)
    e = _blocks(ecb, iv, 1, nb + 1)
    return e >> (128 * nb), e & ((1 << (128 * nb)) - 1), nb


def _xor_stream(ecb, iv, data, ks, nb):
    # data XOR the keystream from counter 2 on; ks holds its first nb blocks.
    n = len(data)
    take = min(n, 16 * nb)
    head = data if take == n else data[:take]
    first = (int.from_bytes(head, "big") ^ (ks >> (8 * (16 * nb - take)))).to_bytes(take, "big")
    if take == n:
        return first
    out = bytearray(n)  # filled in place: no regrowth on a small heap
    out[:take] = first
    counter = 2 + nb
    for start in range(take, n, 16 * _CHUNK):
        piece = data[start : start + 16 * _CHUNK]
        k = len(piece)
        nb = (k + 15) >> 4
        ks = _blocks(ecb, iv, counter, nb) >> (8 * (16 * nb - k))
        out[start : start + k] = (int.from_bytes(piece, "big") ^ ks).to_bytes(k, "big")
        counter += nb
    return bytes(out)


def _tag(g, ej0, aad, ciphertext):
    y = _absorb(g, 0, aad, -1) if aad else 0
    y = _absorb(g, y, ciphertext, len(aad) << 67 | len(ciphertext) << 3)
    return (y ^ ej0).to_bytes(16, "big")


class Gcm:
    # One key, many messages (secure channel): the key schedule and the GHASH
    # key are made once. The module functions build one per call.

    def __init__(self, key):
        self._ecb = _cipher(key)
        self._g = _ghash_key(int.from_bytes(self._ecb.encrypt(_ZERO), "big"))

    def encrypt(self, iv, plaintext, aad=b""):
        iv = _iv_int(iv)
        _check_bytes(plaintext, "plaintext")
        _check_bytes(aad, "AAD")
        ecb = self._ecb
        ej0, ks, nb = _start(ecb, iv, len(plaintext))
        ct = _xor_stream(ecb, iv, plaintext, ks, nb)
        return ct + _tag(self._g, ej0, aad, ct)

    def decrypt(self, iv, data, aad=b""):
        # The tag is checked before any plaintext exists.
        iv = _iv_int(iv)
        _check_bytes(data, "GCM data")
        _check_bytes(aad, "AAD")
        n = len(data) - _TAG
        if n < 0:
            raise ValueError("GCM data shorter than the tag")
        ct = data[:n]
        ecb = self._ecb
        ej0, ks, nb = _start(ecb, iv, n)
        if not equal(_tag(self._g, ej0, aad, ct), data[n:]):
            raise ValueError("GCM tag mismatch")
        return _xor_stream(ecb, iv, ct, ks, nb)

    def decrypt_unverified(self, iv, ciphertext):
        return _peek(self._ecb, iv, ciphertext)


def _peek(ecb, iv, ciphertext):
    # CTR only, no tag check: unauthenticated bytes, fit only for choosing which
    # key to verify with (e.g. by the fixed TLV tags of a cryptogram). Any prefix
    # of the ciphertext works, and a short prefix costs only its own blocks.
    iv = _iv_int(iv)
    _check_bytes(ciphertext, "ciphertext")
    nb = min((len(ciphertext) + 15) >> 4, _CHUNK)
    return _xor_stream(ecb, iv, ciphertext, _blocks(ecb, iv, 2, nb), nb)


def gcm_encrypt(key, iv, plaintext, aad=b""):
    return Gcm(key).encrypt(iv, plaintext, aad)


def gcm_decrypt(key, iv, data, aad=b""):
    return Gcm(key).decrypt(iv, data, aad)


def gcm_decrypt_unverified(key, iv, ciphertext):
    return _peek(_cipher(key), iv, ciphertext)


# --- CMAC ----------------------------------------------------------------------


def _dbl(v):
    # Multiplication by x in CMAC's GF(2^128) (RFC 4493 subkey generation).
    v <<= 1
    return (v & _M128) ^ _CMAC_RB if v >> 128 else v


class Cmac:
    # One key, many messages (e.g. NTAG 424 session MACs): subkeys computed once.

    def __init__(self, key):
        _check_bytes(key, "AES key")
        self._key = bytes(key)
        k1 = _dbl(int.from_bytes(_cipher(key).encrypt(_ZERO), "big"))
        self._k1 = k1
        self._k2 = _dbl(k1)

    def mac(self, msg):
        _check_bytes(msg, "CMAC message")
        n = len(msg)
        m = int.from_bytes(msg, "big")
        if n and not n & 15:
            m ^= self._k1
            size = n
        else:
            size = (n + 16) & ~15
            pad = 8 * (size - n)
            m = ((m << pad) | (1 << (pad - 1))) ^ self._k2
        # CBC-MAC with a zero IV: the tag is the last ciphertext block.
        out = _cipher(self._key, _CBC).encrypt(m.to_bytes(size, "big"))
        return out[-16:]


def cmac(key, msg):
    return Cmac(key).mac(msg)
