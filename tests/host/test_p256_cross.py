# carkey — cross-checks of the firmware's P-256 (MicroPython) against `cryptography` and NIST vectors.
# SPDX-License-Identifier: MIT
"""Firmware P-256 against CPython's `cryptography`, in both directions, and NIST CAVP files.

Runs with `pytest tests/host/test_p256_cross.py`. The firmware runs inside the
MicroPython Unix port through the `mpy` bridge fixture (tests/conftest.py); one
test compiles the module to .mpy and runs every operation in a 64 KiB heap.
"""

import hashlib
import re
import subprocess
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from carkey_host import gen_p256_table, paths
from carkey_host.gen_p256_table import GX, GY, N, P, _add, scalar_mult
from carkey_host import runner
from carkey_host.runner import MicroPythonError

MOD = "carkey.crypto.p256"
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
VECTORS = Path(cryptography_vectors.__file__).parent / "asymmetric"
CROSS = settings(max_examples=25, deadline=None)

scalars = st.integers(min_value=1, max_value=N - 1)
digests = st.binary(min_size=32, max_size=32)


def enc(x, y):
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def crypto_priv(d):
    return ec.derive_private_key(d, ec.SECP256R1())


def crypto_pub_bytes(key):
    nums = key.public_key().public_numbers()
    return enc(nums.x, nums.y)


def crypto_verify(pub, digest, sig):
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        return True
    except InvalidSignature:
        return False


def crypto_sign(key, digest, deterministic=False):
    der = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=deterministic))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def y_for(x):
    rhs = (x * x * x - 3 * x + B) % P
    y = pow(rhs, (P + 1) // 4, P)
    return y if y * y % P == rhs else None


# --- the generated table ---------------------------------------------------------


def test_committed_table_matches_generator():
    assert gen_p256_table.MODULE_PATH.read_text() == gen_p256_table.module_text()


def test_table_entries_are_the_documented_multiples():
    table = gen_p256_table.comb_table()
    assert len(table) == 4096
    for block, m in ((0, 0), (0, 31), (1, 0), (1, 17)):
        o = 64 * (32 * block + m)
        x, y = scalar_mult(gen_p256_table.entry_scalar(block, m), (GX, GY))
        assert table[o : o + 64] == x.to_bytes(32, "big") + y.to_bytes(32, "big")


# --- keys and ECDH, both directions ---------------------------------------------


@CROSS
@given(scalars)
def test_public_key_matches_cryptography(mpy, d):
    assert mpy.call(MOD, "public_key", d.to_bytes(32, "big")) == crypto_pub_bytes(crypto_priv(d))


def test_firmware_keypairs_work_in_cryptography(mpy):
    for _ in range(10):
        priv, pub = mpy.call(MOD, "generate_keypair")
        key = crypto_priv(int.from_bytes(priv, "big"))
        assert crypto_pub_bytes(key) == pub
        peer = ec.generate_private_key(ec.SECP256R1())
        shared = key.exchange(ec.ECDH(), peer.public_key())
        assert peer.exchange(ec.ECDH(), key.public_key()) == shared
        assert mpy.call(MOD, "ecdh", priv, crypto_pub_bytes(peer)) == shared


@CROSS
@given(scalars, scalars)
def test_ecdh_matches_cryptography(mpy, a, b):
    key_a, key_b = crypto_priv(a), crypto_priv(b)
    expected = key_a.exchange(ec.ECDH(), key_b.public_key())
    assert mpy.call(MOD, "ecdh", a.to_bytes(32, "big"), crypto_pub_bytes(key_b)) == expected


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 31, 32, 33, 62, 63, 64, 2**128, 2**255, N - 64, N - 33, N - 31, N - 3, N - 2, N - 1])
def test_edge_scalars(mpy, k):
    peer = crypto_priv(0x1234567890ABCDEF)
    assert mpy.call(MOD, "public_key", k.to_bytes(32, "big")) == crypto_pub_bytes(crypto_priv(k))
    expected = crypto_priv(k).exchange(ec.ECDH(), peer.public_key())
    assert mpy.call(MOD, "ecdh", k.to_bytes(32, "big"), crypto_pub_bytes(peer)) == expected


# --- signatures, both directions ------------------------------------------------


@CROSS
@given(scalars, digests)
def test_sign_is_rfc6979_like_cryptography(mpy, d, digest):
    key = crypto_priv(d)
    sig = mpy.call(MOD, "sign", d.to_bytes(32, "big"), digest)
    assert sig == crypto_sign(key, digest, deterministic=True)
    assert crypto_verify(crypto_pub_bytes(key), digest, sig)


@CROSS
@given(scalars, digests, st.binary(min_size=1, max_size=48))
def test_hedged_signatures_verify_in_cryptography(mpy, d, digest, extra):
    sig = mpy.call(MOD, "sign", d.to_bytes(32, "big"), digest, extra)
    assert crypto_verify(crypto_pub_bytes(crypto_priv(d)), digest, sig)
    assert sig != crypto_sign(crypto_priv(d), digest, deterministic=True)


