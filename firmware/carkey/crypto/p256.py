# carkey — NIST P-256 (secp256r1): key pairs, ECDH and ECDSA with SHA-256, pure MicroPython.
# SPDX-License-Identifier: MIT
# P-256 for the reader, in bytecode only (no native/viper), sized for a 64 KiB heap.
#
# Byte strings everywhere: private keys are 32-byte big-endian scalars in [1, n-1],
# public keys 65-byte uncompressed SEC1 (04 || X || Y), signatures 64-byte r || s,
# digests the 32-byte SHA-256 of the signed data.
#
#     generate_keypair() -> (priv, pub)          public_key(priv) -> pub
#     ecdh(priv, peer_pub) -> x                  sign(priv, digest, extra_entropy=None) -> sig
#     verify(pub, digest, sig, table=None) -> bool
#     precompute_nonce() -> Nonce                sign_with_nonce(priv, digest, nonce) -> sig
#     verify_table(pub) -> bytearray (4160 bytes; keep it with the enrolled credential)
#     is_valid_public_key(pub) -> bool
#
# Slicing. A scalar multiplication takes 1-3 s on an ESP32, so every heavy operation
# also exists as `<name>_steps(...)`: a generator that yields None between slices of
# at most a few point doublings and one addition, and finally *returns* its result
# (StopIteration.value). Drive one from an event loop with
#
#     gen = p256.ecdh_steps(priv, pub)
#     try:
#         while True:
#             next(gen)
#             await asyncio.sleep_ms(0)
#     except StopIteration as done:
#         x = done.value
#
# or compose it with `x = yield from p256.ecdh_steps(priv, pub)` inside another
# sliced generator. `finish(gen)` runs one to the end; the plain functions are just
# `finish(<name>_steps(...))`. Bad arguments raise ValueError when the *_steps
# function is called, before any work is done (verify_steps never raises).
#
# How it is fast. Field elements are Python ints; a `%` by p costs about twice a
# 256-bit multiplication here, so the formulas reduce once per sum of products.
# Points are Jacobian (X, Y, Z) with a = -3 doubling; additions are mixed
# (Jacobian + affine table point). Every multiplication is a Horner evaluation of
# sum(2**pos * T_i) over affine points T_i ("events", highest position first):
#  - k·G: a signed all-bits comb, 2 blocks of 6 teeth 22 bits apart, table of 64
#    affine points in p256_table.G_COMB (4096 bytes): 21 doublings, 44 additions;
#  - k·Q (ECDH): a regular signed window of width 5 (digits odd, never zero),
#    table Q, 3Q, ..., 31Q built with co-Z additions and one inversion;
#  - u1·G + u2·Q (verify): width-5 wNAF for Q interleaved with the G comb, or,
#    with a per-credential table, two interleaved combs (21 doublings in all).
#
# What is constant time and what is not. Python int arithmetic is not (bignum
# lengths vary) and table reads index memory with secret digits; nothing here is
# hardened against cache or power analysis. What does hold for secret scalars
# (private keys, nonces): the sequence of point operations is fixed (every comb
# column and every window adds exactly one point, negation is a tuple pick, not a
# branch), and inversions of secret-derived values are blinded by a random factor.
# Verification handles only public values.
#
# Incomplete formulas. Mixed addition of two equal points gives Z = 0, and Z = 0
# then survives every later step, so an exceptional case can only turn the result
# into the point at infinity, never into a wrong finite point: verify then rejects
# and ecdh raises. The ECDH window provably never meets that case for a scalar in
# [1, n-1]; the comb was checked for small, large and power-of-two scalars, and
# k·G falls back to the window if it ever happened.

import os
from micropython import const

from carkey.crypto.kdf import hmac_sha256
from carkey.crypto.p256_table import G_COMB

_G = memoryview(G_COMB)

_P = const(0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF)
_N = const(0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551)
_B = const(0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B)
_GX = const(0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296)
_GY = const(0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)
_P_MINUS_N = const(0x4319055358E8617B0C46353D039CDAAE)  # r + n < p only for r below this

