# carkey — AES-GCM (NIST SP 800-38D) and AES-CMAC (SP 800-38B) over cryptolib's ECB/CBC.
# SPDX-License-Identifier: MIT
#
# Stock ESP32 firmware has no CTR mode, so CTR is one ECB call over a buffer of
# counter blocks. GHASH runs on small ints only (a 4-bit table pair per key,
# 26-bit limbs): a GCM message allocates its output and nothing else that grows
# with its length, because on a nearly full heap garbage costs more than the
# arithmetic (docs/CRYPTO.md, "GHASH").
#
# API (keys of 16 or 32 bytes, 12-byte IVs; bytes in, bytes out; ValueError on
# bad input or a bad tag):
#   gcm_encrypt(key, iv, plaintext, aad=b"") -> ciphertext || 16-byte tag
#   gcm_decrypt(key, iv, data, aad=b"") -> plaintext; the tag is checked first
#   gcm_decrypt_unverified(key, iv, ciphertext) -> CTR output only, no tag
#   Gcm(key).encrypt / .decrypt: the same for many messages under one key (the
#     key schedule and GHASH tables are kept)
#   cipher(key), first_block(ecb, iv, out): a key schedule and a message's first
#     keystream block in a buffer; Gcm(key, ecb) then reuses that key schedule
#   cmac(key, msg) -> 16-byte tag; Cmac(key).mac(msg) keeps the subkeys

import cryptolib
from array import array
from micropython import const

from carkey.crypto.ct import equal

_ECB = const(1)
_CBC = const(2)
_TAG = const(16)
_M128 = const(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)
_CMAC_RB = const(0x87)
_BYTES = (bytes, bytearray, memoryview)
_ZERO = bytes(16)

# GHASH scratch shared by every GCM call (a call runs start to end without
# yielding, so one set serves all keys); the state is zeroed after every tag.
_Y = bytearray(16)  # the GHASH state
_PAD = bytearray(16)  # a zero-padded last block, then the lengths block
_SUM = bytearray(16)  # the tag being computed


def _check_bytes(value, what):
    if not isinstance(value, _BYTES):
        raise ValueError(what + " must be bytes")


def cipher(key, mode=_ECB):
    # The AES key schedule (ECB; CBC with a zero IV for CMAC). Public for the fast
    # reader, which peeks with a key and then checks a whole message with it.
    _check_bytes(key, "AES key")
    if len(key) != 16 and len(key) != 32:
        raise ValueError("AES key must be 16 or 32 bytes")
    if mode == _ECB:
        return cryptolib.aes(key, _ECB)
    return cryptolib.aes(key, _CBC, _ZERO)


def _check_iv(iv):
    _check_bytes(iv, "GCM IV")
    if len(iv) != 12:
        raise ValueError("GCM IV must be 12 bytes")


# --- GHASH ---------------------------------------------------------------------
# A block is read as a 128-bit big-endian number whose bit 127 is x^0 (GCM's bit
# order); it is held as five limbs of 26 bits, z0 = bits 0..25 (the highest
# degrees) up to z4 = bits 104..127. Y·H is Horner over Y's bytes from the last
# (highest degrees) to the first: Z = Z·x^8 + b·H, where Z·x^8 is a shift of the
# limbs by 8 bits plus the reduction of the 8 bits r shifted out, and b·H is the XOR of two
# per-key tables, Hi[b >> 4] and Lo[b & 15] (16 entries each, per limb, kept as one tuple per limb). Every
# value stays below 2^26, far inside a 32-bit port's small ints (below 2^30), so
# nothing is allocated; tests/host/test_ghash_bounds.py checks every intermediate.


def _limbs(b):
    # 16 bytes -> the five limbs.
    return (b[15] | b[14] << 8 | b[13] << 16 | (b[12] & 3) << 24,
            b[12] >> 2 | b[11] << 6 | b[10] << 14 | (b[9] & 15) << 22,
            b[9] >> 4 | b[8] << 4 | b[7] << 12 | (b[6] & 63) << 20,
            b[6] >> 6 | b[5] << 2 | b[4] << 10 | b[3] << 18,
            b[2] | b[1] << 8 | b[0] << 16)


_ROW = array("I", [0] * 32)  # a zeroed table row, copied per limb


