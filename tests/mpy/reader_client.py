# carkey — runs the firmware reader against a TCP user device and prints one JSON line per tap.
# SPDX-License-Identifier: MIT
#
# Usage: micropython tests/mpy/reader_client.py HOST PORT FRAMING < SPEC_JSON
#
# The spec comes on stdin: this Unix port aborts on a command-line argument
# longer than about 256 bytes. SPEC_JSON (hex for bytes):
#   {"identity": <ReaderIdentity.to_bytes()>,
#    "credentials": [{"pub": .., "kpersistent": ..|null}, ...],
#    "taps": [{"fast": null|true|false, "slot": false, "exchange": [<plaintext>, ...],
#              "granted": true}, ...], "timeout_ms": 3000}
# Like the ECU, it stores a new Kpersistent of a known credential after each tap
# and fills the precompute pool between taps (outside the timed region).
# Output per tap: {"kind", "known", "pub", "kpersistent", "replies", "ms"}
# or {"error": <exception class>, "sw", "status", "message", "ms"}.

import asyncio
import gc
import json
import sys
import time

from carkey.protocol.errors import ProtocolError
from carkey.hw.link_tcp import TcpLink
from carkey.protocol.reader import KEY_SLOT_MODE, PUBLIC_KEY_MODE, PrecomputePool, Reader, ReaderIdentity
from fakelink import Cred, FakeCredentials


def _hex(b):
    return None if b is None else bytes(b).hex()


def _unhex(s):
    return None if s is None else bytes.fromhex(s)


async def tap(reader, host, port, framing, creds, spec):
    link = await TcpLink.connect(host, port, framing)
    try:
        session = await reader.transact(link, creds, spec.get("fast"), KEY_SLOT_MODE if spec.get("slot") else PUBLIC_KEY_MODE)
        replies = []
        for text in spec.get("exchange", ()):
            replies.append(_hex(await session.exchange(_unhex(text))))
        await session.end(spec.get("granted", True))
        return session, replies
    finally:
        await link.close()


def main(argv):
    host, port, framing, spec = argv[1], int(argv[2]), argv[3], json.load(sys.stdin)
    identity = ReaderIdentity.from_bytes(_unhex(spec["identity"]))
    creds = FakeCredentials([Cred(_unhex(c["pub"]), _unhex(c.get("kpersistent"))) for c in spec["credentials"]])
    pool = PrecomputePool(ephemerals=1, nonces=1)
    reader = Reader(identity, pool, timeout_ms=spec.get("timeout_ms", 3000))
    del spec["identity"]
    for t in spec["taps"]:
        pool.fill_now()
        gc.collect()
        start = time.ticks_us()
        try:
            session, replies = asyncio.run(tap(reader, host, port, framing, creds, t))
        except Exception as e:
            ms = time.ticks_diff(time.ticks_us(), start) / 1000
            out = {"error": type(e).__name__, "message": str(e), "ms": ms}
            if isinstance(e, ProtocolError):
                out["sw"] = e.sw
                out["status"] = e.status
            print(json.dumps(out))
            continue
        ms = time.ticks_diff(time.ticks_us(), start) / 1000
        if session.known and session.kpersistent is not None:
            session.credential.kpersistent = session.kpersistent
        print(json.dumps({
            "kind": session.kind, "known": session.known, "pub": _hex(session.credential_pub),
            "kpersistent": _hex(session.kpersistent), "replies": replies, "ms": ms,
        }))


main(sys.argv)
