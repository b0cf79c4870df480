# carkey — tests for carkey.protocol.ntag424 against NXP's published worked examples, in a 64 KiB heap.
# SPDX-License-Identifier: MIT
#
# Vectors, each beside its source (table numbers of AN12196 rev. 2.0, 4 March 2025;
# rev. 1.8 numbers in brackets where they differ):
#   AN12196 §5.6 Table 14   AuthenticateEV2First with key 0x00 (RndA, RndB, APDUs, TI, session keys)
#   AN12196 §5.10 Table 19 [§6.10 Table 20]  AuthenticateEV2First with key 0x03
#   AN12196 §6.3 Table 28 [§7.3 Table 29]    GetCardUID, response in CommMode.Full
#   AN10922 §2.2.1  AES-128 key diversification example
# The scripted link checks every C-APDU byte for byte.
#
# Run: .venv/bin/pytest -q tests/firmware/test_ntag424.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_ntag424.py

from binascii import unhexlify as h

import unittest

from carkey.protocol import ntag424
from carkey.protocol.errors import AuthenticationFailed, LinkError, ProtocolError

MPY_HEAPSIZE = "64k"
T = 500  # per-command timeout handed to the link

# AN12196 Table 14 (AuthenticateEV2First, key 0x00 = factory zeros).
T14_KEY = bytes(16)
T14_CMD1 = h("9071000002000000")
T14_RSP1 = h("A04C124213C186F22399D33AC2A30215" "91AF")
T14_RND_A = h("13C5DB8A5930439FC3DEF9A4C675360F")
T14_CMD2 = h("90AF000020" "35C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D" "00")
T14_RSP2 = h("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663" "9100")
T14_TI = h("9D00C4DF")
T14_ENC = h("1309C877509E5A215007FF0ED19CA564")
T14_MAC = h("4C6626F5E72EA694202139295C7A7FC7")

# AN12196 Table 19 (AuthenticateEV2First, key 0x03, factory zeros).
T19_CMD1 = h("9071000002030000")
T19_RSP1 = h("B875CEB0E66A6C5CD00898DC371F92D1" "91AF")
T19_RND_A = h("B98F4C50CF1C2E084FD150E33992B048")
T19_CMD2 = h("90AF000020" "FF0306E47DFBC50087C4D8A78E88E62DE1E8BE457AA477C707E2F0874916A8B1" "00")
T19_RSP2 = h("0CC9A8094A8EEA683ECAAC5C7BF20584206D0608D477110FC6B3D5D3F65C3A6A" "9100")
T19_TI = h("7614281A")
T19_ENC = h("7A93D6571E4B180FCA6AC90C9A7488D4")
T19_MAC = h("FC4AF159B62E549B5812394CAB1918CC")

# AN12196 Table 28 (GetCardUID; session keys, TI and CmdCtr 0000 given by the table).
T28_ENC = h("2B4D963C014DC36F24F69A50A394F875")
T28_MAC = h("379D32130CE61705DD5FD8C36B95D764")
T28_TI = h("DF055522")
T28_CMD = h("9051000008" "8E2C155ADDA99BE3" "00")
T28_RSP = h("70756055688505B52A5E26E59E329CD6" "595F672298EA41B7" "9100")
T28_UID = h("04958CAA5C5E80")

# AN10922 §2.2.1: AES-128 master key, UID, AID, system identifier ("NXP Abu") -> key.
AN10922_MASTER = h("00112233445566778899AABBCCDDEEFF")
AN10922_UID = h("04782E21801D80")
AN10922_AID = h("3042F5")
AN10922_SYSID = h("4E585020416275")
AN10922_KEY = h("A8DD63A3B89D54B37CA802473FDA9175")


class FakeLink:
    # [(expected C-APDU or None, R-APDU), ...]: tests/mpy/fakelink.py's contract,
    # inlined to leave that module's credential fakes out of this 64 KiB heap.
    def __init__(self, script):
        self.script = script
        self.sent = []
        self.timeouts = []

    async def transceive(self, capdu, timeout_ms):
        capdu = bytes(capdu)
        self.sent.append(capdu)
        self.timeouts.append(timeout_ms)
        if not self.script:
            raise LinkError("script exhausted")
        expected, answer = self.script.pop(0)
        if expected is not None and capdu != expected:
            raise AssertionError("sent %s, expected %s" % (capdu.hex(), expected.hex()))
        return answer