def _ghash_key(h):
    # The tables of H (16 bytes): one per limb k, 32 entries: [n] = n·H (n's bit 3
    # as x^0, n < 16), [16 + n] = n·H·x^4. Arrays of 32-bit words, written in place
    # (half a list's heap on a 64-bit port, the same on a 32-bit one): five blocks
    # per key, nothing else left behind.
    t0 = _ROW[:]
    t1 = _ROW[:]
    t2 = _ROW[:]
    t3 = _ROW[:]
    t4 = _ROW[:]
    z0, z1, z2, z3, z4 = _limbs(h)
    for j in range(8):
        # H·x^j is entry 8 >> (j mod 4), plus 16 for j >= 4.
        e = (8 >> (j & 3)) + (j & 4) * 4
        t0[e] = z0
        t1[e] = z1
        t2[e] = z2
        t3[e] = z3
        t4[e] = z4
        # ·x: a shift right by one, bit 0 folded back as x^128 = 1 + x + x^2 + x^7
        # (0xE1 at the top), without a branch on the secret bit.
        c = -(z0 & 1)
        z0 = z0 >> 1 | (z1 & 1) << 25
        z1 = z1 >> 1 | (z2 & 1) << 25
        z2 = z2 >> 1 | (z3 & 1) << 25
        z3 = z3 >> 1 | (z4 & 1) << 25
        z4 = z4 >> 1 ^ (0xE10000 & c)
    for n in range(3, 16):
        # Entry n (two or more bits set) is the XOR of two entries made before it:
        # n without its lowest bit, and that bit; all five limbs per n.
        a = n & (n - 1)
        if not a:
            continue  # 4 and 8: single bits, made above
        b = n & -n
        t0[n] = t0[a] ^ t0[b]
        t1[n] = t1[a] ^ t1[b]
        t2[n] = t2[a] ^ t2[b]
        t3[n] = t3[a] ^ t3[b]
        t4[n] = t4[a] ^ t4[b]
        n += 16
        a += 16
        b += 16
        t0[n] = t0[a] ^ t0[b]
        t1[n] = t1[a] ^ t1[b]
        t2[n] = t2[a] ^ t2[b]
        t3[n] = t3[a] ^ t3[b]
        t4[n] = t4[a] ^ t4[b]
    return (t0, t1, t2, t3, t4)


def _ghash(t, src, base, nblocks):
    # Absorbs nblocks whole blocks of src from offset base into _Y.
    y = _Y
    t0, t1, t2, t3, t4 = t
    for o in range(base, base + 16 * nblocks, 16):
        z0 = z1 = z2 = z3 = z4 = 0
        for i in range(15, -1, -1):
            b = y[i] ^ src[o + i]
            hi = b >> 4
            lo = b & 15 | 16
            r = z0 & 255
            z0 = (z0 >> 8 | (z1 & 255) << 18) ^ t0[hi] ^ t0[lo]
            z1 = (z1 >> 8 | (z2 & 255) << 18) ^ t1[hi] ^ t1[lo]
            z2 = (z2 >> 8 | (z3 & 255) << 18) ^ t2[hi] ^ t2[lo]
            z3 = (z3 >> 8 | (z4 & 255) << 18) ^ t3[hi] ^ t3[lo]
            # r held degrees 120..127, now 128..135; x^128 = 1 + x + x^2 + x^7 folds
            # bit j of r back to degrees 7-j, 8-j, 9-j and 14-j: bits 16+j, 15+j,
            # 14+j and 9+j of the top limb.
            z4 = z4 >> 8 ^ (r ^ r << 5 ^ r << 6 ^ r << 7) << 9 ^ t4[hi] ^ t4[lo]
        y[15] = z0 & 255
        y[14] = z0 >> 8 & 255
        y[13] = z0 >> 16 & 255
        y[12] = z0 >> 24 | (z1 & 63) << 2
        y[11] = z1 >> 6 & 255
        y[10] = z1 >> 14 & 255
        y[9] = z1 >> 22 | (z2 & 15) << 4
        y[8] = z2 >> 4 & 255
        y[7] = z2 >> 12 & 255
        y[6] = z2 >> 20 | (z3 & 3) << 6
        y[5] = z3 >> 2 & 255
        y[4] = z3 >> 10 & 255
        y[3] = z3 >> 18
        y[2] = z4 & 255
        y[1] = z4 >> 8 & 255
        y[0] = z4 >> 16


def _absorb(t, data, n):
    # GHASH over data[0:n] zero-padded to whole blocks.
    full = n >> 4
    if full:
        _ghash(t, data, 0, full)
    rest = n & 15
    if rest:
        pad = _PAD
        pad[:] = _ZERO
        o = n - rest
        for i in range(rest):
            pad[i] = data[o + i]
        _ghash(t, pad, 0, 1)


