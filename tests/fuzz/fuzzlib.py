# carkey — fuzz campaign helpers for MicroPython: a seeded PRNG, byte mutators, outcome histograms, the corpus.
# SPDX-License-Identifier: MIT
#
# Every case is reproducible from (surface, seed, case number): Rng is a 32-bit
# xorshift that behaves the same in MicroPython and CPython. The corpus of a
# surface is tests/fuzz/corpus/<surface>.txt, one hex input per line ('#' starts
# a comment): seeds and inputs that once reached a new outcome class. Every run
# replays it before generating new cases.

import time

# Values that sit on parser edges: TLV length forms, status words, sign bits.
INTERESTING = (0x00, 0x01, 0x02, 0x1F, 0x3F, 0x40, 0x41, 0x61, 0x6A, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x90, 0xFE, 0xFF)
SWS = (b"\x90\x00", b"\x61\x00", b"\x61\x10", b"\x6a\x82", b"\x69\x85", b"\x6d\x00", b"\x6c\x10", b"\x62\x83", b"")


class Rng:
    def __init__(self, seed):
        self.s = (seed * 2654435761 + 0x9E3779B9) & 0xFFFFFFFF or 1
        for _ in range(4):
            self.next()

    def next(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s

    def below(self, n):
        return self.next() % n if n > 0 else 0

    def chance(self, num, den):
        return self.below(den) < num

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def bytes(self, n):
        out = bytearray(n)
        for i in range(n):
            out[i] = self.next() & 0xFF
        return bytes(out)


def mutate(rng, data, rounds=None):
    """A damaged copy of data: flips, interesting bytes, cuts, inserts, splices."""
    buf = bytearray(data)
    for _ in range(rounds or 1 + rng.below(3)):
        n = len(buf)
        op = rng.below(10)
        if op == 0 and n:
            i = rng.below(n)
            buf[i] ^= 1 << rng.below(8)
        elif op == 1 and n:
            buf[rng.below(n)] = rng.choice(INTERESTING)
        elif op == 2 and n:
            buf[rng.below(n)] = rng.next() & 0xFF
        elif op == 3:
            buf = buf[: rng.below(n + 1)]
        elif op == 4:
            i = rng.below(n + 1)
            buf[i:i] = rng.bytes(1 + rng.below(8))
        elif op == 5 and n:
            i = rng.below(n)
            j = i + 1 + rng.below(min(16, n - i))
            buf[i:j] = b""
        elif op == 6 and n:
            i = rng.below(n)
            j = i + 1 + rng.below(min(32, n - i))
            k = rng.below(n + 1)
            buf[k:k] = buf[i:j]
        elif op == 7:
            buf += rng.bytes(rng.below(300))
        elif op == 8 and n:
            # A length-looking byte set to a long form or its edge.
            buf[rng.below(n)] = rng.choice((0x7F, 0x80, 0x81, 0x82, 0x83, 0xFF))
        else:
            return rng.bytes(rng.below(260))
    return bytes(buf)


class Report:
    """Cases, an outcome histogram (what the surface reached) and violations."""

    def __init__(self, surface, seed):
        self.surface = surface
        self.seed = seed
        self.cases = 0
        self.hist = {}
        self.violations = []
        self.new = []  # (outcome, input hex) for outcome classes first reached in this run
        self.slowest_ms = 0
        self._t0 = time.ticks_ms()

    def outcome(self, key, data=None):
        self.cases += 1
        if key not in self.hist:
            self.hist[key] = 0
            if data is not None:
                self.new.append((key, bytes(data).hex()))
        self.hist[key] += 1

    def violation(self, case, what, data=b""):
        if len(self.violations) < 20:
            self.violations.append({"case": case, "what": what, "input": bytes(data).hex()[:2000]})
        else:
            self.violations.append(None)

    def timed(self, ms):
        if ms > self.slowest_ms:
            self.slowest_ms = ms

    def summary(self):
        return {
            "surface": self.surface, "seed": self.seed, "cases": self.cases,
            "violations": len(self.violations), "examples": [v for v in self.violations if v][:20],
            "outcomes": self.hist, "slowest_case_ms": self.slowest_ms,
            "seconds": time.ticks_diff(time.ticks_ms(), self._t0) / 1000,
        }


def corpus(path):
    """Inputs of a corpus file (bytes), or [] if there is none."""
    out = []
    try:
        f = open(path)
    except OSError:
        return out
    with f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                out.append(bytes.fromhex(line))
    return out
