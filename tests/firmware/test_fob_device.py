# carkey — the key fob's user device against the Aliro known-answer transcripts and bad readers.
# SPDX-License-Identifier: MIT
#
# With the KAT credential, trusted reader and the user device's ephemeral keys
# injected, every R-APDU the fob answers must equal the transcript byte for byte
# (standard, then fast from the Kpersistent the standard one left on flash).
# Then what the fob does with untrusted readers, bad signatures, tampered
# messages, commands out of order and long answers.
#
# Run: .venv/bin/pytest -q tests/firmware/test_fob_device.py

import asyncio
import gc
import json

import unittest
from scratch import remove_tree, scratch_dir

MPY_HEAPSIZE = "256k"
KAT_PATH = "tests/vectors/aliro-expedited-kat.json"


def _load():
    with open(KAT_PATH) as f:
        kat = json.load(f)
    c = kat["common"]
    out = {k: bytes.fromhex(c[k]) for k in (
        "reader_long_term_private_key", "reader_long_term_public_key", "reader_group_identifier",
        "reader_identifier", "credential_long_term_private_key", "credential_long_term_public_key")}
    for name, t in zip(("std", "fast"), kat["transactions"]):
        out[name] = {
            "apdus": [(bytes.fromhex(a["c_apdu"]), bytes.fromhex(a["r_apdu"])) for a in t["apdus"]],
            "ud_priv": bytes.fromhex(t["inputs"]["ud_ephemeral_private_key"]),
            "ud_pub": bytes.fromhex(t["inputs"]["ud_ephemeral_public_key"]),
        }
    out["kp"] = bytes.fromhex(kat["transactions"][0]["hkdf_persistent"]["keys"]["Kpersistent"])
    out["bitmap"] = bytes.fromhex(kat["transactions"][0]["auth1_response_encryption"]["plaintext_fields"]["5e"])
    out["sk"] = kat["transactions"][0]["hkdf_volatile"]["keys"]
    return out


KAT = _load()
gc.collect()

from carkey import storage  # noqa: E402
from carkey.fob import state as fobstate  # noqa: E402
from carkey.fob.device import DropLink, UserDevice  # noqa: E402

CF_GRANTED = bytes.fromhex("803c000006410101420100")
OK = b"\x90\x00"


def run(coro):
    return asyncio.run(coro)


def install_kat_credential(dir):
    # The record format of docs/FOB.md; a real fob makes its own key (create_credential).
    body = b"CKFK\x01" + KAT["credential_long_term_private_key"] + KAT["credential_long_term_public_key"]
    storage.save(dir, fobstate.KEY_RECORD, body)


