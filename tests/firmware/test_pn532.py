# carkey — PN532 driver over a fake HSU UART: exact frames, ECP bytes, checksums, NACK, timeouts, recovery.
# SPDX-License-Identifier: MIT
#
# The real driver talks to tests/mpy/fake_pn532_bus.py, which checks every frame's
# LEN/LCS/DCS and answers as the chip does; expected frames are written out in hex.
#   .venv/bin/pytest -q tests/firmware/test_pn532.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_pn532.py


import unittest

from fake_pn532_bus import SELECT, run, uart_rig

from carkey.hw.pn532 import ecp_access_frame

MPY_HEAPSIZE = "64k"

H = bytes.fromhex
SAM = H("0000ff05fbd41401140102 00".replace(" ", ""))
GET_FW = H("0000ff02fed4022a00")
RF_RETRIES = H("0000ff06fad4320 5ff0101f400".replace(" ", ""))
RF_TIMINGS = H("0000ff06fad43202000b07e600")
SELECT_FRAME = H("0000ff12eed4400100a4040009a000000909acce550100b800")
ECP = H("6a02cb0206000000" + "0102030405060708")
ECP_FRAME = H("0000ff12eed4426a02cb020600000001020304050607088700")
WAKE = b"\x55\x55" + bytes(14)
CRC_ON_FRAME = H("0000ff08f8d4086302806303805900")


class TestFrames(unittest.TestCase):
    def test_begin_over_uart_sends_wake_then_exact_frames(self):
        chip, pn = uart_rig()
        self.assertEqual(run(pn.begin()), (0x32, 1, 6, 7))
        self.assertEqual(chip.raw[0], WAKE)
        self.assertEqual(chip.frames, [SAM, GET_FW, RF_RETRIES, RF_TIMINGS])

    def test_select_apdu_frame_and_answer(self):
        chip, pn = uart_rig(lambda c: H("6f1a9000") if c == SELECT else H("6d00"))
        out = bytearray(64)
        n = run(pn.exchange(1, SELECT, out))
        self.assertEqual(chip.frames, [SELECT_FRAME])
        self.assertEqual(bytes(out[:n]), H("6f1a9000"))

    def test_long_command_goes_in_an_extended_frame(self):
        apdu = H("80c90000") + b"\xff" + bytes(range(255)) + b"\x00"  # 261 bytes
        chip, pn = uart_rig(lambda c: H("9000"))
        run(pn.exchange(1, apdu, bytearray(8)))
        f = chip.frames[0]
        self.assertEqual(f[:8], H("0000ffffff0108f7"))  # LEN 0x108 = D4 40 Tg + 261
        self.assertEqual(f[8:11], H("d44001"))
        self.assertEqual(f[11:-2], apdu)
        self.assertEqual(len(f), 8 + 264 + 2)

    def test_extended_answer_is_read(self):
        rapdu = bytes(range(256)) + H("9000")
        chip, pn = uart_rig(lambda c: rapdu)
        out = bytearray(300)
        self.assertEqual(bytes(out[: run(pn.exchange(1, SELECT, out))]), rapdu)

    def test_answer_bytes_arriving_one_by_one(self):
        chip, pn = uart_rig(lambda c: H("6f1a9000"), piece=1)
        out = bytearray(8)
        self.assertEqual(bytes(out[: run(pn.exchange(1, SELECT, out))]), H("6f1a9000"))

    def test_garbage_before_a_frame_is_skipped(self):
        chip, pn = uart_rig()
        chip.out.append(b"\x13\x37\xff")  # line noise before the ACK
        self.assertEqual(bytes(run(pn.call(0x02))), H("32010607"))

    def test_ecp_frame_bytes(self):
        self.assertEqual(ecp_access_frame(H("000000"), H("0102030405060708")), ECP)
        with self.assertRaises(ValueError):
            ecp_access_frame(H("0000"), H("0102030405060708"))

    def test_ecp_is_sent_with_crc_through_incommunicatethru(self):
        chip, pn = uart_rig()
        run(pn.send_ecp(ECP))
        self.assertEqual(chip.frames, [CRC_ON_FRAME, ECP_FRAME])


if __name__ == "__main__":
    unittest.main()
