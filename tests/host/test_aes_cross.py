# carkey — cross-checks of the firmware's AES-GCM and AES-CMAC against `cryptography` and NIST files.
# SPDX-License-Identifier: MIT
"""Firmware AES-GCM / AES-CMAC (MicroPython) against CPython's `cryptography`.

Both directions for random keys, IVs, messages and AAD; tampering rejected; the
NIST CAVP GCM files (every 96-bit-IV, 128-bit-tag vector, FAIL entries included)
and the SP 800-38B CMAC files from the `cryptography_vectors` package.
Run: .venv/bin/pytest -q tests/host/test_aes_cross.py
"""

from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.cmac import CMAC
from hypothesis import given, settings
from hypothesis import strategies as st

from carkey_host.runner import MicroPythonError

MOD = "carkey.crypto.aes"
VECTORS = Path(cryptography_vectors.__file__).parent
CROSS = settings(max_examples=150, deadline=None)

keys = st.sampled_from([16, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
ivs = st.binary(min_size=12, max_size=12)
# Lengths around the block size and the firmware's 240/256-byte chunking.
messages = st.one_of(st.binary(max_size=80), st.binary(min_size=230, max_size=530))
aads = st.one_of(st.just(b""), st.binary(max_size=300))


def cmac_ref(key, msg):
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()


def assert_rejected(mpy, *args):
    with pytest.raises(MicroPythonError) as info:
        mpy.call(MOD, "gcm_decrypt", *args)
    assert info.value.type == "ValueError"
    assert info.value.message == "GCM tag mismatch"


# --- GCM in both directions ----------------------------------------------------


@CROSS
@given(key=keys, iv=ivs, pt=messages, aad=aads)
def test_firmware_seals_like_cryptography(mpy, key, iv, pt, aad):
    sealed = mpy.call(MOD, "gcm_encrypt", key, iv, pt, aad)
    assert sealed == AESGCM(key).encrypt(iv, pt, aad)


@CROSS
@given(key=keys, iv=ivs, pt=messages, aad=aads)
def test_firmware_opens_what_cryptography_seals(mpy, key, iv, pt, aad):
    assert mpy.call(MOD, "gcm_decrypt", key, iv, AESGCM(key).encrypt(iv, pt, aad), aad) == pt


@CROSS
@given(key=keys, iv=ivs, pt=messages, aad=aads, data=st.data())
def test_tampering_is_rejected(mpy, key, iv, pt, aad, data):
    sealed = bytearray(AESGCM(key).encrypt(iv, pt, aad))
    where = data.draw(st.sampled_from(["data", "aad", "iv"] if aad else ["data", "iv"]))
    target = {"data": sealed, "aad": bytearray(aad), "iv": bytearray(iv)}[where]
    bit = data.draw(st.integers(min_value=0, max_value=8 * len(target) - 1))
    target[bit // 8] ^= 1 << (bit % 8)
    args = {"data": sealed, "aad": aad, "iv": iv}
    args[where] = bytes(target)
    assert_rejected(mpy, key, args["iv"], bytes(args["data"]), args["aad"])


@CROSS
@given(key=keys, iv=ivs, pt=messages, cut=st.integers(min_value=1, max_value=17))
def test_truncation_is_rejected(mpy, key, iv, pt, cut):
    sealed = AESGCM(key).encrypt(iv, pt, b"")
    with pytest.raises(MicroPythonError) as info:
        mpy.call(MOD, "gcm_decrypt", key, iv, sealed[:-cut])
    assert info.value.type == "ValueError"


@CROSS
@given(key=keys, iv=ivs, pt=messages, n=st.integers(min_value=0, max_value=600))
def test_unverified_ctr_is_the_plaintext_prefix(mpy, key, iv, pt, n):
    ct = AESGCM(key).encrypt(iv, pt, b"")[:-16]
    assert mpy.call(MOD, "gcm_decrypt_unverified", key, iv, ct[:n]) == pt[:n]


def test_secure_channel_counter_ivs(mpy):
    # IV = 8 zero bytes || counter, as the secure channel builds them, with
    # messages growing across the block and chunk sizes.
    key = bytes(range(32))
    for counter in range(1, 41):
        iv = bytes(8) + counter.to_bytes(4, "big")
        pt = bytes((counter * i) & 0xFF for i in range(counter * 7))
        assert mpy.call(MOD, "gcm_encrypt", key, iv, pt, b"") == AESGCM(key).encrypt(iv, pt, b"")


@settings(max_examples=40, deadline=None)
@given(key=keys, iv=ivs, pt=st.binary(max_size=1024), aad=aads)
def test_round_trip_in_64k_heap(mpy_64k, key, iv, pt, aad):
    sealed = mpy_64k.call(MOD, "gcm_encrypt", key, iv, pt, aad)
    assert sealed == AESGCM(key).encrypt(iv, pt, aad)
    assert mpy_64k.call(MOD, "gcm_decrypt", key, iv, sealed, aad) == pt


# --- NIST CAVP GCM files -------------------------------------------------------


def _rsp(name):
    # Entries of a CAVP .rsp file, each with its [section] parameters as ints.
    section, entry, out = {}, None, []
    for line in (VECTORS / "ciphers" / "AES" / "GCM" / name).read_text().splitlines():
        line = line.strip()
        if line.startswith("[") and "=" in line:
            k, v = line[1:-1].split("=", 1)
            section[k.strip()] = int(v)
        elif line.startswith("Count"):
            entry = dict(section)
            out.append(entry)
        elif line == "FAIL":
            entry["FAIL"] = True
        elif "=" in line and entry is not None:
            k, v = line.split("=", 1)
            entry[k.strip()] = bytes.fromhex(v.strip())
    # carkey takes 12-byte IVs and full 16-byte tags only.
    return [e for e in out if e["IVlen"] == 96 and e["Taglen"] == 128]


@pytest.mark.parametrize("name", ["gcmEncryptExtIV128.rsp", "gcmEncryptExtIV256.rsp"])
def test_cavp_gcm_encrypt(mpy, name):
    cases = _rsp(name)
    assert len(cases) == 375
    wrong = []
    for c in cases:
        sealed = mpy.call(MOD, "gcm_encrypt", c["Key"], c["IV"], c["PT"], c["AAD"])
        if sealed != c["CT"] + c["Tag"]:
            wrong.append((c["PTlen"], c["AADlen"], c["Key"].hex()))
    assert wrong == []


@pytest.mark.parametrize("name", ["gcmDecrypt128.rsp", "gcmDecrypt256.rsp"])
def test_cavp_gcm_decrypt_with_fail_entries(mpy, name):
    cases = _rsp(name)
    assert len(cases) == 375
    assert 150 < sum(1 for c in cases if c.get("FAIL")) < 225
    wrong = []
    for c in cases:
        try:
            result = mpy.call(MOD, "gcm_decrypt", c["Key"], c["IV"], c["CT"] + c["Tag"], c["AAD"])
        except MicroPythonError as e:
            result = e.type
        expected = "ValueError" if c.get("FAIL") else c["PT"]
        if result != expected:
            wrong.append((c["PTlen"], c["AADlen"], c["Key"].hex(), result))
    assert wrong == []


# --- CMAC ----------------------------------------------------------------------


@CROSS
@given(key=keys, msg=st.binary(max_size=200))
def test_cmac_matches_cryptography(mpy, key, msg):
    assert mpy.call(MOD, "cmac", key, msg) == cmac_ref(key, msg)


@pytest.mark.parametrize("bits", [128, 256])
def test_sp800_38b_cmac_files(mpy, bits):
    cases, entry = [], None
    for line in (VECTORS / "CMAC" / f"nist-800-38b-aes{bits}.txt").read_text().splitlines():
        name, _, value = line.partition("=")
        name = name.strip()
        if name == "COUNT":
            entry = {}
            cases.append(entry)
        elif name in ("KEY", "MESSAGE", "OUTPUT"):
            entry[name] = bytes.fromhex(value.strip())
    assert len(cases) == 4
    for c in cases:
        assert mpy.call(MOD, "cmac", c["KEY"], c["MESSAGE"]) == c["OUTPUT"]


# --- input checking ------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 8, 11, 13, 16])
def test_iv_length_rejected(mpy, n):
    with pytest.raises(MicroPythonError) as info:
        mpy.call(MOD, "gcm_encrypt", bytes(16), bytes(n), b"abc", b"")
    assert (info.value.type, info.value.message) == ("ValueError", "GCM IV must be 12 bytes")


@pytest.mark.parametrize("n", [0, 15, 24, 33])
def test_key_length_rejected(mpy, n):
    for fn, args in (("gcm_encrypt", (bytes(12), b"", b"")), ("cmac", (b"",))):
        with pytest.raises(MicroPythonError) as info:
            mpy.call(MOD, fn, bytes(n), *args)
        assert (info.value.type, info.value.message) == ("ValueError", "AES key must be 16 or 32 bytes")
