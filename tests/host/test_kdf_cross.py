# carkey — cross-checks of the firmware's HMAC, HKDF and X9.63 KDF against `cryptography` and published files.
# SPDX-License-Identifier: MIT
"""Firmware carkey.crypto.kdf and carkey.crypto.ct (MicroPython) against CPython.

Random inputs against `cryptography` (HKDF, HKDFExpand, X963KDF) and `hmac`; the
RFC 4231, RFC 5869 and ANSI X9.63 (CAVS) files of the `cryptography_vectors` package.
Run: .venv/bin/pytest -q tests/host/test_kdf_cross.py
"""

import hashlib
import hmac
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from hypothesis import given, settings
from hypothesis import strategies as st

from carkey_host.runner import MicroPythonError

MOD = "carkey.crypto.kdf"
VECTORS = Path(cryptography_vectors.__file__).parent
CROSS = settings(max_examples=150, deadline=None)


def entries(text, start="COUNT"):
    # `NAME = value` lines grouped into one dict per entry; values stay text.
    out, entry = [], None
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or name.startswith("#"):
            continue
        if name == start:
            entry = {}
            out.append(entry)
        elif entry is not None:
            entry[name] = value.strip()
    return out


# --- random inputs against the references --------------------------------------


@CROSS
@given(key=st.binary(max_size=150), msg=st.binary(max_size=300))
def test_hmac_matches_python(mpy, key, msg):
    assert mpy.call(MOD, "hmac_sha256", key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


@CROSS
@given(
    ikm=st.binary(max_size=80),
    salt=st.one_of(st.just(b""), st.binary(max_size=140)),
    info=st.binary(max_size=80),
    length=st.integers(min_value=1, max_value=400),
)
def test_hkdf_matches_cryptography(mpy, ikm, salt, info, length):
    ref = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert mpy.call(MOD, "hkdf_sha256", ikm, salt, info, length) == ref


@CROSS
@given(prk=st.binary(min_size=32, max_size=64), info=st.binary(max_size=80), length=st.integers(min_value=1, max_value=400))
def test_hkdf_expand_matches_cryptography(mpy, prk, info, length):
    assert mpy.call(MOD, "hkdf_expand", prk, info, length) == HKDFExpand(hashes.SHA256(), length, info).derive(prk)


@CROSS
@given(salt=st.binary(max_size=140), ikm=st.binary(max_size=80))
def test_hkdf_extract_is_hmac_of_salt(mpy, salt, ikm):
    expected = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    assert mpy.call(MOD, "hkdf_extract", salt, ikm) == expected


@CROSS
@given(z=st.binary(min_size=1, max_size=66), info=st.binary(max_size=64), length=st.integers(min_value=1, max_value=300))
def test_x963_matches_cryptography(mpy, z, info, length):
    ref = X963KDF(hashes.SHA256(), length, info).derive(z)
    assert mpy.call(MOD, "x963_kdf_sha256", z, info, length) == ref


@CROSS
@given(a=st.binary(max_size=40), data=st.data())
def test_ct_equal_agrees_with_equality(mpy, a, data):
    b = data.draw(st.one_of(st.just(a), st.binary(max_size=40), st.just(a[:-1]), st.just(a + b"\x00")))
    assert mpy.call("carkey.crypto.ct", "equal", a, b) is (a == b)


def test_hkdf_length_limit(mpy):
    with pytest.raises(MicroPythonError) as info:
        mpy.call(MOD, "hkdf_expand", bytes(32), b"", 255 * 32 + 1)
    assert info.value.type == "ValueError"


# --- published files -------------------------------------------------------------


def test_rfc4231_hmac_sha256(mpy):
    cases = entries((VECTORS / "HMAC" / "rfc-4231-sha256.txt").read_text(), start="Len")
    assert len(cases) == 6
    for c in cases:
        assert mpy.call(MOD, "hmac_sha256", bytes.fromhex(c["Key"]), bytes.fromhex(c["Msg"])) == bytes.fromhex(c["MD"])


def test_rfc5869_hkdf_sha256(mpy):
    cases = entries((VECTORS / "KDF" / "rfc-5869-HKDF-SHA256.txt").read_text())
    assert len(cases) == 3
    for c in cases:
        ikm, salt, info = (bytes.fromhex(c[k]) for k in ("IKM", "salt", "info"))
        prk, okm, length = bytes.fromhex(c["PRK"]), bytes.fromhex(c["OKM"]), int(c["L"])
        assert mpy.call(MOD, "hkdf_extract", salt, ikm) == prk
        assert mpy.call(MOD, "hkdf_expand", prk, info, length) == okm
        assert mpy.call(MOD, "hkdf_sha256", ikm, salt, info, length) == okm


def test_generated_1200_byte_hkdf(mpy):
    (c,) = entries((VECTORS / "KDF" / "hkdf-generated.txt").read_text())
    ikm, salt, info = (bytes.fromhex(c[k]) for k in ("IKM", "salt", "info"))
    assert mpy.call(MOD, "hkdf_sha256", ikm, salt, info, int(c["L"])) == bytes.fromhex(c["OKM"])


def test_ansx963_sha256(mpy):
    text = (VECTORS / "KDF" / "ansx963_2001.txt").read_text()
    cases = entries(text[text.index("[SHA-256]") : text.index("[SHA-384]")])
    assert len(cases) == 20
    for c in cases:
        key_data = bytes.fromhex(c["key_data"])
        z, info = bytes.fromhex(c["Z"]), bytes.fromhex(c["SharedInfo"])
        assert mpy.call(MOD, "x963_kdf_sha256", z, info, len(key_data)) == key_data
