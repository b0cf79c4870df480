# carkey — the bounded logs the test fakes keep: the newest entries only, and a count of all.
# SPDX-License-Identifier: MIT
#
# A fake records what the code under test did so a test can assert on it. Left running
# (a poll loop, a soak) an unbounded record would grow until it filled the very heap the
# test measures, so every fake's log keeps at most LIMIT entries, dropping the oldest.

LIMIT = 32  # entries per log: more than any test asserts on, little enough for a 64 KiB heap


def keep(log, entry, limit=LIMIT):
    """Append `entry` to the list `log`, dropping the oldest entry past `limit`."""
    log.append(entry)
    if len(log) > limit:
        log.pop(0)


def keep_first(buf, data, limit=LIMIT * 32):
    """Extend the bytearray `buf` with `data` until it holds `limit` bytes, then stop.

    In place: no copy of the whole record per write, which would churn a small heap."""
    room = limit - len(buf)
    if room > 0:
        buf.extend(data[:room])
