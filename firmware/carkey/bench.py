# carkey — firmware micro-benchmarks: crypto operations and transaction composites.
# SPDX-License-Identifier: MIT
#
# Runs on the Unix port (`make bench`) and on a board (`carkey bench --port`). Each
# operation has a setup that builds fixed inputs outside the timed region; the timed
# callable does only the work a real transaction does. Every timed run of an operation
# comes right after a run of the reference workload (pi_digits, whose ESP32 time is
# published), both after gc.collect(), so the host can turn the per-round ratio into an
# ESP32 estimate that does not move with the machine's speed that day. Prints one JSON
# line per operation.

import gc
import json
import os
import sys
import time

# Fixed inputs: the benchmark measures time, so the values only need to be valid.
_DIGEST = b"\x5a" * 32
_IV = b"\x00" * 8 + b"\x00\x00\x00\x01"
_SALT = b"\x11" * 32 + b"Volatile****" + b"\x22" * 32 + b"\x5e\x5c\x02\x01\x00" + b"\x33" * 48 + b"\x00\x02" + bytes.fromhex("a508800200005c020100")
_INFO = b"\x44" * 32


# The reference workload: 65 digits of pi by the unbounded spigot on Python ints, the
# arithmetic of MicroPython's tests/perf_bench/bm_pidigits.py at its (100, 100)
# setting, whose ESP32 time is published (docs/PERFORMANCE.md, "ESP32 estimate").
# Its operands grow to a few hundred bits, like P-256's field and scalar values.
REF_DIGITS = 65


def _compose(a, b):
    # The product of two transformations, every term computed (zeros and ones
    # included) as the reference benchmark does: same multiplications, same
    # temporaries, so its published time applies.
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    return (a0 * b0, a0 * b1 + a1 * b3, a2 * b0 + a3 * b2, a2 * b1 + a3 * b3)


def _floor_at(z, x):
    q, r, s, t = z
    return (q * x + r) // (s * x + t)


def pi_digits(n):
    # z = (q, r, s, t) maps x to (qx + r) / (sx + t); a digit is certain once
    # z(3) and z(4) have the same integer part.
    z = (1, 0, 0, 1)
    k = 1
    digits = []
    for _ in range(n):
        y = _floor_at(z, 3)
        while y != _floor_at(z, 4):
            z = _compose(z, (k, 4 * k + 2, 0, 2 * k + 1))
            k += 1
            y = _floor_at(z, 3)
        z = _compose((10, -10 * y, 0, 1), z)
        digits.append(y)
    return digits


def reference():
    return pi_digits(REF_DIGITS)


def _setup_p256():
    from carkey.crypto import p256

    priv, pub = p256.generate_keypair()
    peer_priv, peer_pub = p256.generate_keypair()
    sig = p256.sign(priv, _DIGEST)
    return p256, priv, pub, peer_pub, sig


def _op_p256_keygen():
    from carkey.crypto import p256

    return p256.generate_keypair


def _op_p256_ecdh():
    p256, priv, _, peer_pub, _ = _setup_p256()
    return lambda: p256.ecdh(priv, peer_pub)


def _op_p256_sign():
    p256, priv, _, _, _ = _setup_p256()
    return lambda: p256.sign(priv, _DIGEST)


def _op_p256_verify():
    p256, _, pub, _, sig = _setup_p256()

    def run():
        if not p256.verify(pub, _DIGEST, sig):
            raise AssertionError("benchmark signature did not verify")

    return run


def _op_hkdf():
    from carkey.crypto import kdf

    ikm = os.urandom(32)
    return lambda: kdf.hkdf_sha256(ikm, _SALT, _INFO, 160)


def _op_gcm_64():
    from carkey.crypto import aes

    key = os.urandom(32)
    msg = os.urandom(64)
    return lambda: aes.gcm_encrypt(key, _IV, msg)


def _op_cmac_64():
    from carkey.crypto import aes

    key = os.urandom(16)
    msg = os.urandom(64)
    return lambda: aes.cmac(key, msg)


