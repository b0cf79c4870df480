# carkey — the expedited-phase secure channel: IV layout, counters, and replay/reorder/tamper refused.
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_channel.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_channel.py

import unittest

from carkey.crypto import aes
from carkey.protocol.channel import DEVICE, READER, Channel, ChannelError, ChannelExhausted

MPY_HEAPSIZE = "64k"

h = bytes.fromhex
SK_READER = bytes(range(32))
SK_DEVICE = bytes(range(32, 64))

# Fast transaction of tests/vectors/aliro-expedited-kat.json: EXCHANGE command
# and answer, both at counter 1.
KAT_SK_READER = h("f2938d3325eb72991efcd79cd5b6bcc729198ae592fb4742464d43ce32e9a4ef")
KAT_SK_DEVICE = h("14a03a4339d992b1f0afd4fe2cf2fca2325104e6d20e6c8bd169fd4efc8e960a")
KAT_COMMAND = h("f1f468b29c5fa564f8d1d37f47b1639d0395664a")
KAT_ANSWER = h("2e7c2687a1de5d6e17a2f20c07ac22f86b553bc1")


def pair():
    return Channel(SK_READER, SK_DEVICE, READER), Channel(SK_READER, SK_DEVICE, DEVICE)


class TestLayout(unittest.TestCase):
    def test_kat_exchange(self):
        reader = Channel(KAT_SK_READER, KAT_SK_DEVICE, READER)
        self.assertEqual(reader.seal(h("97020101")), KAT_COMMAND)
        self.assertEqual(reader.open(KAT_ANSWER), h("00020000"))

    def test_reader_iv_is_zero_prefix_and_counter(self):
        reader, _ = pair()
        reader.seal(b"a")
        msg = reader.seal(b"second")
        self.assertEqual(msg, aes.gcm_encrypt(SK_READER, h("000000000000000000000002"), b"second"))

    def test_device_iv_has_01_prefix(self):
        _, device = pair()
        msg = device.seal(b"x")
        self.assertEqual(msg, aes.gcm_encrypt(SK_DEVICE, h("000000000000000100000001"), b"x"))

    def test_counters_start_at_one_and_count_per_direction(self):
        reader, device = pair()
        self.assertEqual((reader.send_counter, reader.receive_counter), (1, 1))
        device.open(reader.seal(b"1"))
        device.open(reader.seal(b"2"))
        reader.open(device.seal(b"3"))
        self.assertEqual((reader.send_counter, reader.receive_counter), (3, 2))
        self.assertEqual((device.send_counter, device.receive_counter), (2, 3))

    def test_start_counters_after_auth1(self):
        # After a standard AUTH1 the device already used counter 1 for its answer.
        reader = Channel(SK_READER, SK_DEVICE, READER, receive_counter=2)
        device = Channel(SK_READER, SK_DEVICE, DEVICE, send_counter=2)
        self.assertEqual(reader.open(device.seal(b"ok")), b"ok")

    def test_empty_message(self):
        reader, device = pair()
        sealed = reader.seal(b"")
        self.assertEqual(len(sealed), 16)
        self.assertEqual(device.open(sealed), b"")

    def test_unknown_role(self):
        with self.assertRaises(ValueError):
            Channel(SK_READER, SK_DEVICE, 7)


class TestRejection(unittest.TestCase):
    def test_replay_refused_and_channel_closes(self):
        reader, device = pair()
        m1 = reader.seal(b"one")
        self.assertEqual(device.open(m1), b"one")
        with self.assertRaises(ChannelError):
            device.open(m1)
        # Closed for good: even the genuine next message is refused now.
        with self.assertRaises(ChannelError):
            device.open(reader.seal(b"two"))

    def test_reorder_refused(self):
        reader, device = pair()
        reader.seal(b"one")
        m2 = reader.seal(b"two")
        with self.assertRaises(ChannelError):
            device.open(m2)

    def test_tampered_ciphertext_and_tag(self):
        for index in (0, 3, -1, -16):
            reader, device = pair()
            msg = bytearray(reader.seal(b"door"))
            msg[index] ^= 0x01
            with self.assertRaises(ChannelError):
                device.open(bytes(msg))

    def test_truncated(self):
        reader, device = pair()
        msg = reader.seal(b"door")
        with self.assertRaises(ChannelError):
            device.open(msg[:15])
        reader, device = pair()
        with self.assertRaises(ChannelError):
            device.open(reader.seal(b"door")[:-1])

    def test_own_direction_refused(self):
        # A reflected message (reader's own output fed back) must not open.
        reader, _ = pair()
        with self.assertRaises(ChannelError):
            reader.open(reader.seal(b"echo"))

    def test_failure_does_not_advance_counter(self):
        reader, device = pair()
        msg = bytearray(reader.seal(b"x"))
        msg[0] ^= 1
        with self.assertRaises(ChannelError):
            device.open(bytes(msg))
        self.assertEqual(device.receive_counter, 1)

    def test_send_refused_at_ffff(self):
        reader = Channel(SK_READER, SK_DEVICE, READER, send_counter=0xFFFE)
        device = Channel(SK_READER, SK_DEVICE, DEVICE, receive_counter=0xFFFE)
        self.assertEqual(device.open(reader.seal(b"last")), b"last")
        with self.assertRaises(ChannelExhausted):
            reader.seal(b"one too many")

    def test_receive_refused_at_ffff(self):
        device = Channel(SK_READER, SK_DEVICE, DEVICE, send_counter=0xFFFF)
        reader = Channel(SK_READER, SK_DEVICE, READER, receive_counter=0xFFFF)
        with self.assertRaises(ChannelExhausted):
            reader.open(bytes(20))
        with self.assertRaises(ChannelExhausted):
            device.seal(b"x")
        self.assertTrue(issubclass(ChannelExhausted, ChannelError))

    def test_close_refuses_everything(self):
        reader, device = pair()
        msg = reader.seal(b"x")
        device.close()
        with self.assertRaises(ChannelError):
            device.open(msg)
        with self.assertRaises(ChannelError):
            device.seal(b"y")


if __name__ == "__main__":
    unittest.main()