def run(coro):
    # The scripted link never waits, so one step runs a coroutine to its end;
    # stepping it by hand keeps asyncio's ~4 KiB out of this 64 KiB heap.
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("coroutine waited on something")


def auth(script, key=T14_KEY, key_no=0, rnd_a=T14_RND_A):
    link = FakeLink(script)
    return link, run(ntag424.authenticate_ev2_first(link, key, key_no, T, rnd_a))


class DiversifyTest(unittest.TestCase):
    def test_an10922_example(self):
        key = ntag424.diversify(AN10922_MASTER, AN10922_UID, AN10922_AID, AN10922_SYSID)
        self.assertEqual(bytes(key), AN10922_KEY)

    def test_card_key_uses_carkey_aid_and_system_id(self):
        key = ntag424.card_key(AN10922_MASTER, AN10922_UID, 2)
        self.assertEqual(bytes(key), bytes(ntag424.diversify(AN10922_MASTER, AN10922_UID, b"CK\x02", b"carkey")))

    def test_each_key_number_gets_its_own_key(self):
        self.assertNotEqual(ntag424.card_key(AN10922_MASTER, AN10922_UID, 0), ntag424.card_key(AN10922_MASTER, AN10922_UID, 2))

    def test_bad_inputs_refused(self):
        with self.assertRaises(ValueError):
            ntag424.diversify(AN10922_MASTER[:15], AN10922_UID, AN10922_AID, AN10922_SYSID)
        with self.assertRaises(ValueError):
            ntag424.diversify(AN10922_MASTER, AN10922_UID, b"", b"")  # 7 bytes: below AN10922's 16
        with self.assertRaises(ValueError):
            ntag424.card_key(AN10922_MASTER, AN10922_UID[:4])


class AuthenticateTest(unittest.TestCase):
    def test_table14_apdus_ti_and_session_keys(self):
        link, s = auth([(T14_CMD1, T14_RSP1), (T14_CMD2, T14_RSP2)])
        self.assertEqual(link.sent, [T14_CMD1, T14_CMD2])
        self.assertEqual(link.timeouts, [T, T])
        self.assertEqual(s.ti, T14_TI)
        self.assertEqual(bytes(s.enc_key), T14_ENC)
        self.assertEqual(bytes(s.mac_key), T14_MAC)
        self.assertEqual(s.cmd_ctr, 0)

    def test_table19_key_number_3(self):
        _, s = auth([(T19_CMD1, T19_RSP1), (T19_CMD2, T19_RSP2)], key_no=3, rnd_a=T19_RND_A)
        self.assertEqual((s.ti, bytes(s.enc_key), bytes(s.mac_key)), (T19_TI, T19_ENC, T19_MAC))

    def test_card_authentication_error_is_an_authentication_failure(self):
        with self.assertRaises(ntag424.CardAuthError) as cm:
            auth([(T14_CMD1, T14_RSP1), (T14_CMD2, h("91AE"))])
        self.assertIsInstance(cm.exception, AuthenticationFailed)
        self.assertIn("does not hold this key", str(cm.exception))

    def test_answer_for_another_challenge_refused(self):
        # Table 14's genuine part-2 answer replayed to a reader that drew another RndA.
        other = bytearray(T14_RND_A)
        other[0] ^= 1
        with self.assertRaises(ntag424.CardAuthError) as cm:
            auth([(T14_CMD1, T14_RSP1), (None, T14_RSP2)], rnd_a=bytes(other))
        self.assertIn("RndA' mismatch", str(cm.exception))

    def test_wrong_key_sees_a_different_rndb(self):
        # With another key, RndB decrypts differently, so part 2 is not Table 14's.
        key = bytes(15) + b"\x01"
        with self.assertRaises(ntag424.CardAuthError):
            auth([(T14_CMD1, T14_RSP1), (None, T14_RSP2)], key=key)

    def test_bad_status_word_is_a_protocol_error(self):
        with self.assertRaises(ntag424.CardProtocolError) as cm:
            auth([(T14_CMD1, h("9140"))])
        self.assertEqual(cm.exception.sw, 0x9140)
        self.assertIsInstance(cm.exception, ProtocolError)

    def test_short_part1_is_a_protocol_error(self):
        with self.assertRaises(ntag424.CardProtocolError) as cm:
            auth([(T14_CMD1, T14_RSP1[:10] + b"\x91\xaf")])
        self.assertIn("expected 18", str(cm.exception))

    def test_short_part2_is_a_protocol_error(self):
        with self.assertRaises(ntag424.CardProtocolError):
            auth([(T14_CMD1, T14_RSP1), (T14_CMD2, T14_RSP2[:16] + b"\x91\x00")])

    def test_empty_answer_is_a_protocol_error(self):
        with self.assertRaises(ntag424.CardProtocolError):
            auth([(T14_CMD1, b"\x91")])

    def test_link_errors_pass_through(self):
        with self.assertRaises(LinkError):
            auth([(T14_CMD1, T14_RSP1)])  # the card leaves after part 1

    def test_bad_key_refused_before_sending(self):
        link = FakeLink([])
        with self.assertRaises(ValueError):
            run(ntag424.authenticate_ev2_first(link, bytes(8), 0, T))
        self.assertEqual(link.sent, [])

    def test_fresh_rnda_each_time(self):
        a = FakeLink([(T14_CMD1, T14_RSP1), (None, h("91AE"))])
        b = FakeLink([(T14_CMD1, T14_RSP1), (None, h("91AE"))])
        for link in (a, b):
            with self.assertRaises(ntag424.CardAuthError):
                run(ntag424.authenticate_ev2_first(link, T14_KEY, 0, T))
        self.assertNotEqual(a.sent[1], b.sent[1])