# Comb geometry (must match host_tools/carkey_host/gen_p256_table.py).
_COLS = const(22)  # bits between teeth = columns = doublings + 1
_TOOTH_MASK = const(0x3FFFFF)  # one tooth's 22 bits
_ENTRY = const(64)  # bytes per affine point: x || y
_BLOCK_ENTRIES = const(32)  # 2**(teeth - 1): the top tooth's sign is factored out
# Adding 2**264 - 1 and halving turns an odd k into the bits of its ±1 digits.
_COMB_ONES = const(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)

_WINDOW = const(5)  # ECDH window: digits ±1, ±3, ..., ±31
_WINDOW_POINTS = const(16)
_WNAF_POINTS = const(8)  # verify: width-5 wNAF, digits ±1 ... ±15

_PUB_LEN = const(65)
TABLE_LEN = const(4160)  # per-credential table: Q's x || y, then 64 comb entries


class Nonce:
    # A single-use ECDSA nonce made while idle by precompute_nonce().
    #
    # Holds r = x(k·G) mod n and k^-1 mod n; k itself is not kept. It lives only in
    # RAM: never persist it. sign_with_nonce() consumes it (a second use raises
    # ValueError, because two signatures with one k reveal the private key).
    # wipe() drops the values early; Python cannot scrub the freed int memory.

    def __init__(self, r, kinv):
        self.r = r
        self._kinv = kinv

    def ready(self):
        return self._kinv != 0

    def wipe(self):
        self.r = 0
        self._kinv = 0


def finish(steps):
    # Run a *_steps generator to the end and return its result.
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value


# --- field and scalar helpers -------------------------------------------------


def _inv(a, m):
    # Extended Euclid: about 6x faster than pow(a, m - 2, m) on this port (Lehmer's
    # variant and two-steps-per-loop unrolling measured no better in bytecode).
    x0, x1 = 0, 1
    r0, r1 = m, a % m
    while r1:
        q, r = divmod(r0, r1)
        r0 = r1
        r1 = r
        x0, x1 = x1, x0 - q * x1
    return x0 % m


def _random_below(m):
    # Rejection sampling: uniform in [1, m - 1].
    while True:
        k = int.from_bytes(os.urandom(32), "big")
        if 0 < k < m:
            return k


def _inv_blinded(a, m):
    # Euclid's running time depends on its input; a random factor hides which
    # secret-derived value is being inverted.
    b = _random_below(m)
    return _inv(a * b % m, m) * b % m


def _scalar(priv):
    if not isinstance(priv, (bytes, bytearray)) or len(priv) != 32:
        raise ValueError("private key must be 32 bytes")
    k = int.from_bytes(priv, "big")
    if not 0 < k < _N:
        raise ValueError("private key out of range")
    return k


def _digest(digest):
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    return int.from_bytes(digest, "big")


def _point(pub):
    # Decode and validate an uncompressed public key; ValueError if unusable.
    if not isinstance(pub, (bytes, bytearray)) or len(pub) != _PUB_LEN or pub[0] != 4:
        raise ValueError("public key must be 65 bytes 04 || X || Y")
    x = int.from_bytes(pub[1:33], "big")
    y = int.from_bytes(pub[33:65], "big")
    if x >= _P or y >= _P:
        raise ValueError("public key coordinate out of range")
    # The encoding cannot express infinity, and cofactor 1 makes every curve point
    # a member of the prime-order group: on-curve is the whole check.
    if (y * y - (x * x - 3) * x - _B) % _P:
        raise ValueError("public key not on the curve")
    return x, y


def is_valid_public_key(pub):
    try:
        _point(pub)
        return True
    except ValueError:
        return False


def _encode(x, y):
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _affine(X, Y, Z):
    zi = _inv_blinded(Z, _P)
    zi2 = zi * zi % _P
    return X * zi2 % _P, Y * zi2 * zi % _P