def _op_std_txn():
    # Crypto of one standard transaction as a reader without idle precomputation
    # would do it: its ephemeral key, ECDH, its signature, the device's signature
    # check, the session key schedule and one secure-channel message.
    from carkey.crypto import aes, kdf, p256

    cred_priv, cred_pub = p256.generate_keypair()
    reader_priv, _ = p256.generate_keypair()
    _, peer_eph_pub = p256.generate_keypair()
    cred_sig = p256.sign(cred_priv, _DIGEST)
    msg = os.urandom(64)

    def run():
        eph_priv, _ = p256.generate_keypair()
        z = p256.ecdh(eph_priv, peer_eph_pub)
        kdh = kdf.x963_kdf_sha256(z, b"\x77" * 16, 32)
        p256.sign(reader_priv, _DIGEST)
        if not p256.verify(cred_pub, _DIGEST, cred_sig):
            raise AssertionError("benchmark signature did not verify")
        keys = kdf.hkdf_sha256(kdh, _SALT, _INFO, 160)
        aes.gcm_encrypt(keys[:32], _IV, msg)

    return run


def _op_fast_txn():
    # A fast transaction's crypto: the VolatileFast key schedule from Kpersistent,
    # then the 64-byte cryptogram's GCM check with CryptogramSK.
    from carkey.crypto import aes, kdf

    kpersistent = os.urandom(32)
    cryptogram_sk = kdf.hkdf_sha256(kpersistent, _SALT, _INFO, 160)[:32]
    cryptogram = aes.gcm_encrypt(cryptogram_sk, b"\x00" * 12, os.urandom(48))

    def run():
        keys = kdf.hkdf_sha256(kpersistent, _SALT, _INFO, 160)
        aes.gcm_decrypt(keys[:32], b"\x00" * 12, cryptogram)

    return run


# Where the reader rows find their recorded taps (carkey.bench_reader) and keep
# their state directory; set by --fixture= and --state=.
_reader_files = {"fixture": "bench_fixture.json", "state": "bench_state"}


def _reader_bench():
    from carkey.bench_reader import Bench

    with open(_reader_files["fixture"]) as f:
        fixture = json.load(f)
    return Bench(_reader_files["state"], fixture)


def _op_reader_std_txn():
    # The ECU's standard tap after idle precomputation, from SELECT to CONTROL FLOW:
    # AUTH0, AUTH1 (ECDH, reader signature with a precomputed nonce, device
    # signature check), hello, one command, result. The flash writes it leaves for
    # after the tap (audit record, key-store commit) are reader_after_tap.
    bench = _reader_bench()
    return bench.car.settle, lambda: bench.replay("standard")


def _op_reader_fast_txn():
    # The ECU's fast tap: the cryptogram matched against the cached Kpersistent, then
    # the same envelope and door work as a standard tap, to CONTROL FLOW.
    bench = _reader_bench()
    bench.replay("standard")  # leaves the Kpersistent the fast tap needs
    return bench.car.settle, lambda: bench.replay("fast")


def _op_reader_after_tap():
    # What a fast tap leaves for right after it: its audit record and the key-store
    # commit of the key's use, on the board's file system.
    bench = _reader_bench()
    bench.replay("standard")
    bench.car.settle()
    return lambda: bench.replay("fast"), bench.car.settle


def _op_baseline():
    # The interpreter, this module and the timing loop alone: subtract from peak heaps.
    return lambda: None


def _op_ref_pidigits():
    # The reference workload on its own: on a board, its median is that board's T_ref.
    return reference


