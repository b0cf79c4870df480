# carkey — NFC link for the reader core (ISO-DEP through a PN532) and the poll loop that finds taps.
# SPDX-License-Identifier: MIT
#
# NfcLink(pn532, target).transceive(capdu, timeout_ms) is the link Reader.transact
# expects: PN532 errors become LinkError, a chip that stops answering LinkTimeout.
# Once a link has failed it stays failed, so no later command of the same
# transaction can pair with a stale answer.
#
# poll() is the reader's idle loop: optional ECP frame, one InListPassiveTarget,
# and for an ISO-DEP target `await on_target(link, target)`, then InRelease. A
# target that stays on the antenna is not read again until a poll finds the
# field empty (one tap, one transaction). Errors back off and resynchronise the
# chip; nothing here blocks the event loop.

import asyncio
from micropython import const

from carkey.hw.pn532 import Pn532Error, Pn532Timeout, TargetLost
from carkey.protocol.errors import LinkError, LinkTimeout, TransactionError

_MAX_ANSWER = const(512)  # a short R-APDU is at most 258 bytes; longer ones come as 61xx parts
_MAX_COMMAND = const(261)  # header 4 + Lc + 255 data + Le


class NfcLink:
    def __init__(self, pn532, target, buf=None):
        self._pn532 = pn532
        self._tg = target.tg
        self.target = target
        self._buf = buf if buf is not None else bytearray(_MAX_ANSWER)
        self._mv = memoryview(self._buf)
        self.failed = None
        self.commands = 0

    async def transceive(self, capdu, timeout_ms):
        if self.failed is not None:
            raise LinkError("link closed: %s" % self.failed)
        n = len(capdu)
        if not 0 < n <= _MAX_COMMAND:
            raise ValueError("C-APDU length out of range")
        self.commands += 1
        try:
            n = await self._pn532.exchange(self._tg, capdu, self._buf, timeout_ms)
        except Pn532Timeout as e:
            self.failed = "timeout"
            raise LinkTimeout(str(e)) from None
        except TargetLost as e:
            self.failed = "target lost"
            raise LinkError(str(e)) from None
        except Pn532Error as e:
            self.failed = "PN532 error"
            raise LinkError(str(e)) from None
        if n < 2:
            self.failed = "short answer"
            raise LinkError("R-APDU shorter than a status word")
        return bytes(self._mv[:n])


class PollStats:
    """What the poll loop did: for logs, the ECU's health view and tests."""

    def __init__(self):
        self.polls = 0
        self.taps = 0
        self.skipped = 0  # targets ignored: not ISO-DEP, or still on the antenna after a tap
        self.errors = 0  # chip or link errors (each followed by a resynchronisation)
        self.failed_taps = 0  # on_target ended with a TransactionError
        self.last_error = None


async def poll(pn532, on_target, ecp=None, idle_ms=100, max_backoff_ms=2000, timeout_ms=1000, stop=None,
               max_taps=None, stats=None):
    """Poll for targets until `stop` (an asyncio.Event) is set or `max_taps` taps were served.

    on_target(link, target) runs the transaction (the ECU calls Reader.transact);
    a TransactionError it raises counts as a failed tap and polling goes on.
    Returns the PollStats.
    """
    st = stats if stats is not None else PollStats()
    backoff = idle_ms
    armed = True  # False after a tap until the field is seen empty
    started = False
    ever_started = False
    buf = bytearray(_MAX_ANSWER)
    while stop is None or not stop.is_set():
        if max_taps is not None and st.taps >= max_taps:
            break
        try:
            if not started:
                if ever_started:
                    await pn532.recover()
                else:
                    await pn532.begin()
                started = ever_started = True
            if ecp is not None:
                await pn532.send_ecp(ecp)
            st.polls += 1
            target = await pn532.list_target(timeout_ms)
            if target is None:
                armed = True
                backoff = idle_ms
                await asyncio.sleep_ms(idle_ms)
                continue
            if not armed or not target.iso_dep:
                st.skipped += 1
                await pn532.release(target.tg)
                await asyncio.sleep_ms(idle_ms)
                continue
            armed = False
            st.taps += 1
            link = NfcLink(pn532, target, buf)
            try:
                await on_target(link, target)
            except TransactionError as e:
                st.failed_taps += 1
                st.last_error = e
            if link.failed is None:
                await pn532.release(target.tg)
            else:
                # The chip may still be busy with the lost target: start clean.
                started = False
            backoff = idle_ms
        except Pn532Error as e:
            st.errors += 1
            st.last_error = e
            started = False  # begin() again: wake, SAMConfiguration, RF settings
            await asyncio.sleep_ms(backoff)
            backoff = min(backoff * 2, max_backoff_ms)
    return st
