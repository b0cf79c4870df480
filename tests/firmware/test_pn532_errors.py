# carkey — PN532 driver errors over a fake HSU UART: checksums and NACK, error frames, timeouts, recovery.
# SPDX-License-Identifier: MIT
#
# The real driver talks to tests/mpy/fake_pn532_bus.py, which checks every frame's
# LEN/LCS/DCS and answers as the chip does; expected frames are written out in hex.
#   .venv/bin/pytest -q tests/firmware/test_pn532_errors.py
#   MICROPYPATH=firmware:tests/mpy:tests/firmware:boards .venv/bin/micropython tests/firmware/test_pn532_errors.py


import unittest

from fake_pn532_bus import ACK, SELECT, answer_frame, run, uart_rig

from carkey.hw.pn532 import FrameError, Pn532Error, Pn532Timeout, TargetLost

MPY_HEAPSIZE = "64k"

H = bytes.fromhex


class TestErrors(unittest.TestCase):
    def test_bad_data_checksum_is_nacked_and_resent(self):
        chip, pn = uart_rig()
        chip.corrupt = 1
        self.assertEqual(bytes(run(pn.call(0x02))), H("32010607"))
        self.assertEqual(chip.nacks, 1)

    def test_persistent_corruption_gives_up_after_two_nacks(self):
        chip, pn = uart_rig()
        chip.corrupt = 5
        with self.assertRaises(FrameError):
            run(pn.call(0x02))
        self.assertEqual(chip.nacks, 2)

    def test_lost_ack_answer_still_accepted(self):
        chip, pn = uart_rig()
        chip.drop_ack = True
        self.assertEqual(bytes(run(pn.call(0x02))), H("32010607"))

    def test_syntax_error_frame(self):
        chip, pn = uart_rig()
        chip.answers[0x02] = None
        with self.assertRaises(Pn532Error) as cm:
            run(pn.call(0x02))
        self.assertEqual(str(cm.exception), "PN532 reported a syntax error")

    def test_answer_to_another_command_is_refused(self):
        chip, pn = uart_rig()
        chip.silent = True
        chip.out.append(ACK)
        chip.out.append(answer_frame(0x14, b""))
        with self.assertRaises(Pn532Error) as cm:
            run(pn.call(0x02))
        self.assertEqual(str(cm.exception), "answer to another command")

    def test_silent_chip_times_out_on_the_ack_and_aborts(self):
        chip, pn = uart_rig()
        chip.silent = True
        with self.assertRaises(Pn532Timeout) as cm:
            run(pn.call(0x02))
        self.assertEqual(str(cm.exception), "no ACK for command 02")
        self.assertEqual(chip.raw[-1], ACK)

    def test_late_answer_times_out_and_is_cancelled(self):
        chip, pn = uart_rig()
        chip.late = True
        with self.assertRaises(Pn532Timeout) as cm:
            run(pn.call(0x02, timeout_ms=30))
        self.assertEqual(str(cm.exception), "no answer to command 02 within 30 ms")
        self.assertEqual(chip.aborts, 1)
        chip.poke()  # the chip was told to abort: nothing comes
        self.assertEqual(chip.out, [])

    def test_hung_chip_recovers_with_wake_up_and_setup(self):
        chip, pn = uart_rig()
        run(pn.begin())
        chip.silent = True
        with self.assertRaises(Pn532Timeout):
            run(pn.list_target())
        self.assertEqual(run(pn.recover()), (0x32, 1, 6, 7))
        self.assertEqual(pn.recoveries, 1)
        self.assertEqual(chip.wakes, 2)

    def test_status_timeout_means_target_lost(self):
        chip, pn = uart_rig(lambda c: 0x01)
        with self.assertRaises(TargetLost) as cm:
            run(pn.exchange(1, SELECT, bytearray(8)))
        self.assertEqual(cm.exception.status, 0x01)

    def test_other_status_is_a_pn532_error(self):
        chip, pn = uart_rig(lambda c: 0x13)
        with self.assertRaises(Pn532Error) as cm:
            run(pn.exchange(1, SELECT, bytearray(8)))
        self.assertFalse(isinstance(cm.exception, TargetLost))
        self.assertEqual(cm.exception.status, 0x13)

    def test_answer_larger_than_buffer_refused(self):
        chip, pn = uart_rig(lambda c: bytes(40))
        with self.assertRaises(Pn532Error):
            run(pn.exchange(1, SELECT, bytearray(16)))


if __name__ == "__main__":
    unittest.main()