def _tag(t, aad, data, n, ej0, at):
    # GHASH(aad, data[0:n]) XOR E(J0) (in ej0[at:at + 16]) into _SUM.
    _Y[:] = _ZERO
    if aad:
        _absorb(t, aad, len(aad))
    _absorb(t, data, n)
    pad = _PAD
    a = len(aad) << 3
    c = n << 3
    for i in range(8):  # len(A) || len(C) in bits, 64 bits each, big-endian
        pad[7 - i] = a & 255
        pad[15 - i] = c & 255
        a >>= 8
        c >>= 8
    _ghash(t, pad, 0, 1)
    s = _SUM
    y = _Y
    for i in range(16):
        s[i] = y[i] ^ ej0[at + i]
    _Y[:] = _ZERO  # the state is a function of H: leave none behind


# --- GCM -----------------------------------------------------------------------


def _keystream(ecb, iv, out, nblocks, j0):
    # out = E(iv || 2), E(iv || 3), ... (nblocks blocks), then E(iv || 1) = E(J0) if
    # j0: counter blocks written into the message's own buffer and encrypted in
    # place by one cryptolib call (it has no CTR mode), so no keystream buffer
    # stays in the heap between messages.
    for k in range(nblocks + j0):
        o = 16 * k
        out[o : o + 12] = iv
        c = 2 + k if k < nblocks else 1
        out[o + 12] = c >> 24
        out[o + 13] = c >> 16 & 255
        out[o + 14] = c >> 8 & 255
        out[o + 15] = c & 255
    ecb.encrypt(out, out)


def _xor(out, data, n):
    for i in range(n):
        out[i] ^= data[i]


def first_block(ecb, iv, out):
    # The first keystream block of a GCM message, E(iv || 2), into out (a 16-byte
    # bytearray). XORed with the ciphertext's first bytes it gives unauthenticated
    # bytes, fit only for choosing which key to verify with (the fast reader's
    # search). No allocation.
    _check_iv(iv)
    _keystream(ecb, iv, out, 1, 0)


class Gcm:
    # One key, many messages (secure channel): the key schedule and the GHASH
    # tables are made once. The module functions build one per call. ecb: the key's
    # schedule from cipher(key), if the caller has it already.

    def __init__(self, key, ecb=None):
        self._ecb = cipher(key) if ecb is None else ecb
        self._t = _ghash_key(self._ecb.encrypt(_ZERO))

    def encrypt(self, iv, plaintext, aad=b""):
        _check_iv(iv)
        _check_bytes(plaintext, "plaintext")
        _check_bytes(aad, "AAD")
        n = len(plaintext)
        nb = (n + 15) >> 4
        out = bytearray(16 * nb + 16)  # keystream, then E(J0); then ciphertext || tag
        _keystream(self._ecb, iv, out, nb, 1)
        _xor(out, plaintext, n)
        _tag(self._t, aad, out, n, out, 16 * nb)
        out[n : n + _TAG] = _SUM
        return bytes(memoryview(out)[: n + _TAG])

    def decrypt(self, iv, data, aad=b""):
        # The tag is checked before any plaintext exists.
        _check_iv(iv)
        _check_bytes(data, "GCM data")
        _check_bytes(aad, "AAD")
        n = len(data) - _TAG
        if n < 0:
            raise ValueError("GCM data shorter than the tag")
        nb = (n + 15) >> 4
        out = bytearray(16 * nb + 16)
        _keystream(self._ecb, iv, out, nb, 1)
        _tag(self._t, aad, data, n, out, 16 * nb)
        if not equal(_SUM, memoryview(data)[n:]):
            raise ValueError("GCM tag mismatch")
        _xor(out, data, n)
        return bytes(memoryview(out)[:n])


def gcm_encrypt(key, iv, plaintext, aad=b""):
    return Gcm(key).encrypt(iv, plaintext, aad)


def gcm_decrypt(key, iv, data, aad=b""):
    return Gcm(key).decrypt(iv, data, aad)


def gcm_decrypt_unverified(key, iv, ciphertext):
    # CTR only, no tag check: unauthenticated bytes, fit only for choosing which
    # key to verify with. Any prefix of the ciphertext works.
    ecb = cipher(key)
    _check_iv(iv)
    _check_bytes(ciphertext, "ciphertext")
    n = len(ciphertext)
    nb = (n + 15) >> 4
    out = bytearray(16 * nb)
    _keystream(ecb, iv, out, nb, 0)
    _xor(out, ciphertext, n)
    return bytes(memoryview(out)[:n])


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
        k1 = _dbl(int.from_bytes(cipher(key).encrypt(_ZERO), "big"))
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
        out = cipher(self._key, _CBC).encrypt(m.to_bytes(size, "big"))
        return out[-16:]


def cmac(key, msg):
    return Cmac(key).mac(msg)
