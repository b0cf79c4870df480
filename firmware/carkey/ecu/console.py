# carkey — owner admin requests on the USB console while the application runs (docs/PROTOCOL.md §9).
# SPDX-License-Identifier: MIT
#
# A line "#carkey TOKEN challenge" or "#carkey TOKEN submit HEX" on stdin gets one
# answer line "CARKEY-RESULT TOKEN {json}" (the json the raw-REPL path prints; TOKEN,
# 1-16 characters of the host's choosing, pairs an answer with its request), so the owner's tools
# read the log or change keys without stopping the application (and without the
# soft reset that restarts it). The requests are Python comments: a board sitting at
# its REPL ignores them, and the host then falls back to the raw REPL. Other input
# is ignored; a line longer than any request is dropped whole, and so is a line
# interrupted by a control byte.

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


def answer(dir, line, now, out, clock=None, audit=None, store=None):
    """Write the answer line to one console line (bytes, without its end) to the
    stream `out`; False for a line that is not a carkey request. The JSON goes out as
    it is made (json.dump), never as one string: a key list is ~12 KB of text, too
    much to hold at once beside a running car. clock, audit, store: the running car's own."""
    from carkey.ecu import admin

    line = bytes(line)
    if not line.startswith(_PREFIX):
        return False
    words = line[len(_PREFIX):].split()
    if not words or len(words[0]) > 16:
        return False
    try:
        token = words.pop(0).decode()
    except ValueError:  # UnicodeError: not a token a host makes, so not a request
        return False
    try:
        if words == [b"challenge"]:
            result = admin.challenge(dir)
        elif len(words) == 2 and words[0] == b"submit":
            try:
                doc = bytes.fromhex(words[1].decode())
            except ValueError:
                raise admin.AdminError("document is not hex")
            words = line = None  # the request's text is not needed while the answer is made
            result = admin.submit(dir, doc, now, clock, audit, store)
        else:
            raise admin.AdminError("unknown console request")
        reply = {"ok": True, "result": result}
    except Exception as e:  # every failure is an answer: the console task never dies of one
        reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
    out.write(MARK + token + " ")
    json.dump(reply, out)
    out.write("\r\n")
    return True


async def serve(stream, handle):
    """Read console lines from `stream` (polled through asyncio, one byte at a time so
    a board's blocking stdin never stalls the loop) and pass each to
    `await handle(line)`. Ends when the stream does."""
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
                await handle(line)
            line = bytearray()
            dropping = False
        elif b[0] < 0x20 and b != b"\t":
            # A control byte (the Ctrl-C / Ctrl-A of a tool looking for a REPL) is no
            # part of a request: drop the line so far, the next request starts clean.
            line = bytearray()
            dropping = False
        elif not dropping:
            line.extend(b)
            if len(line) > _MAX_LINE:
                line = bytearray()
                dropping = True
