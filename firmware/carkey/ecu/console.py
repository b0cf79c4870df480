# carkey — owner admin requests on the USB console while the application runs (docs/PROTOCOL.md §9).
# SPDX-License-Identifier: MIT
#
# A line "#carkey TOKEN challenge" or "#carkey TOKEN submit HEX" on stdin gets one
# answer line "CARKEY-RESULT TOKEN {json}" (the json the raw-REPL path prints; TOKEN,
# 1-16 characters of the host's choosing, pairs an answer with its request), so the owner's tools
# read the log or change keys without stopping the application (and without the
# soft reset that restarts it). The requests are Python comments: a board sitting at
# its REPL ignores them, and the host then falls back to the raw REPL. Other input
# is ignored; a line longer than any request is dropped whole.

import json
from micropython import const

_PREFIX = b"#carkey "
MARK = "CARKEY-RESULT "
_MAX_LINE = const(1200)  # "#carkey submit " and the hex of the largest document


def changes_keys(line):
    """Whether the console line submits a share or revocation document (the running
    car then reloads its key store)."""
    words = bytes(line).split()
    if len(words) != 4 or words[2] != b"submit":
        return False
    try:
        return int(words[3][:2], 16) in (0xE2, 0xE3)
    except ValueError:
        return False


def answer(dir, line, now, clock=None, audit=None):
    """The answer (str) to one console line (bytes, without its end), or None for
    a line that is not a carkey request. clock, audit: the running car's own."""
    from carkey.ecu import admin

    line = bytes(line)
    if not line.startswith(_PREFIX):
        return None
    words = line[len(_PREFIX):].split()
    if not words or len(words[0]) > 16:
        return None
    token = words.pop(0).decode()
    try:
        if words == [b"challenge"]:
            result = admin.challenge(dir)
        elif len(words) == 2 and words[0] == b"submit":
            try:
                doc = bytes.fromhex(words[1].decode())
            except ValueError:
                raise admin.AdminError("document is not hex")
            result = admin.submit(dir, doc, now, clock, audit)
        else:
            raise admin.AdminError("unknown console request")
        out = {"ok": True, "result": result}
    except Exception as e:  # every failure is an answer: the console task never dies of one
        out = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    return MARK + token + " " + json.dumps(out)


async def serve(stream, write, handle):
    """Read console lines from `stream` (polled through asyncio, one byte at a time so
    a board's blocking stdin never stalls the loop) and pass each to
    `await handle(line)`; write() each answer it returns. Ends when the stream does."""
    import asyncio

    reader = asyncio.StreamReader(stream)
    line = bytearray()
    dropping = False
    while True:
        b = await reader.read(1)
        if not b:
            return
        if b == b"\n" or b == b"\r":
            if line and not dropping:
                reply = await handle(line)
                if reply is not None:
                    write(reply + "\r\n")
            line = bytearray()
            dropping = False
        elif not dropping:
            line.extend(b)
            if len(line) > _MAX_LINE:
                line = bytearray()
                dropping = True
