# carkey — the NFC poll loop over a fake PN532: one tap per presentation, ECP each poll, recovery, stop.
# SPDX-License-Identifier: MIT
#
# The real driver talks to tests/mpy/fake_pn532_bus.py, which checks every frame's
# LEN/LCS/DCS and answers as the chip does; expected frames are written out in hex.
#   .venv/bin/pytest -q tests/firmware/test_nfc_poll.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_nfc_poll.py

import asyncio

import unittest

from fake_pn532_bus import SELECT, run, uart_rig

from carkey.hw.nfc_link import poll
from carkey.protocol.errors import ProtocolError

MPY_HEAPSIZE = "64k"

H = bytes.fromhex
ECP = H("6a02cb0206000000" + "0102030405060708")


class TestPoll(unittest.TestCase):
    def test_one_tap_per_presentation_and_errors_recover(self):
        # Field: target, target (still there: skipped), empty, target again; the chip hangs
        # during InRelease; after recovery: empty, target.
        tgt = H("01010004200408112233 0578807002".replace(" ", ""))
        chip, pn = uart_rig(lambda c: H("9000"))
        chip.targets = [tgt, tgt, b"\x00", tgt]
        chip.log = False
        taps = []

        async def on_target(link, target):
            taps.append(await link.transceive(SELECT, 200))
            if len(taps) == 2:
                chip.silent = True  # the chip hangs after the second tap
                chip.targets = [b"\x00", tgt]  # the phone leaves, then comes back
            if len(taps) == 3:
                raise ProtocolError("device refused", sw=0x6985)

        st = run(poll(pn, on_target, ecp=ECP, idle_ms=1, max_taps=3))
        self.assertEqual(taps, [H("9000")] * 3)
        self.assertEqual((st.taps, st.skipped, st.failed_taps), (3, 1, 1))
        self.assertEqual(st.errors, 1)
        self.assertEqual(pn.recoveries, 1)
        self.assertEqual(chip.counts[0x42], st.polls)
        self.assertEqual([p for c, p in chip.commands if c == 0x42 and p != ECP], [])

    def test_stop_event_ends_polling(self):
        chip, pn = uart_rig()
        chip.targets = []
        stop = asyncio.Event()

        async def main():
            async def later():
                await asyncio.sleep_ms(20)
                stop.set()

            asyncio.create_task(later())
            return await poll(pn, None, idle_ms=2, stop=stop)

        st = run(main())
        self.assertEqual(st.taps, 0)
        self.assertGreater(st.polls, 1)


if __name__ == "__main__":
    unittest.main()
