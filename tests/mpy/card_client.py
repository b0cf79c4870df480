# carkey — runs the firmware's card authentication against a card served over TCP; one JSON line per tap.
# SPDX-License-Identifier: MIT
#
# Usage: micropython tests/mpy/card_client.py HOST PORT < SPEC_JSON
# SPEC_JSON (hex for bytes): {"master_key": .., "uids": [anticollision UID per tap], "timeout_ms": 1000}
# Output per tap: {"uid": .., "ms": .., "allocated": .., "link_allocated": ..}: what the card
# code allocated, and apart from it what the TCP stand-in for the radio did (a board's
# PN532 link is measured by the benchmark's NFC rows);
# or {"error": <exception class>, "message": .., "sw": .., "ms": ..}.

import asyncio
import gc
import json
import sys
import time

from carkey.hw.link_tcp import TcpLink
from carkey.protocol.ntag424 import authenticate_card


class _CountedLink:
    # Adds up what the TCP link allocates in each exchange, so it can be told apart.
    def __init__(self, link):
        self.link = link
        self.allocated = 0

    async def transceive(self, capdu, timeout_ms):
        before = gc.mem_alloc()
        try:
            return await self.link.transceive(capdu, timeout_ms)
        finally:
            self.allocated += gc.mem_alloc() - before


async def tap(host, port, master_key, uid, timeout_ms, counted):
    before = gc.mem_alloc()
    link = await TcpLink.connect(host, port)
    counted.link = link
    counted.allocated += gc.mem_alloc() - before
    try:
        return await authenticate_card(counted, master_key, uid, timeout_ms)
    finally:
        before = gc.mem_alloc()
        await link.close()
        counted.allocated += gc.mem_alloc() - before


def main(argv):
    host, port, spec = argv[1], int(argv[2]), json.load(sys.stdin)
    master_key = bytes.fromhex(spec["master_key"])
    timeout_ms = spec.get("timeout_ms", 1000)
    for uid in spec["uids"]:
        uid = bytes.fromhex(uid)
        gc.collect()
        # No collection during the tap, so the difference is everything it allocated
        # (a collection in the middle would hide the garbage made before it).
        gc.disable()
        base = gc.mem_alloc()
        start = time.ticks_us()
        counted = _CountedLink(None)
        try:
            got = asyncio.run(tap(host, port, master_key, uid, timeout_ms, counted))
            out = {"uid": got.hex(), "allocated": gc.mem_alloc() - base - counted.allocated,
                   "link_allocated": counted.allocated}
        except Exception as e:  # reported to the host test, which asserts on it
            out = {"error": type(e).__name__, "message": str(e), "sw": getattr(e, "sw", None)}
        finally:
            gc.enable()
        out["ms"] = time.ticks_diff(time.ticks_us(), start) / 1000
        print(json.dumps(out))


main(sys.argv)
