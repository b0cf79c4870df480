# carkey — runs the firmware's card authentication against a card served over TCP; one JSON line per tap.
# SPDX-License-Identifier: MIT
#
# Usage: micropython tests/mpy/card_client.py HOST PORT < SPEC_JSON
# SPEC_JSON (hex for bytes): {"master_key": .., "uids": [anticollision UID per tap], "timeout_ms": 1000}
# Output per tap: {"uid": .., "ms": .., "allocated": ..}
# or {"error": <exception class>, "message": .., "sw": .., "ms": ..}.

import asyncio
import gc
import json
import sys
import time

from carkey.hw.link_tcp import TcpLink
from carkey.protocol.ntag424 import authenticate_card


async def tap(host, port, master_key, uid, timeout_ms):
    link = await TcpLink.connect(host, port)
    try:
        return await authenticate_card(link, master_key, uid, timeout_ms)
    finally:
        await link.close()


def main(argv):
    host, port, spec = argv[1], int(argv[2]), json.load(sys.stdin)
    master_key = bytes.fromhex(spec["master_key"])
    timeout_ms = spec.get("timeout_ms", 1000)
    for uid in spec["uids"]:
        uid = bytes.fromhex(uid)
        gc.collect()
        base = gc.mem_alloc()
        start = time.ticks_us()
        try:
            got = asyncio.run(tap(host, port, master_key, uid, timeout_ms))
            out = {"uid": got.hex(), "allocated": gc.mem_alloc() - base}
        except Exception as e:  # reported to the host test, which asserts on it
            out = {"error": type(e).__name__, "message": str(e), "sw": getattr(e, "sw", None)}
        out["ms"] = time.ticks_diff(time.ticks_us(), start) / 1000
        print(json.dumps(out))


main(sys.argv)