# --- the point engine ---------------------------------------------------------


def _horner(ev):
    # Evaluate sum(2**pos * (x, y)) over the events (pos, x, y) of the iterable ev,
    # pos descending. Generator: yields after each addition and returns Jacobian
    # (X, Y, Z); Z == 0 is the point at infinity. An event with x None only carries
    # trailing doublings. Events come from generators so that no list of decoded
    # points sits in the heap (a fuller heap makes every garbage collection dearer).
    # The doubling and the addition are inline: nearly all the time goes here.
    ev = iter(ev)
    pos, X, Y = next(ev)
    Z = 1
    for p, x, y in ev:
        for _ in range(pos - p):
            # dbl-2001-b, a = -3: 3M + 5S, one reduction per output sum.
            d = Z * Z % _P
            g = Y * Y % _P
            b = X * g % _P
            a = (X - d) * (X + d) * 3 % _P
            X = (a * a - (b << 3)) % _P
            Z = (Y * Z << 1) % _P
            Y = (a * ((b << 2) - X) - (g * g << 3)) % _P
        pos = p
        if x is None:
            break
        # madd-2004-hmv: 8M + 3S; H and R stay unreduced in (-p, p).
        zz = Z * Z % _P
        h = x * zz % _P - X
        r = y * zz % _P * Z % _P - Y
        hh = h * h % _P
        hhh = h * hh % _P
        v = X * hh % _P
        X = (r * r - hhh - (v << 1)) % _P
        Y = (r * (v - X) - Y * hhh) % _P
        Z = Z * h % _P
        yield
    return X, Y, Z


def _odd_multiples(x, y, count):
    # Affine Q, 3Q, ..., (2*count - 1)Q for an affine Q; generator returning
    # (xs, ys). Co-Z additions (Meloni) keep 2Q and the running multiple on one Z,
    # 6 multiplications a step; the i-th point's Z is Z0 * l_0 * ... * l_(i-1),
    # which turns all of them affine with one inversion.
    g = y * y % _P
    tx = (x * g << 2) % _P  # Q on the Z0 = 2y of 2Q: (4xy^2, 8y^4)
    a = (x * x - 1) * 3 % _P
    dx = (a * a - (tx << 1)) % _P
    ty = (g * g << 3) % _P
    dy = (a * (tx - dx) - ty) % _P
    z = (y << 1) % _P
    txs = [x]
    tys = [y]
    lams = []
    for _ in range(count - 1):
        lam = tx - dx
        c = lam * lam % _P
        b = dx * c % _P
        c = tx * c % _P
        e = dy * (c - b) % _P
        f = ty - dy
        tx = (f * f - b - c) % _P
        ty = (f * (b - tx) - e) % _P
        dx = b
        dy = e
        z = z * lam % _P
        lams.append(lam)
        txs.append(tx)
        tys.append(ty)
        yield
    zi = _inv(z, _P)  # Q is public here: no blinding needed
    yield
    for i in range(count - 1, 0, -1):
        zi2 = zi * zi % _P
        txs[i] = txs[i] * zi2 % _P
        tys[i] = tys[i] * zi2 % _P * zi % _P
        zi = zi * lams[i - 1] % _P
        if not i & 7:
            yield
    return txs, tys


def _window_events(k, xs, ys):
    # Regular signed window of width 5 for k in [1, n-1], one event every 5 bits.
    # An even k is replaced by n - k (odd), which negates the point: ECDH uses
    # only x, and the k·G fallback negates y back. The digits
    # d_i = ((k >> 5i) | 1) mod 64 - 32 are all odd, so every window adds.
    k = (k, _N - k)[(k & 1) ^ 1]
    yield 255, xs[0], ys[0]  # the top digit is always 1 for k < 2**256
    for i in range(250, -1, -_WINDOW):
        d = (((k >> i) | 1) & 63) - 32
        s = d >> 6  # -1 for a negative digit, else 0
        j = ((d ^ s) - s) >> 1
        y = ys[j]
        yield i, xs[j], (y, _P - y)[s & 1]


