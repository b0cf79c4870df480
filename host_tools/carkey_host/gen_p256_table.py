# carkey — generator of firmware/carkey/crypto/p256_table.py, the P-256 base-point comb table.
# SPDX-License-Identifier: MIT
"""Build the signed-comb table that the firmware uses for k·G (key generation, signing).

Layout (shared with the per-credential tables made on the board by p256.verify_table):
the scalar is written with 264 digits of ±1 (an "all-bits signed" comb), cut into
2 blocks of 6 teeth spaced 22 bits apart. Entry m (0..31) of block b is the affine point

    2**(132*b) * (2**110 + sum_{j<5} (+1 if bit j of m else -1) * 2**(22*j)) * P

stored as x || y, 32 bytes each, big-endian: 64 entries, 4096 bytes. Deterministic.

    python -m carkey_host.gen_p256_table            # rewrite the firmware module
    python -m carkey_host.gen_p256_table --check    # exit 1 if the committed module differs
"""

import argparse
import sys
from pathlib import Path

from . import paths

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

TEETH = 6
COLS = 22
BLOCKS = 2
ENTRIES = 1 << (TEETH - 1)
MODULE_PATH = paths.FIRMWARE_DIR / "carkey" / "crypto" / "p256_table.py"
_LINE_BYTES = 32


def _add(p1, p2):
    """Affine addition with the point at infinity as None (slow and simple: host only)."""
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            return None
        lam = (3 * x1 * x1 - 3) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def scalar_mult(k, point):
    result = None
    for bit in bin(k % N)[2:]:
        result = _add(result, result)
        if bit == "1":
            result = _add(result, point)
    return result


def entry_scalar(block, m):
    """The multiple of the base point held by entry m of the given block."""
    k = 1 << (COLS * (TEETH - 1))
    for j in range(TEETH - 1):
        k += (1 if (m >> j) & 1 else -1) << (COLS * j)
    return (k << (COLS * TEETH * block)) % N


def comb_table(point=(GX, GY)):
    out = bytearray()
    for block in range(BLOCKS):
        for m in range(ENTRIES):
            x, y = scalar_mult(entry_scalar(block, m), point)
            out += x.to_bytes(32, "big") + y.to_bytes(32, "big")
    return bytes(out)


def module_text():
    table = comb_table()
    lines = [
        "# carkey — P-256 base-point comb table (generated: do not edit).",
        "# SPDX-License-Identifier: MIT",
        "# Made by host_tools/carkey_host/gen_p256_table.py; the layout is described there and in p256.py.",
        "# %d blocks x %d entries x 64 bytes (affine x || y, big-endian) = %d bytes."
        % (BLOCKS, ENTRIES, len(table)),
        "",
        "G_COMB = (",
    ]
    for i in range(0, len(table), _LINE_BYTES):
        chunk = table[i : i + _LINE_BYTES]
        lines.append('    b"' + "".join("\\x%02x" % b for b in chunk) + '"')
    lines.append(")")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed module")
    parser.add_argument("--output", type=Path, default=MODULE_PATH)
    args = parser.parse_args(argv)
    text = module_text()
    if args.check:
        same = args.output.exists() and args.output.read_text() == text
        if not same:
            print("carkey: %s is stale; regenerate it" % args.output, file=sys.stderr)
        return 0 if same else 1
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