@CROSS
@given(scalars, digests)
def test_cryptography_signatures_verify_in_firmware(mpy, d, digest):
    key = crypto_priv(d)
    pub = crypto_pub_bytes(key)
    sig = crypto_sign(key, digest)
    assert mpy.call(MOD, "verify", pub, digest, sig) is True
    assert mpy.call(MOD, "verify", pub, bytes(b ^ 1 for b in digest), sig) is False
    bad = sig[:40] + bytes([sig[40] ^ 4]) + sig[41:]
    assert mpy.call(MOD, "verify", pub, digest, bad) is False


def test_verify_tables_agree_with_cryptography(mpy):
    for i in range(4):
        key = ec.generate_private_key(ec.SECP256R1())
        pub = crypto_pub_bytes(key)
        table = mpy.call(MOD, "verify_table", pub)
        assert len(table) == 4160 and table[:64] == pub[1:]
        for j in range(3):
            digest = hashlib.sha256(bytes([i, j])).digest()
            sig = crypto_sign(key, digest)
            assert mpy.call(MOD, "verify", pub, digest, sig, table) is True
            assert mpy.call(MOD, "verify", pub, digest[::-1], sig, table) is False


def _signature_with_large_x(seed):
    # Choose R with x(R) >= n, then solve for the public key that makes (x(R) - n, s)
    # a valid signature: u1·G + u2·Q = R.
    x = N + seed
    while y_for(x) is None:
        x += 1
    r = x - N
    digest = hashlib.sha256(b"large x %d" % seed).digest()
    s = int.from_bytes(hashlib.sha256(digest).digest(), "big") % N
    w = pow(s, -1, N)
    u1, u2 = int.from_bytes(digest, "big") * w % N, r * w % N
    q = scalar_mult(pow(u2, -1, N), _add((x, y_for(x)), scalar_mult(N - u1, (GX, GY))))
    return enc(*q), digest, r.to_bytes(32, "big") + s.to_bytes(32, "big")


@pytest.mark.parametrize("seed", [0, 1000, 2**40])
def test_signature_whose_r_was_reduced_mod_n(mpy, seed):
    pub, digest, sig = _signature_with_large_x(seed)
    assert crypto_verify(pub, digest, sig)
    assert mpy.call(MOD, "verify", pub, digest, sig) is True
    table = mpy.call(MOD, "verify_table", pub)
    assert mpy.call(MOD, "verify", pub, digest, sig, table) is True


# --- hostile points -------------------------------------------------------------


def _crypto_accepts(pub):
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), pub)
        return True
    except ValueError:
        return False


@CROSS
@given(st.binary(min_size=64, max_size=64))
def test_random_points_rejected_like_cryptography(mpy, body):
    pub = b"\x04" + body
    valid = mpy.call(MOD, "is_valid_public_key", pub)
    assert valid is _crypto_accepts(pub)
    if not valid:
        with pytest.raises(MicroPythonError) as err:
            mpy.call(MOD, "ecdh", (5).to_bytes(32, "big"), pub)
        assert err.value.type == "ValueError"


@CROSS
@given(st.integers(min_value=0, max_value=P - 1), st.booleans())
def test_points_from_x_agree_with_cryptography(mpy, x, flip):
    y = y_for(x)
    if y is None:
        y = (x * 7 + 3) % P  # most likely off the curve
    elif flip:
        y = P - y
    pub = enc(x, y)
    assert mpy.call(MOD, "is_valid_public_key", pub) is _crypto_accepts(pub)


def test_unreduced_coordinates_rejected(mpy):
    y0 = y_for(0)
    assert mpy.call(MOD, "is_valid_public_key", enc(0, y0)) is True
    for pub in (enc(P, y0), enc(GX, P), enc(GX + P, GY) if GX + P < 2**256 else enc(2**256 - 1, GY)):
        assert mpy.call(MOD, "is_valid_public_key", pub) is False
        with pytest.raises(MicroPythonError) as err:
            mpy.call(MOD, "ecdh", (7).to_bytes(32, "big"), pub)
        assert err.value.type == "ValueError"


# --- NIST CAVP files --------------------------------------------------------------


_SECTION = re.compile(r"^\[([PKB]-\d|E[A-Z]\b)")


def _records(path, section):
    # "Key = value" records (blank-line separated) under the [section] header.
    inside = False
    record = {}
    for line in path.read_text().splitlines() + [""]:
        line = line.strip()
        if _SECTION.match(line):
            inside = line == "[%s]" % section
            record = {}
        elif not line:
            if inside and record:
                yield record
            record = {}
        elif inside and " = " in line and not line.startswith("#"):
            key, _, value = line.partition(" = ")
            record[key] = value


def _coord(text):
    value = int(text, 16)
    return value.to_bytes(32, "big") if value < 2**256 else None


