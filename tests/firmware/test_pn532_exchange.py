# carkey — PN532 driver: InDataExchange chaining both ways, status bytes, target lists.
# SPDX-License-Identifier: MIT
#
# The real driver talks to tests/mpy/fake_pn532_bus.py, which checks every frame's
# LEN/LCS/DCS and answers as the chip does; expected frames are written out in hex.
#   .venv/bin/pytest -q tests/firmware/test_pn532_exchange.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_pn532_exchange.pyimport asyncio


import unittest

from fake_pn532_bus import SELECT, run, uart_rig

from carkey.hw.pn532 import Pn532Error

MPY_HEAPSIZE = "64k"

H = bytes.fromhex
LIST = H("0000ff04fcd44a0100e100")
RELEASE_FRAME = H("0000ff03fdd45201d900")


class TestChaining(unittest.TestCase):
    def test_command_over_262_bytes_leaves_in_mi_parts(self):
        seen = []
        chip, pn = uart_rig(lambda c: seen.append(c) or H("9000"))
        data = bytes(i & 0xFF for i in range(300))
        run(pn.exchange(1, data, bytearray(8)))
        self.assertEqual([c for c, _ in chip.commands], [0x40, 0x40])
        self.assertEqual(chip.commands[0][1][0], 0x41)  # Tg 1 | MI
        self.assertEqual(len(chip.commands[0][1]), 1 + 262)
        self.assertEqual(chip.commands[1][1], b"\x01" + data[262:])
        self.assertEqual(seen, [data])

    def test_answer_with_mi_is_fetched_on(self):
        rapdu = bytes(i & 0xFF for i in range(400)) + H("9000")
        chip, pn = uart_rig(lambda c: rapdu)
        out = bytearray(512)
        n = run(pn.exchange(1, SELECT, out))
        self.assertEqual(bytes(out[:n]), rapdu)
        self.assertEqual(chip.commands[1], (0x40, b"\x01"))


class TestTargets(unittest.TestCase):
    def test_list_target_parses_atqa_sak_uid_ats(self):
        chip, pn = uart_rig()
        t = run(pn.list_target())
        self.assertEqual(chip.frames, [LIST])
        self.assertEqual((t.tg, t.atqa, t.sak, t.uid, t.ats), (1, H("0004"), 0x20, H("08112233"), H("0578807002")))
        self.assertTrue(t.iso_dep)

    def test_empty_field(self):
        chip, pn = uart_rig()
        chip.targets = []
        self.assertIsNone(run(pn.list_target()))

    def test_bad_uid_length_refused(self):
        chip, pn = uart_rig()
        chip.targets = [H("010100042005081122330578807002")]
        with self.assertRaises(Pn532Error) as cm:
            run(pn.list_target())
        self.assertEqual(str(cm.exception), "bad UID length")

    def test_bad_ats_length_refused(self):
        chip, pn = uart_rig()
        chip.targets = [H("0101000420040811223306788070")]
        with self.assertRaises(Pn532Error):
            run(pn.list_target())

    def test_release_frame(self):
        chip, pn = uart_rig()
        run(pn.release(1))
        self.assertEqual(chip.frames, [RELEASE_FRAME])


if __name__ == "__main__":
    unittest.main()