def _comb_codes(k):
    # Comb digits of k for the 2 x 22 columns: bytearray, entry 22*b + i holds
    # column i of block b as index | 32 * negative.
    #
    # The odd scalar (n - k if k is even, negating every term) is rewritten as
    # sum(s_i 2**i) with s_i = ±1: c = (k + 2**264 - 1) / 2 holds the digits as
    # bits. Column i of a block takes one bit from each of its 6 teeth (22 bits
    # apart); the top tooth gives the sign, the other five, compared with it, the
    # index of the table entry.
    neg = (k & 1) ^ 1
    k = (k, _N - k)[neg]
    c = (k + _COMB_ONES) >> 1
    codes = bytearray(2 * _COLS)
    for b in range(2):
        t = [(c >> (_COLS * (6 * b + j))) & _TOOTH_MASK for j in range(6)]
        top = t[5]
        m0 = ~(t[0] ^ top)
        m1 = ~(t[1] ^ top)
        m2 = ~(t[2] ^ top)
        m3 = ~(t[3] ^ top)
        m4 = ~(t[4] ^ top)
        sgn = ~top ^ -neg  # bit i set: column i is negative
        for i in range(_COLS * b, _COLS * b + _COLS):
            codes[i] = (m0 & 1) | (m1 & 1) << 1 | (m2 & 1) << 2 | (m3 & 1) << 3 | (m4 & 1) << 4 | (sgn & 1) << 5
            m0 >>= 1
            m1 >>= 1
            m2 >>= 1
            m3 >>= 1
            m4 >>= 1
            sgn >>= 1
    return codes


def _comb_events(combs, naf=None, xs=None, ys=None):
    # Events of one or more interleaved combs, combs = [(table, offset, codes)],
    # at columns 21..0 (the high block before the low one), joined, if naf is
    # given, by the events of that width-5 NAF over the odd multiples xs, ys.
    # Points are decoded on use. Ends with the (0, None, None) that carries any
    # trailing doublings.
    for i in range(256 if naf else _COLS - 1, -1, -1):
        if naf and naf[i]:
            d = naf[i] - 16
            y = ys[abs(d) >> 1]
            yield i, xs[abs(d) >> 1], y if d > 0 else _P - y
        if i < _COLS:
            for tab, off, codes in combs:
                for b in (1, 0):
                    c = codes[_COLS * b + i]
                    o = off + (_BLOCK_ENTRIES * b + (c & 31)) * _ENTRY
                    y = int.from_bytes(tab[o + 32 : o + 64], "big")
                    yield i, int.from_bytes(tab[o : o + 32], "big"), (y, _P - y)[c >> 5]
    yield 0, None, None


def _wnaf(k):
    # Width-5 NAF of a public k > 0 (digits ±1 ... ±15, at least 4 zeros between
    # nonzero ones) as a bytearray: entry i is 16 + digit i, or 0. Built from the
    # low end, read from the high end, and small enough to leave no lists behind.
    kb = k.to_bytes(34, "little")
    naf = bytearray(258)
    carry = 0
    i = 0
    while i < 257:
        byte = i >> 3
        if (kb[byte] >> (i & 7)) & 1 == carry:
            i += 1
            continue
        word = (((kb[byte] | kb[byte + 1] << 8) >> (i & 7)) & 31) + carry
        carry = word >> 4
        naf[i] = word - (carry << 5) + 16
        i += _WINDOW
    return naf


def _var_base(k, x, y):
    # k·(x, y) for k in [1, n-1]; generator returning Jacobian (X, Y, Z).
    xs, ys = yield from _odd_multiples(x, y, _WINDOW_POINTS)
    return (yield from _horner(_window_events(k, xs, ys)))


