# carkey — NFC link over a fake PN532: answers as fresh bytes, errors as LinkError/LinkTimeout.
# SPDX-License-Identifier: MIT
#
# The real driver talks to tests/mpy/fake_pn532_bus.py, which checks every frame's
# LEN/LCS/DCS and answers as the chip does; expected frames are written out in hex.
#   .venv/bin/pytest -q tests/firmware/test_nfc_link.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_nfc_link.py


import unittest

from fake_pn532_bus import SELECT, run, uart_rig

from carkey.hw.nfc_link import NfcLink
from carkey.protocol.errors import LinkError, LinkTimeout

MPY_HEAPSIZE = "64k"

H = bytes.fromhex


class TestLink(unittest.TestCase):
    def _link(self, target):
        chip, pn = uart_rig(target)
        t = run(pn.list_target())
        return chip, pn, NfcLink(pn, t)

    def test_transceive_returns_fresh_bytes(self):
        chip, pn, link = self._link(lambda c: H("6f1a9000"))
        r = run(link.transceive(SELECT, 500))
        self.assertEqual(r, H("6f1a9000"))
        self.assertIsInstance(r, bytes)

    def test_target_lost_is_a_link_error_and_the_link_stays_closed(self):
        chip, pn, link = self._link(lambda c: 0x01)
        with self.assertRaises(LinkError) as cm:
            run(link.transceive(SELECT, 500))
        self.assertFalse(isinstance(cm.exception, LinkTimeout))
        chip.target = lambda c: H("9000")
        with self.assertRaises(LinkError):
            run(link.transceive(SELECT, 500))
        self.assertEqual(len([c for c, _ in chip.commands if c == 0x40]), 1)

    def test_chip_timeout_is_a_link_timeout(self):
        chip, pn, link = self._link(lambda c: H("9000"))
        chip.late = True
        with self.assertRaises(LinkTimeout):
            run(link.transceive(SELECT, 30))

    def test_answer_without_status_word_refused(self):
        chip, pn, link = self._link(lambda c: b"\x90")
        with self.assertRaises(LinkError):
            run(link.transceive(SELECT, 500))

    def test_bad_command_length_refused(self):
        chip, pn, link = self._link(lambda c: H("9000"))
        with self.assertRaises(ValueError):
            run(link.transceive(b"", 500))
        with self.assertRaises(ValueError):
            run(link.transceive(bytes(262), 500))
        self.assertEqual(chip.commands[1:], [])


if __name__ == "__main__":
    unittest.main()
