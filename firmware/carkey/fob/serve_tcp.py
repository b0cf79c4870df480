# carkey — the fob's user device as a TCP server (docs/PROTOCOL.md §2): one transaction per connection.
# SPDX-License-Identifier: MIT
#
# Readers connect one after another (a second connection waits for the first);
# each connection gets a fresh selection on the same flash, so the Kpersistent a
# standard transaction leaves makes the next one fast. raw framing: one APDU per
# read; lp: a 2-byte big-endian length before every APDU. A reader the fob does
# not trust gets its connection closed (the device goes silent).

import asyncio
from micropython import const

from carkey.protocol.errors import DropLink

RAW = "raw"
LP = "lp"
_MAX_APDU = const(261)
_IDLE_MS = const(10000)  # a reader silent this long loses its connection


async def _read_exact(stream, n):
    buf = b""
    while len(buf) < n:
        part = await stream.read(n - len(buf))
        if not part:
            return None
        buf += part
    return buf


async def _receive(stream, framing):
    if framing == RAW:
        data = await stream.read(_MAX_APDU + 1)
        return data or None
    head = await _read_exact(stream, 2)
    if head is None:
        return None
    n = (head[0] << 8) | head[1]
    if not 0 < n <= _MAX_APDU:
        raise ValueError("bad frame length %d" % n)
    return await _read_exact(stream, n)


async def handle(device, reader, writer, framing):
    # Answers one reader until it hangs up; returns "closed", "dropped" or an error text.
    device.reset()
    try:
        while True:
            try:
                capdu = await asyncio.wait_for_ms(_receive(reader, framing), _IDLE_MS)
            except asyncio.TimeoutError:
                return "timeout"
            if capdu is None:
                return "closed"
            try:
                rapdu = await device.process(capdu)
            except DropLink:
                return "dropped"
            if framing == LP:
                writer.write(bytes((len(rapdu) >> 8, len(rapdu) & 0xFF)) + rapdu)
            else:
                writer.write(rapdu)
            await writer.drain()
    except (OSError, ValueError) as e:
        return "link error: %s" % e
    finally:
        device.reset()
        try:
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass


async def serve(device, host, port, framing, connections=None, on_connection=None, on_listening=None):
    # Serves readers until `connections` were handled (None: forever).
    # on_listening() once the socket listens; on_connection(n, how, txn) after each one.
    if framing != RAW and framing != LP:
        raise ValueError("framing is 'raw' or 'lp'")
    lock = asyncio.Lock()
    done = asyncio.Event()
    count = [0]

    async def one(reader, writer):
        async with lock:
            if done.is_set():
                writer.close()
                return
            how = await handle(device, reader, writer, framing)
            count[0] += 1
            if on_connection is not None:
                on_connection(count[0], how, device.txn)
            device.txn = None
            if connections is not None and count[0] >= connections:
                done.set()

    server = await asyncio.start_server(one, host, port)
    if on_listening is not None:
        on_listening()
    try:
        await done.wait()
    finally:
        server.close()
        await server.wait_closed()