class GetCardUidTest(unittest.TestCase):
    def session(self):
        return ntag424.Session(T28_ENC, T28_MAC, T28_TI, 0)

    def test_table28_command_and_uid(self):
        s = self.session()
        link = FakeLink([(T28_CMD, T28_RSP)])
        self.assertEqual(run(ntag424.get_card_uid(link, s, T)), T28_UID)
        self.assertEqual(s.cmd_ctr, 1)

    def test_tampered_ciphertext_refused(self):
        bad = bytearray(T28_RSP)
        bad[0] ^= 1
        s = self.session()
        with self.assertRaises(ntag424.CardAuthError) as cm:
            run(ntag424.get_card_uid(FakeLink([(T28_CMD, bytes(bad))]), s, T))
        self.assertIn("MAC mismatch", str(cm.exception))
        self.assertEqual(s.cmd_ctr, 0)

    def test_answer_for_another_counter_refused(self):
        # The same answer replayed at the next command counter fails its MAC.
        s = ntag424.Session(T28_ENC, T28_MAC, T28_TI, 1)
        with self.assertRaises(ntag424.CardAuthError):
            run(ntag424.get_card_uid(FakeLink([(None, T28_RSP)]), s, T))

    def test_wrong_length_is_a_protocol_error(self):
        with self.assertRaises(ntag424.CardProtocolError):
            run(ntag424.get_card_uid(FakeLink([(T28_CMD, T28_RSP[:-10] + b"\x91\x00")]), self.session(), T))

    def test_status_word_reported(self):
        with self.assertRaises(ntag424.CardProtocolError) as cm:
            run(ntag424.get_card_uid(FakeLink([(T28_CMD, h("911E"))]), self.session(), T))
        self.assertEqual(cm.exception.sw, 0x911E)

    def test_wipe_clears_keys(self):
        s = self.session()
        s.wipe()
        self.assertEqual(bytes(s.enc_key) + bytes(s.mac_key), bytes(32))
        self.assertNotIn("2b4d", repr(self.session()).lower())


class AuthenticateCardTest(unittest.TestCase):
    # Whole-tap behaviour against the emulated card is tested from the host
    # (tests/host/test_ntag424_e2e.py); here, what happens before any radio traffic.
    def test_random_id_uid_refused_before_sending(self):
        link = FakeLink([])
        with self.assertRaises(ntag424.CardProtocolError) as cm:
            run(ntag424.authenticate_card(link, AN10922_MASTER, h("08112233"), T))
        self.assertIn("7-byte", str(cm.exception))
        self.assertEqual(link.sent, [])

    def test_select_refused_is_a_protocol_error(self):
        link = FakeLink([(ntag424.SELECT_NDEF_APP, h("6A82"))])
        with self.assertRaises(ntag424.CardProtocolError) as cm:
            run(ntag424.authenticate_card(link, AN10922_MASTER, AN10922_UID, T))
        self.assertEqual(cm.exception.sw, 0x6A82)

    def test_select_apdu(self):
        self.assertEqual(ntag424.SELECT_NDEF_APP, h("00A4040C07D276000085010100"))  # AN12196 Table 22


if __name__ == "__main__":
    unittest.main()
