# carkey — a link with a whole-transaction deadline: no command waits past it.
# SPDX-License-Identifier: MIT
#
# A per-command timeout alone lets a device answer every command just under it and
# hold the reader (and, since taps are serialised, every other radio) for nine
# commands in a row. Deadline wraps any link: each transceive gets the smaller of
# its own timeout and what is left of the transaction, and none starts once the
# deadline has passed (LinkTimeout).

import time

from carkey.protocol.errors import LinkTimeout


class Deadline:
    def __init__(self, link, ms):
        self._link = link
        self._start = time.ticks_ms()
        self._ms = ms

    def extend(self, ms):
        """Allow the transaction ms from its start (never shortens it)."""
        if ms > self._ms:
            self._ms = ms

    def left_ms(self):
        return self._ms - time.ticks_diff(time.ticks_ms(), self._start)

    async def transceive(self, capdu, timeout_ms):
        left = self.left_ms()
        if left <= 0:
            raise LinkTimeout("transaction deadline passed")
        return await self._link.transceive(capdu, min(timeout_ms, left))