def _base_mult(k):
    # Affine k·G for a secret k in [1, n-1]; generator.
    X, Y, Z = yield from _horner(_comb_events([(_G, 0, _comb_codes(k))]))
    if not Z:
        # Never seen; the window is exception-free. It gives -k·G for even k.
        X, Y, Z = yield from _var_base(k, _GX, _GY)
        if not k & 1:
            Y = _P - Y
    yield  # the inversion in _affine is a slice of its own
    return _affine(X, Y, Z)


# --- key pairs and ECDH ---------------------------------------------------------


def keypair_steps():
    d = _random_below(_N)
    x, y = yield from _base_mult(d)
    return d.to_bytes(32, "big"), _encode(x, y)


def generate_keypair():
    # A fresh (priv32, pub65) from os.urandom (rejection-sampled into [1, n-1]).
    return finish(keypair_steps())


def public_key_steps(priv):
    return _public_key(_scalar(priv))


def _public_key(d):
    x, y = yield from _base_mult(d)
    return _encode(x, y)


def public_key(priv):
    return finish(public_key_steps(priv))


def ecdh_steps(priv, peer_pub):
    # Validate now, then a generator for the 32-byte x of priv·peer_pub.
    k = _scalar(priv)
    x, y = _point(peer_pub)
    return _ecdh(k, x, y)


def _ecdh(k, x, y):
    X, Y, Z = yield from _var_base(k, x, y)
    if not Z:
        raise ValueError("shared point is at infinity")
    # Only x = X / Z^2 is wanted: invert Z^2 itself.
    return (X * _inv_blinded(Z * Z % _P, _P) % _P).to_bytes(32, "big")


def ecdh(priv, peer_pub):
    # Shared secret Z = x(priv·peer_pub), 32 bytes; ValueError on any bad input.
    return finish(ecdh_steps(priv, peer_pub))


# --- ECDSA signing ------------------------------------------------------------


def _rfc6979(d, digest, extra):
    # RFC 6979 HMAC-DRBG candidates for k (SHA-256, qlen = hlen = 256).
    #
    # `extra` is the §3.6 additional data, appended after bits2octets(h1).
    x = d.to_bytes(32, "big")
    h = (int.from_bytes(digest, "big") % _N).to_bytes(32, "big")
    v = b"\x01" * 32
    k = hmac_sha256(bytes(32), v + b"\x00" + x + h + extra)
    v = hmac_sha256(k, v)
    k = hmac_sha256(k, v + b"\x01" + x + h + extra)
    v = hmac_sha256(k, v)
    while True:
        v = hmac_sha256(k, v)
        t = int.from_bytes(v, "big")
        if 0 < t < _N:
            yield t
        k = hmac_sha256(k, v + b"\x00")
        v = hmac_sha256(k, v)


def _sig(r, kinv, e, d):
    s = kinv * (e + r * d) % _N
    return s, r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign_steps(priv, digest, extra_entropy=None):
    d = _scalar(priv)
    e = _digest(digest)
    if extra_entropy is None:
        extra_entropy = b""
    elif not isinstance(extra_entropy, (bytes, bytearray)):
        raise ValueError("extra_entropy must be bytes")
    return _sign(d, e, digest, extra_entropy)


def _sign(d, e, digest, extra):
    for k in _rfc6979(d, digest, extra):
        x, _ = yield from _base_mult(k)
        r = x % _N
        yield
        if r:
            s, sig = _sig(r, _inv_blinded(k, _N), e, d)
            if s:
                return sig


def sign(priv, digest, extra_entropy=None):
    # ECDSA signature r || s with the RFC 6979 nonce (hedged if extra_entropy).
    return finish(sign_steps(priv, digest, extra_entropy))


_hedge_count = 0