OPERATIONS = {
    "baseline": _op_baseline,
    "p256_keygen": _op_p256_keygen,
    "p256_ecdh": _op_p256_ecdh,
    "p256_sign": _op_p256_sign,
    "p256_verify": _op_p256_verify,
    "hkdf": _op_hkdf,
    "gcm_64": _op_gcm_64,
    "cmac_64": _op_cmac_64,
    "std_txn": _op_std_txn,
    "fast_txn": _op_fast_txn,
    "reader_std_txn": _op_reader_std_txn,
    "reader_fast_txn": _op_reader_fast_txn,
    "reader_after_tap": _op_reader_after_tap,
    "ref_pidigits": _op_ref_pidigits,
}


def _timed(fn):
    gc.collect()
    t0 = time.ticks_us()
    fn()
    return time.ticks_diff(time.ticks_us(), t0)


def measure(name, runs, operations=None):
    # An operation is fn, or (prepare, fn): prepare runs untimed before every fn
    # (e.g. the flash writes a tap leaves behind, or the tap whose writes fn times).
    # `operations`: another table of them (the key fob's benchmark), OPERATIONS if None.
    op = (operations or OPERATIONS)[name]()
    prepare, fn = op if isinstance(op, tuple) else (None, op)
    if prepare:
        prepare()
    fn()  # warm-up: first-call imports and lazy tables are not per-transaction work
    reference()
    times = []
    ref_times = []
    ratios = []
    for _ in range(runs):
        if prepare:
            prepare()
        # One round: the reference, then the operation right after it, so both see
        # the same machine load and the same heap.
        t_ref = _timed(reference)
        t_op = _timed(fn)
        times.append(t_op)
        ref_times.append(t_ref)
        ratios.append(t_op / max(t_ref, 1))
    times.sort()
    ref_times.sort()
    ratios.sort()
    if prepare:
        prepare()
    gc.collect()
    free = gc.mem_free()  # what one run can allocate before the collector must run
    gc.disable()
    before = gc.mem_alloc()
    try:
        fn()
        allocated = gc.mem_alloc() - before
    except MemoryError:
        allocated = -1  # more garbage than the heap holds without a collection
    gc.enable()
    mid = runs // 2
    return {"op": name, "median_us": times[mid], "min_us": times[0], "runs": runs, "alloc_bytes": allocated,
            "free_bytes": free,
            "ref_median_us": ref_times[mid], "ratio_median": ratios[mid], "ratio_min": ratios[0],
            "ratio_q1": ratios[runs // 4], "ratio_q3": ratios[(3 * runs) // 4], "ratio_max": ratios[-1]}


def lockstep(name):
    # One timed run per line on stdin, its time in µs printed back; "end" stops.
    # The host drives an operation and the reference in two processes at the same
    # -X heapsize, alternating run by run, so the reference keeps the conditions of
    # its published time (a heap holding nothing else) while the operation keeps its
    # own (its modules and state resident) and both see the same machine load.
    op = OPERATIONS[name]()
    prepare, fn = op if isinstance(op, tuple) else (None, op)
    if prepare:
        prepare()
    fn()  # warm-up
    print("ready")
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == "end":
            break
        if prepare:
            prepare()
        print(_timed(fn))
    if prepare:
        prepare()
    gc.collect()
    free = gc.mem_free()
    gc.disable()
    before = gc.mem_alloc()
    try:
        fn()
        allocated = gc.mem_alloc() - before
    except MemoryError:
        allocated = -1
    gc.enable()
    print(json.dumps({"op": name, "alloc_bytes": allocated, "free_bytes": free}))


def main(argv):
    runs = 15
    names = []
    step = False
    for arg in argv:
        if arg == "--lockstep":
            step = True
        elif arg.startswith("--runs="):
            runs = int(arg[7:])
        elif arg.startswith("--fixture="):
            _reader_files["fixture"] = arg[10:]
        elif arg.startswith("--state="):
            _reader_files["state"] = arg[8:]
        else:
            names.append(arg)
    if step:
        lockstep(names[0])
        return 0
    for name in names or list(OPERATIONS):
        if name not in OPERATIONS:
            print(json.dumps({"op": name, "error": "unknown operation"}))
            continue
        print(json.dumps(measure(name, runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
