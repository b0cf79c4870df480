# carkey — the fob's side of carkey's envelope inside EXCHANGE: request one command, read the result.
# SPDX-License-Identifier: MIT
#
# docs/PROTOCOL.md §4 from the device's end. The reader speaks first with its
# hello E1 [C0 01 01][C1 03 state]; the fob answers E1 [C2 command] (and the
# battery voltage, C7, when it knows it); the reader answers 97 02 01 RR and
# E1 [C6 ...]* [C4 05 command result state]; the fob answers with nothing more.
# A fob given a share document instead of being enrolled presents it (C3) first;
# the reader's C6 verdict on it tells the fob to stop presenting it.
# A reader that knows nothing of carkey sends no hello: the fob then asks for
# nothing and the transaction is whatever the reader's default is.

from micropython import const

# carkey.protocol.tlv is loaded at the first EXCHANGE, not with the application:
# the fob starts its radio first (the user device loads it meanwhile anyway).

# Envelope tags (docs/PROTOCOL.md §4): the device side of what carkey.ecu.envelope reads.
_ENVELOPE = const(0xE1)
_HELLO = const(0xC0)
_CAR_STATE = const(0xC1)
_REQUEST = const(0xC2)
_SHARE = const(0xC3)
_RESULT = const(0xC4)
_DOCUMENT_RESULT = const(0xC6)
_BATTERY = const(0xC7)  # [millivolts, 2 bytes big-endian]

# The commands a fob sends (docs/PROTOCOL.md §4.1, carkey.ecu.codes on the car's
# side: a test holds the two equal). Spelled out here so a fob does not load the
# car's table of codes for three numbers.
COMMANDS = {"lock": 0x01, "unlock": 0x02, "trunk": 0x04}

NO_RESULT = const(-1)


class Request:
    """One press's conversation with a car: what it asked for and what the car answered.

    The fob starts a visit before it knows the gesture: a Request made with no
    command answers the car's hello only once set_command() says what to ask for
    (or cancel() that nothing is: the fob then hangs up)."""

    def __init__(self, command=None, argument=b"", battery_mv=None, share=None):
        # share: an owner-signed share document to present (E2 ...), or None.
        self.command = command
        self.argument = bytes(argument)
        self.battery_mv = battery_mv
        self.share = share
        self.cancelled = False
        self._known = None  # an asyncio.Event, made only if the car's hello comes first
        self.reset()

    def set_command(self, command):
        self.command = command
        if self._known is not None:
            self._known.set()

    def cancel(self):
        self.cancelled = True
        if self._known is not None:
            self._known.set()

    def reset(self):
        self.hello = False
        self.car_state = None
        self.result = NO_RESULT  # the car's result code for our command
        self.share_result = NO_RESULT  # the car's verdict on our share document
        self.sent = False

    def on_exchange(self, plain):
        # The decrypted EXCHANGE TLVs in; the TLVs to send back (before the status) out.
        from carkey.protocol import tlv

        mv = memoryview(plain)
        for tag, start, end in tlv.iterate(mv):
            if tag != _ENVELOPE:
                continue
            for inner, s, e in tlv.iterate(mv[start:end]):
                value = mv[start + s : start + e]
                if inner == _HELLO:
                    self.hello = True
                elif inner == _CAR_STATE and len(value) == 3:
                    self.car_state = bytes(value)
                elif inner == _DOCUMENT_RESULT and len(value) == 2 and value[0] == 0xE2:
                    self.share_result = value[1]
                elif inner == _RESULT and len(value) == 5:
                    if value[0] == self.command:
                        self.result = value[1]
                        self.car_state = bytes(value[2:5])
        if self.hello and not self.sent:
            self.sent = True
            if self.command is None:
                return self._later()  # the device awaits it: the gesture is still being told apart
            return self._request()
        return b""

    async def _later(self):
        import asyncio

        if self.command is None and not self.cancelled:
            self._known = asyncio.Event()
            await self._known.wait()
        if self.cancelled:
            from carkey.protocol.errors import DropLink

            raise DropLink("no gesture: nothing to ask for")
        return self._request()

    def _request(self):
        from carkey.protocol import tlv

        n = 1 + len(self.argument)
        share = self.share
        size = 2 + n + (4 if self.battery_mv is not None else 0)
        if share is not None:
            size += tlv.header_size(_SHARE, len(share)) + len(share)
        inner = bytearray(size)
        pos = 0
        if share is not None:
            pos = tlv.write(inner, pos, _SHARE, share)
        if self.battery_mv is not None:
            mv = max(0, min(0xFFFF, int(self.battery_mv)))
            pos = tlv.write(inner, pos, _BATTERY, bytes((mv >> 8, mv & 0xFF)))
        tlv.write(inner, pos, _REQUEST, bytes((self.command,)) + self.argument)
        return tlv.encode(_ENVELOPE, inner)