def precompute_nonce_steps(priv=None):
    # priv: hedge k with the signing key. The digest is not known yet, so k comes from
    # the RFC 6979 HMAC-DRBG keyed by the private key over fresh randomness in the
    # message hash's place, with more fresh randomness and a counter as §3.6
    # additional data: randomness that repeats or is guessable does not make k
    # guessable without the private key. Without priv: k from os.urandom alone.
    global _hedge_count
    if priv is None:
        candidates = None
    else:
        _hedge_count += 1
        candidates = _rfc6979(_scalar(priv), os.urandom(32), os.urandom(32) + _hedge_count.to_bytes(4, "big"))
    while True:
        k = _random_below(_N) if candidates is None else next(candidates)
        x, _ = yield from _base_mult(k)
        r = x % _N
        yield
        if r:
            return Nonce(r, _inv_blinded(k, _N))


def precompute_nonce(priv=None):
    # A random single-use Nonce (k·G done now, while the reader is idle), hedged with priv if given.
    return finish(precompute_nonce_steps(priv))


def sign_with_nonce(priv, digest, nonce):
    # ECDSA r || s with a precomputed Nonce: two multiplications mod n.
    #
    # Consumes the nonce (even on failure). ValueError if it was already used.
    d = _scalar(priv)
    e = _digest(digest)
    r = nonce.r
    kinv = nonce._kinv
    nonce.wipe()
    if not kinv:
        raise ValueError("nonce already used")
    s, sig = _sig(r, kinv, e, d)
    if not s:
        raise ValueError("nonce unusable; precompute another")
    return sig


# --- ECDSA verification --------------------------------------------------------


def verify_table_steps(pub, out=None):
    # Validate now, then a generator for the per-credential table of pub, made in
    # `out` (a 4160-byte bytearray the caller keeps for this; default: a new one).
    #
    # The table (a 4160-byte bytearray: Q's x || y, then 64 comb entries laid out
    # like G_COMB) makes verify about 2.7x faster. It is public data: store it in
    # flash next to the enrolled key and pass it back as bytes or bytearray;
    # verify() refuses a table whose first 64 bytes are not this key's x || y.
    # Entries are not re-checked on every verify: random corruption only makes
    # verify reject, but a table rewritten on purpose could make it accept another
    # key's signatures, so it needs the same write protection as the key list.
    x, y = _point(pub)
    if out is not None and len(out) != TABLE_LEN:
        raise ValueError("table buffer")
    return _verify_table(x, y, out)


def _dbl(X, Y, Z):
    d = Z * Z % _P
    g = Y * Y % _P
    b = X * g % _P
    a = (X - d) * (X + d) * 3 % _P
    X3 = (a * a - (b << 3)) % _P
    return X3, (a * ((b << 2) - X3) - (g * g << 3)) % _P, (Y * Z << 1) % _P


def _add(X1, Y1, Z1, X2, Y2, Z2):
    # add-2007-bl for distinct, non-opposite points (table building only).
    z1z1 = Z1 * Z1 % _P
    z2z2 = Z2 * Z2 % _P
    u1 = X1 * z2z2 % _P
    s1 = Y1 * Z2 * z2z2 % _P
    h = X2 * z1z1 % _P - u1
    r = Y2 * Z1 * z1z1 % _P - s1
    hh = h * h % _P
    hhh = h * hh % _P
    v = u1 * hh % _P
    X3 = (r * r - hhh - (v << 1)) % _P
    return X3, (r * (v - X3) - s1 * hhh) % _P, Z1 * Z2 * h % _P