def test_nist_sigver_p256_sha256(mpy):
    cases = list(_records(VECTORS / "ECDSA" / "FIPS_186-3" / "SigVer.rsp", "P-256,SHA-256"))
    assert len(cases) == 15
    for case in cases:
        pub = b"\x04" + _coord(case["Qx"]) + _coord(case["Qy"])
        digest = hashlib.sha256(bytes.fromhex(case["Msg"])).digest()
        sig = _coord(case["R"]) + _coord(case["S"])
        expected = case["Result"].startswith("P")
        assert mpy.call(MOD, "verify", pub, digest, sig) is expected, case["Result"]
        table = mpy.call(MOD, "verify_table", pub)
        assert mpy.call(MOD, "verify", pub, digest, sig, table) is expected, case["Result"]


def test_nist_siggen_p256_sha256_keys_and_signatures(mpy):
    cases = list(_records(VECTORS / "ECDSA" / "FIPS_186-3" / "SigGen.txt", "P-256,SHA-256"))
    assert len(cases) == 15
    for case in cases:
        pub = b"\x04" + _coord(case["Qx"]) + _coord(case["Qy"])
        assert mpy.call(MOD, "public_key", _coord(case["d"])) == pub
        digest = hashlib.sha256(bytes.fromhex(case["Msg"])).digest()
        assert mpy.call(MOD, "verify", pub, digest, _coord(case["R"]) + _coord(case["S"])) is True


def test_nist_keypair_p256(mpy):
    cases = list(_records(VECTORS / "ECDSA" / "FIPS_186-3" / "KeyPair.rsp", "P-256"))
    cases = [c for c in cases if "d" in c]
    assert len(cases) == 10
    for case in cases:
        assert mpy.call(MOD, "public_key", _coord(case["d"])) == b"\x04" + _coord(case["Qx"]) + _coord(case["Qy"])


def test_nist_pkv_p256(mpy):
    cases = list(_records(VECTORS / "ECDSA" / "FIPS_186-3" / "PKV.rsp", "P-256"))
    assert len(cases) == 12
    for case in cases:
        x, y = _coord(case["Qx"]), _coord(case["Qy"])
        expected = case["Result"].startswith("P")
        if x is None or y is None:
            assert not expected  # cannot even be written in 65 bytes
            continue
        assert mpy.call(MOD, "is_valid_public_key", b"\x04" + x + y) is expected, case["Result"]


@pytest.mark.parametrize("name", ["init", "resp"])
def test_nist_ecdh_kas_validity(mpy, name):
    path = VECTORS / "ECDH" / ("KASValidityTest_ECCStaticUnified_NOKC_ZZOnly_%s.fax" % name)
    cases = [c for c in _records(path, "EC - SHA256") if "Z" in c]
    assert len(cases) == 30
    for case in cases:
        expected = case["Result"].startswith("P")
        d = _coord(case["dsIUT"])
        ours = b"\x04" + _coord(case["QsIUTx"]) + _coord(case["QsIUTy"])
        theirs = b"\x04" + _coord(case["QsCAVSx"]) + _coord(case["QsCAVSy"])
        try:
            ok = mpy.call(MOD, "public_key", d) == ours and mpy.call(MOD, "ecdh", d, theirs) == _coord(case["Z"])
        except MicroPythonError as e:
            assert e.type == "ValueError"
            ok = False
        assert ok is expected, case["Result"]


# --- the compiled module in a board-sized heap ----------------------------------------

_HEAP_SCRIPT = """
import gc, hashlib
from carkey.crypto import p256
gc.collect()
print("module_heap", gc.mem_alloc())
priv, pub = p256.generate_keypair()
peer_priv, peer_pub = p256.generate_keypair()
digest = hashlib.sha256(b"64k").digest()
print("pub", pub.hex())
print("ecdh", p256.ecdh(priv, peer_pub).hex(), p256.ecdh(peer_priv, pub).hex())
sig = p256.sign(priv, digest)
print("sig", sig.hex())
nsig = p256.sign_with_nonce(priv, digest, p256.precompute_nonce())
print("nsig", nsig.hex())
table = p256.verify_table(pub)
print("verify", p256.verify(pub, digest, sig), p256.verify(pub, digest, nsig, table))
"""


def _compile_p256(dest):
    firmware = paths.FIRMWARE_DIR
    for rel in (
        "carkey/__init__.py",
        "carkey/crypto/kdf.py",
        "carkey/crypto/p256.py",
        "carkey/crypto/p256_table.py",
    ):
        out = dest / Path(rel).with_suffix(".mpy")
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([paths.mpy_cross_executable(), "-o", str(out), "-s", rel, str(firmware / rel)], check=True)


def test_runs_in_64k_heap_as_mpy(tmp_path):
    _compile_p256(tmp_path)
    env = runner.environment(tmp_path)
    proc = subprocess.run(
        runner.command("-c", _HEAP_SCRIPT, heapsize="64k"),
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert int(out["module_heap"]) < 24 * 1024
    pub = bytes.fromhex(out["pub"])
    digest = hashlib.sha256(b"64k").digest()
    a, b = out["ecdh"].split()
    assert a == b
    assert crypto_verify(pub, digest, bytes.fromhex(out["sig"]))
    assert crypto_verify(pub, digest, bytes.fromhex(out["nsig"]))
    assert out["verify"] == "True True"
