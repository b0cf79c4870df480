# carkey — constant-time comparison for secrets (tags, cryptograms, keys).
# SPDX-License-Identifier: MIT


def equal(a, b):
    # The loop always walks the whole of `a`, so the time taken reveals the length
    # (which is public) but never the position of the first differing byte.
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