def _verify_table(x, y, out):
    # Entries are made in Gray-code order (each one 2·tooth away from the last)
    # and written out 8 at a time, so only about 20 points are ever in the heap.
    if out is None:
        out = bytearray(TABLE_LEN)
    out[0:32] = x.to_bytes(32, "big")
    out[32:64] = y.to_bytes(32, "big")
    X, Y, Z = x, y, 1
    for b in range(2):
        # Teeth 2**(132b + 22t)·Q for t < 6, each followed by its double.
        teeth = []
        for t in range(6):
            if b or t:
                for i in range(1, _COLS):
                    X, Y, Z = _dbl(X, Y, Z)
                    if not i % 7:
                        yield
            teeth.append((X, Y, Z))
            X, Y, Z = _dbl(X, Y, Z)
            teeth.append((X, Y, Z))
        # Entry 0 = top tooth - the other five; flipping bit t adds ±2·tooth t.
        PX, PY, PZ = teeth[10]
        for t in range(5):
            tx, ty, tz = teeth[2 * t]
            PX, PY, PZ = _add(PX, PY, PZ, tx, _P - ty, tz)
        base = _ENTRY * (1 + _BLOCK_ENTRIES * b)
        batch = [(0, PX, PY, PZ)]
        g = 0
        for i in range(1, _BLOCK_ENTRIES):
            t = 0
            while not (i >> t) & 1:
                t += 1
            g ^= 1 << t
            tx, ty, tz = teeth[2 * t + 1]
            PX, PY, PZ = _add(PX, PY, PZ, tx, ty if (g >> t) & 1 else _P - ty, tz)
            batch.append((g, PX, PY, PZ))
            yield
            if len(batch) == 8:
                _store_affine(batch, out, base)
                batch = []
                yield
        teeth = None
    return out


def _store_affine(pts, out, off):
    # Write Jacobian points [(index, X, Y, Z)] as affine x || y entries of out[off:]
    # with one inversion (Montgomery's trick: invert the product, peel factors off).
    acc = [1]
    for _, X, Y, Z in pts:
        acc.append(acc[-1] * Z % _P)
    zi = _inv(acc[-1], _P)
    for i in range(len(pts) - 1, -1, -1):
        j, X, Y, Z = pts[i]
        z = zi * acc[i] % _P
        zi = zi * Z % _P
        z2 = z * z % _P
        o = off + _ENTRY * j
        out[o : o + 32] = (X * z2 % _P).to_bytes(32, "big")
        out[o + 32 : o + 64] = (Y * z2 * z % _P).to_bytes(32, "big")


def verify_table(pub):
    # Per-credential comb table for pub (4160 bytes); ValueError if pub is invalid.
    return finish(verify_table_steps(pub))


def _verify_args(pub, digest, sig, table):
    if not isinstance(sig, (bytes, bytearray)) or len(sig) != 64:
        return None
    x, y = _point(pub)
    e = _digest(digest)
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < _N and 0 < s < _N):
        return None
    if table is not None:
        if not isinstance(table, (bytes, bytearray)) or len(table) != TABLE_LEN:
            return None
        if table[0:64] != pub[1:65]:
            return None
    return x, y, e, r, s, table


def verify_steps(pub, digest, sig, table=None):
    # Generator returning True iff sig is valid; never raises, even on junk input.
    try:
        args = _verify_args(pub, digest, sig, table)
    except Exception:
        args = None
    return _verify(args)


def _verify(args):
    if args is None:
        return False
    x, y, e, r, s, table = args
    w = _inv(s, _N)
    yield
    u1 = e * w % _N
    u2 = r * w % _N
    combs = [(_G, 0, _comb_codes(u1))] if u1 else []
    if table is None:
        xs, ys = yield from _odd_multiples(x, y, _WNAF_POINTS)
        ev = _comb_events(combs, _wnaf(u2), xs, ys)
    else:
        combs.append((memoryview(table), _ENTRY, _comb_codes(u2)))
        ev = _comb_events(combs)
    X, Y, Z = yield from _horner(ev)
    if not Z:
        return False
    # x(R) mod n == r without an inversion: X == r·Z² (or (r + n)·Z² if r + n < p).
    zz = Z * Z % _P
    if X == r * zz % _P:
        return True
    return r < _P_MINUS_N and X == (r + _N) * zz % _P


def verify(pub, digest, sig, table=None):
    # True iff sig (r || s) is a valid ECDSA signature of digest under pub.
    #
    # Never raises: malformed keys, signatures, digests or tables give False.
    # `table` is verify_table(pub); without it verify is about 2.5x slower.
    return finish(verify_steps(pub, digest, sig, table))
