# carkey — GCM's small-int arithmetic stays inside a 32-bit port's small ints, checked operation by operation.
# SPDX-License-Identifier: MIT
"""Every integer the firmware's GCM computes stays below 2^30 in magnitude.

On a 32-bit MicroPython (the ESP32) a small int holds 31 bits signed, |x| < 2^30;
anything larger is a heap-allocated big integer. The project's 64-bit Unix port
keeps ints up to 2^62 unboxed, so an allocation count taken there cannot show
that the code would allocate nothing on the chip. This test can: it loads
firmware/carkey/crypto/aes.py in CPython with every arithmetic operation of the
GCM code (binary, unary and augmented) rewritten to pass its result through a
check, stands in `cryptography` for cryptolib's AES-ECB, and runs encryption and
decryption over random keys, IVs, messages and AAD, also comparing the output
with `cryptography`'s AES-GCM. A single intermediate at or beyond 2^30 fails it.
Run: .venv/bin/pytest -q tests/host/test_ghash_bounds.py
"""

import array
import ast
import os
import random
import types

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carkey_host import paths

AES_SOURCE = paths.FIRMWARE_DIR / "carkey" / "crypto" / "aes.py"
SMALL = 1 << 30  # a 32-bit port's small ints: -2^30 <= x < 2^30
# The GCM part of the module (CMAC is not on the tap path and keeps big ints).
GCM_FUNCTIONS = {"_limbs", "_ghash_key", "_ghash", "_absorb", "_tag", "_keystream", "_xor", "_check_iv", "__init__",
                 "encrypt", "decrypt", "gcm_encrypt", "gcm_decrypt", "gcm_decrypt_unverified", "cipher",
                 "first_block"}


class Checked(ast.NodeTransformer):
    """Wraps every arithmetic result inside the GCM functions in _small(...)."""

    def __init__(self):
        self.inside = 0

    def visit_FunctionDef(self, node):
        wanted = node.name in GCM_FUNCTIONS
        self.inside += wanted
        self.generic_visit(node)
        self.inside -= wanted
        return node

    def _wrap(self, node):
        return ast.Call(func=ast.Name("_small", ast.Load()), args=[node], keywords=[])

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return self._wrap(node) if self.inside else node

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        return self._wrap(node) if self.inside and not isinstance(node.op, ast.Not) else node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        if not self.inside or not isinstance(node.target, ast.Name):
            return node
        value = ast.BinOp(ast.Name(node.target.id, ast.Load()), node.op, node.value)
        return ast.Assign(targets=[ast.Name(node.target.id, ast.Store())], value=self._wrap(value))


class Ecb:
    """cryptolib.aes(key, 1): encrypt(in[, out]) over whole blocks."""

    def __init__(self, key, mode, iv=None):
        assert mode == 1, "GCM uses ECB only"
        self._enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()

    def encrypt(self, data, out=None):
        result = self._enc.update(bytes(data))
        if out is None:
            return result
        out[: len(result)] = result
        return None


def load(source=AES_SOURCE, counter=None):
    """The firmware module, instrumented: _small() raises on any int outside the small range."""
    checked = []

    def small(value):
        if isinstance(value, int) and not -SMALL <= value < SMALL:
            raise AssertionError(f"intermediate {value:#x} does not fit a 32-bit port's small int")
        checked.append(1)
        return value

    tree = Checked().visit(ast.parse(source.read_text()))
    ast.fix_missing_locations(tree)
    # Stand-ins for what a board provides: const() and cryptolib; ct.equal is pure Python.
    micropython = types.ModuleType("micropython")
    micropython.const = lambda v: v
    cryptolib = types.ModuleType("cryptolib")
    cryptolib.aes = Ecb
    ct = types.ModuleType("carkey.crypto.ct")
    ct.equal = lambda a, b: bytes(a) == bytes(b)
    modules = {"micropython": micropython, "cryptolib": cryptolib, "carkey.crypto.ct": ct, "array": array}

    def importer(name, globals=None, locals=None, fromlist=(), level=0):
        return modules[name]

    builtins = dict(__builtins__ if isinstance(__builtins__, dict) else vars(__builtins__))
    builtins["__import__"] = importer
    namespace = {"__builtins__": builtins, "_small": small, "__name__": "carkey.crypto.aes"}
    exec(compile(tree, str(source), "exec"), namespace)
    return types.SimpleNamespace(**namespace), checked


def test_gcm_intermediates_stay_small_and_match_cryptography():
    aes, checked = load()
    rng = random.Random(20261203)
    lengths = [0, 1, 15, 16, 17, 48, 64, 100, 239, 240, 241, 255, 256, 300, 530]
    for n in lengths:
        for keylen in (16, 32):
            key = rng.randbytes(keylen)
            iv = rng.randbytes(12)
            msg = rng.randbytes(n)
            aad = rng.randbytes(rng.choice([0, 5, 16, 40]))
            want = AESGCM(key).encrypt(iv, msg, aad or None)
            got = aes.Gcm(key).encrypt(iv, msg, aad)
            assert got == want
            assert aes.gcm_decrypt(key, iv, want, aad) == msg
            assert aes.gcm_decrypt_unverified(key, iv, want[:n]) == msg
    # Keys whose GHASH tables use every limb bit: all-ones and random H values.
    for key in (b"\xff" * 32, bytes(32), os.urandom(16)):
        msg = bytes(range(256)) * 2
        assert aes.gcm_encrypt(key, bytes(12), msg) == AESGCM(key).encrypt(bytes(12), msg, None)
    assert len(checked) > 100_000  # the instrumentation really ran the arithmetic


def test_the_check_catches_a_big_intermediate(tmp_path):
    # The same instrumentation on code that grows an int past 2^30 must fail.
    source = tmp_path / "aes.py"
    source.write_text("def _limbs(b):\n    return b[0] << 30\n")
    aes, _ = load(source)
    assert aes._limbs(b"\x00") == 0
    with pytest.raises(AssertionError, match="small int"):
        aes._limbs(b"\x01")