class _Case(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.state = fobstate.FobState(self.dir)
        install_kat_credential(self.dir)
        gc.collect()

    def tearDown(self):
        remove_tree(self.dir)

    def trust_kat_reader(self):
        self.state.trust(KAT["reader_group_identifier"], KAT["reader_long_term_public_key"])

    def device(self, txn="std", random=None):
        t = KAT[txn]
        return UserDevice(self.state, signaling_bitmap=KAT["bitmap"], ephemeral=lambda: (t["ud_priv"], t["ud_pub"]),
                          random_bytes=random)

    def play(self, dev, apdus):
        for capdu, want in apdus:
            got = run(dev.process(capdu))
            self.assertEqual(got.hex(), want.hex())


class TestKnownAnswers(_Case):
    def test_standard_then_fast_byte_for_byte(self):
        self.trust_kat_reader()
        dev = self.device("std")
        self.play(dev, KAT["std"]["apdus"])
        self.assertEqual(dev.txn.kind, "standard")
        self.assertEqual(dev.txn.reader_status, b"\x01\x01")
        # The Kpersistent of the KAT is on flash once the reader proved its keys.
        self.assertEqual(self.state.kpersistent(KAT["reader_identifier"]), KAT["kp"])
        self.assertEqual(run(dev.process(CF_GRANTED)), OK)
        self.assertEqual(dev.txn.control_flow, (1, 0))
        # A new connection: a new device object over the same flash.
        dev = self.device("fast")
        self.play(dev, KAT["fast"]["apdus"])
        self.assertEqual(dev.txn.kind, "fast")

    def test_kpersistent_survives_a_new_state_object(self):
        self.trust_kat_reader()
        self.play(self.device("std"), KAT["std"]["apdus"])
        self.assertEqual(fobstate.FobState(self.dir).kpersistent(KAT["reader_identifier"]), KAT["kp"])

    def test_fast_without_kpersistent_sends_random_cryptogram(self):
        self.trust_kat_reader()
        dev = self.device("fast", random=lambda n: b"\x5a" * n)
        capdu, want = KAT["fast"]["apdus"][0]
        self.assertEqual(run(dev.process(capdu)), want)
        r = run(dev.process(KAT["fast"]["apdus"][1][0]))
        self.assertEqual(r[-2:], OK)
        self.assertEqual(r[67:69], b"\x9d\x40")
        self.assertEqual(r[69:133], b"\x5a" * 64)
        # ... and an EXCHANGE without AUTH1 is out of order.
        self.assertEqual(run(dev.process(KAT["fast"]["apdus"][2][0]))[-2:], b"\x6d\x00")


class TestRefusals(_Case):
    def test_untrusted_reader_dropped_at_auth1(self):
        dev = self.device("std")
        for capdu, want in KAT["std"]["apdus"][:2]:
            self.assertEqual(run(dev.process(capdu)), want)  # AUTH0 looks ordinary
        with self.assertRaises(DropLink):
            run(dev.process(KAT["std"]["apdus"][2][0]))

    def test_same_group_other_key_refused(self):
        from carkey.crypto import p256

        _, other = p256.generate_keypair()
        self.state.trust(KAT["reader_group_identifier"], other)
        dev = self.device("std")
        self.play(dev, KAT["std"]["apdus"][:2])
        self.assertEqual(run(dev.process(KAT["std"]["apdus"][2][0])), b"\x69\x82")
        self.assertIsNone(self.state.kpersistent(KAT["reader_identifier"]))

    def test_tampered_reader_signature(self):
        self.trust_kat_reader()
        dev = self.device("std")
        self.play(dev, KAT["std"]["apdus"][:2])
        auth1 = bytearray(KAT["std"]["apdus"][2][0])
        auth1[20] ^= 1
        self.assertEqual(run(dev.process(bytes(auth1))), b"\x69\x82")
        # The transaction is over: a correct AUTH1 now is out of order.
        self.assertEqual(run(dev.process(KAT["std"]["apdus"][2][0])), b"\x6d\x00")

    def test_tampered_exchange(self):
        self.trust_kat_reader()
        dev = self.device("std")
        self.play(dev, KAT["std"]["apdus"][:3])
        ex = bytearray(KAT["std"]["apdus"][3][0])
        ex[7] ^= 0x80
        self.assertEqual(run(dev.process(bytes(ex))), b"\x69\x82")
        self.assertIsNone(self.state.kpersistent(KAT["reader_identifier"]))

    def test_headers(self):
        dev = self.device("std")
        self.assertEqual(run(dev.process(bytes.fromhex("00a4040009a000000909acce550200"))), b"\x6a\x82")
        self.assertEqual(run(dev.process(bytes.fromhex("80a4040009a000000909acce550100"))), b"\x68\x00")
        self.assertEqual(run(dev.process(bytes.fromhex("00a4040109a000000909acce550100"))), b"\x6a\x86")
        self.assertEqual(run(dev.process(b"\x80")), b"\x67\x01")
        self.assertEqual(run(dev.process(bytes.fromhex("80800000024100"))), b"\x6d\x00")  # AUTH0 unselected
        self.assertEqual(run(dev.process(bytes.fromhex("8081000003410101"))), b"\x6d\x00")
        self.assertEqual(run(dev.process(bytes.fromhex("80ca0000"))), b"\x6d\x00")  # unknown INS
        self.assertEqual(run(dev.process(bytes.fromhex("80800000ff41"))), b"\x67\x01")  # Lc beyond the data

    def test_bad_auth0_fields(self):
        self.trust_kat_reader()
        dev = self.device("std")
        self.play(dev, KAT["std"]["apdus"][:1])
        auth0 = bytearray(KAT["std"]["apdus"][1][0])
        version = bytes(auth0).find(b"\x5c\x02\x01\x00")
        bad_version = bytearray(auth0)
        bad_version[version + 2] = 2
        self.assertEqual(run(dev.process(bytes(bad_version))), b"\x69\x85")
        bad_point = bytearray(auth0)
        bad_point[version + 10] ^= 1  # inside the reader's ephemeral key
        self.assertEqual(run(dev.process(bytes(bad_point))), b"\x67\x01")
        self.assertEqual(run(dev.process(bytes(auth0[:-20]) + b"\x00")), b"\x67\x01")
        # Nothing of that changed the selection: the real AUTH0 still works.
        self.assertEqual(run(dev.process(bytes(auth0))), KAT["std"]["apdus"][1][1])


class TestLongMessages(_Case):
    def test_long_answer_comes_through_get_response_and_chained_command(self):
        from carkey.protocol.channel import READER, Channel

        self.trust_kat_reader()
        dev = self.device("std")
        dev.on_exchange = lambda plain: b"\xe1\x82\x01\x2c" + b"\x07" * 300
        self.play(dev, KAT["std"]["apdus"][:3])
        sk = KAT["sk"]
        reader = Channel(bytes.fromhex(sk["SKReader"]), bytes.fromhex(sk["SKDevice"]), READER, receive_counter=2)
        msg = reader.seal(b"\x97\x02\x01\x01" + b"\xe1\x82\x01\x2c" + b"\x05" * 300)
        part1 = b"\x90\xc9\x00\x00\xff" + msg[:255]
        self.assertEqual(run(dev.process(part1)), OK)
        rest = msg[255:]
        first = run(dev.process(b"\x80\xc9\x00\x00" + bytes((len(rest),)) + rest + b"\x00"))
        self.assertEqual(first[-2], 0x61)
        body = bytearray(first[:-2])
        while True:
            r = run(dev.process(b"\x00\xc0\x00\x00" + bytes((first[-1],))))
            body.extend(r[:-2])
            if r[-2:] == OK:
                break
            self.assertEqual(r[-2], 0x61)
        plain = reader.open(bytes(body))
        self.assertEqual(plain, b"\xe1\x82\x01\x2c" + b"\x07" * 300 + b"\x00\x02\x00\x00")


class TestState(_Case):
    def test_trust_refuses_bad_keys_and_caps_cars(self):
        from carkey.crypto import p256

        with self.assertRaises(fobstate.FobStateError):
            self.state.trust(b"\x01" * 16, b"\x04" + b"\x00" * 64)
        with self.assertRaises(fobstate.FobStateError):
            self.state.trust(b"\x01" * 15, KAT["reader_long_term_public_key"])
        for i in range(fobstate.MAX_CARS):
            self.state.trust(bytes((i,)) * 16, p256.generate_keypair()[1])
        with self.assertRaises(fobstate.FobStateError):
            self.state.trust(b"\x99" * 16, KAT["reader_long_term_public_key"])
        self.assertEqual(len(self.state.cars()), fobstate.MAX_CARS)

    def test_retrust_drops_that_cars_kpersistent(self):
        self.trust_kat_reader()
        self.state.set_kpersistent(KAT["reader_identifier"], b"\x11" * 32)
        self.state.set_kpersistent(b"\x22" * 32, b"\x33" * 32)
        self.state.trust(KAT["reader_group_identifier"], KAT["reader_long_term_public_key"])
        self.assertIsNone(self.state.kpersistent(KAT["reader_identifier"]))
        self.assertEqual(self.state.kpersistent(b"\x22" * 32), b"\x33" * 32)

    def test_kpersistent_keeps_the_newest_few(self):
        for i in range(fobstate.MAX_KPERSISTENT + 2):
            self.state.set_kpersistent(bytes((i,)) * 32, bytes((i + 100,)) * 32)
        self.assertIsNone(self.state.kpersistent(b"\x00" * 32))
        last = fobstate.MAX_KPERSISTENT + 1
        self.assertEqual(self.state.kpersistent(bytes((last,)) * 32), bytes((last + 100,)) * 32)

    def test_credential_made_once(self):
        dir = scratch_dir()
        try:
            st = fobstate.FobState(dir)
            with self.assertRaises(fobstate.FobStateError):
                st.credential()
            pub = st.create_credential()
            self.assertEqual(st.public_key(), pub)
            with self.assertRaises(fobstate.FobStateError):
                st.create_credential()
            self.assertEqual(st.public_key(), pub)
        finally:
            remove_tree(dir)

    def test_damaged_records_are_reported(self):
        storage.save(self.dir, fobstate.CARS_RECORD, b"CKFC\x01\x02" + b"\x00" * 81)
        with self.assertRaises(fobstate.FobStateError):
            self.state.cars()
        storage.save(self.dir, fobstate.KEY_RECORD, b"XXXX\x01")
        with self.assertRaises(fobstate.FobStateError):
            self.state.credential()

    def test_share_document_per_car(self):
        doc = b"\xe2\x03abc"
        self.state.set_share(b"\x01" * 16, doc)
        self.assertEqual(self.state.share(b"\x01" * 16), doc)
        self.assertIsNone(self.state.share(b"\x02" * 16))
        with self.assertRaises(fobstate.FobStateError):
            self.state.set_share(b"\x01" * 16, b"\xe3\x01x")  # a revocation is not a share
        self.state.drop_share()
        self.assertIsNone(self.state.share(b"\x01" * 16))

    def test_counters(self):
        self.assertEqual(self.state.counters(), (0, 0, 0))
        self.state.count(True)
        self.state.count(False)
        self.state.count(True)
        self.assertEqual(fobstate.FobState(self.dir).counters(), (3, 2, 1))


if __name__ == "__main__":
    unittest.main()
