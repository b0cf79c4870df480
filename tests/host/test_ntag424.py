"""carkey_host.ntag424: NXP's published worked examples, the emulated card, provisioning.

Vectors (table numbers of AN12196 rev. 2.0, 4 March 2025; rev. 1.8 in brackets):
  AN12196 §5.6 Table 14          AuthenticateEV2First, key 0x00
  AN12196 §5.16.1 Table 25 [26]  ChangeKey of key 0x02 while authenticated with key 0x00 (case 1)
  AN12196 §5.16.2 Table 26 [27]  ChangeKey of key 0x00, the authenticated key (case 2)
                                 (session of both: TI from Table 19, keys from Table 23)
  AN12196 §6.3 Table 28 [§7.3 Table 29]  GetCardUID, response in CommMode.Full
  AN10922 §2.2.1                 AES-128 key diversification
The emulated card is checked against Table 14 with its randomness pinned, then used
as the card every provisioning and verification test talks to. Firmware and host
diversification are compared through the MicroPython bridge (default heap: the
bridge compiles firmware source; the compiled module's 64 KiB fit is tested in
tests/firmware/test_ntag424.py and tests/host/test_ntag424_e2e.py).

Run: .venv/bin/pytest -q tests/host/test_ntag424.py
"""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carkey_host import ntag424 as n
from carkey_host.errors import CarkeyError, Refused

h = bytes.fromhex

# AN12196 Table 14
T14_CMD1 = h("9071000002000000")
T14_RSP1 = h("A04C124213C186F22399D33AC2A3021591AF")
T14_RND_A = h("13C5DB8A5930439FC3DEF9A4C675360F")
T14_RND_B = h("B9E2FC789B64BF237CCCAA20EC7E6E48")
T14_CMD2 = h("90AF00002035C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D00")
T14_RSP2 = h("3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F081206639100")
T14_TI = h("9D00C4DF")
T14_ENC = h("1309C877509E5A215007FF0ED19CA564")
T14_MAC = h("4C6626F5E72EA694202139295C7A7FC7")
T14_SV1 = h("A55A0001008013C56268A548D8FBBF237CCCAA20EC7E6E48C3DEF9A4C675360F")  # step 25

# AN12196 Tables 25 and 26: TI (Table 19) and session keys (Table 23)
B_TI = h("7614281A")
B_ENC = h("4CF3CB41A22583A61E89B158D252FC53")
B_MAC = h("5529860B2FC5FB6154B7F28361D30BF9")
T25_NEW = h("F3847D627727ED3BC9C4CC050489B966")
T25_CRC = h("789DFADC")
T25_CMD = h("90C4000029022CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC75D0CE20BCD1D06E600")
T25_RSP = h("203BB55D1089D5879100")
T26_NEW = h("5004BF991F408672B1EF00F08F9E8647")
T26_CMD = h("90C400002900C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FDA6610234BDED643200")

# AN12196 Table 28
T28_ENC = h("2B4D963C014DC36F24F69A50A394F875")
T28_MAC = h("379D32130CE61705DD5FD8C36B95D764")
T28_TI = h("DF055522")
T28_CMD = h("90510000088E2C155ADDA99BE300")
T28_RSP = h("70756055688505B52A5E26E59E329CD6595F672298EA41B79100")
T28_UID = h("04958CAA5C5E80")

# AN10922 §2.2.1
AN10922_MASTER = h("00112233445566778899AABBCCDDEEFF")
AN10922_UID = h("04782E21801D80")
AN10922_AID = h("3042F5")
AN10922_SYSID = h("4E585020416275")  # "NXP Abu"
AN10922_KEY = h("A8DD63A3B89D54B37CA802473FDA9175")

MASTER = bytes(range(16))
UID = h("04A1B2C3D4E5F6")


class ScriptLink:
    """Plays a published card: each C-APDU must be the expected one, byte for byte."""

    def __init__(self, script):
        self.script = list(script)

    def transceive(self, capdu):
        expected, answer = self.script.pop(0)
        assert capdu == expected, f"sent {capdu.hex()}, expected {expected.hex()}"
        return answer


def session_b(ctr):
    return n.SecureSession(B_TI, bytearray(B_ENC), bytearray(B_MAC), ctr, 0)


def pinned(values):
    """A card random source that returns the given values in order."""
    it = iter(values)
    return lambda size: next(it)


# --- published vectors ------------------------------------------------------------


def test_an10922_diversification():
    assert n.diversify(AN10922_MASTER, AN10922_UID, AN10922_AID, AN10922_SYSID) == AN10922_KEY


def test_session_vector_layout_table14():
    assert n.session_vectors(T14_RND_A, T14_RND_B)[0] == T14_SV1


def test_authenticate_table14():
    link = ScriptLink([(T14_CMD1, T14_RSP1), (T14_CMD2, T14_RSP2)])
    s = n.authenticate(link, bytes(16), 0, rnd_a=T14_RND_A)
    assert (s.ti, bytes(s.enc_key), bytes(s.mac_key), s.cmd_ctr) == (T14_TI, T14_ENC, T14_MAC, 0)


def test_get_card_uid_table28():
    s = n.SecureSession(T28_TI, bytearray(T28_ENC), bytearray(T28_MAC), 0, 0)
    assert n.get_card_uid(ScriptLink([(T28_CMD, T28_RSP)]), s) == T28_UID
    assert s.cmd_ctr == 1


def test_crc32nk_table25():
    assert n.crc32nk(T25_NEW) == T25_CRC


def test_change_other_key_table25():
    s = session_b(2)
    n.change_key(ScriptLink([(T25_CMD, T25_RSP)]), s, 2, T25_NEW, bytes(16), 1)
    assert s.cmd_ctr == 3  # the answer's MAC (CmdCtr 3) verified; the session goes on


def test_change_authenticated_key_table26_ends_session():
    s = session_b(3)
    n.change_key(ScriptLink([(T26_CMD, h("9100"))]), s, 0, T26_NEW, None, 1)
    assert bytes(s.enc_key) == bytes(16) and bytes(s.mac_key) == bytes(16)


def test_change_key_answer_with_bad_mac_refused():
    bad = bytearray(T25_RSP)
    bad[0] ^= 1
    with pytest.raises(n.CardAuthError, match="MAC mismatch"):
        n.change_key(ScriptLink([(T25_CMD, bytes(bad))]), session_b(2), 2, T25_NEW, bytes(16), 1)


# --- the emulated card against the published card side ---------------------------


def test_emulated_card_answers_table14():
    card = n.EmulatedCard(UID, random=pinned([T14_RND_B, T14_TI]))
    assert card.process(T14_CMD1) == T14_RSP1
    assert card.process(T14_CMD2) == T14_RSP2


def test_emulated_card_answers_table28_after_table14():
    # Table 28 comes from another session; with Table 14's session pinned the card's
    # GetCardUID answer must be what the PCD side (checked against Table 28) accepts.
    card = n.EmulatedCard(T28_UID, random=pinned([T14_RND_B, T14_TI]))
    card.process(T14_CMD1)
    card.process(T14_CMD2)
    s = n.SecureSession(T14_TI, bytearray(T14_ENC), bytearray(T14_MAC), 0, 0)
    assert n.get_card_uid(n.CardLink(card), s) == T28_UID


def test_emulated_card_accepts_table25_and_table26():
    card = n.EmulatedCard(UID)
    card.session = session_b(2)
    assert card.process(T25_CMD) == T25_RSP
    assert card.keys[2] == T25_NEW and card.key_versions[2] == 1
    assert card.process(T26_CMD) == h("9100")
    assert card.keys[0] == T26_NEW and card.session is None


def test_emulated_card_target_data():
    card = n.EmulatedCard(UID)
    assert (card.uid, card.atqa, card.sak, card.ats) == (UID, h("0344"), 0x20, h("067777710280"))


# --- emulated card behaviour -------------------------------------------------------


def test_wrong_key_gets_91ae_and_is_counted():
    card = n.EmulatedCard(UID)
    with pytest.raises(n.CardAuthError, match="holds another key"):
        n.authenticate(n.CardLink(card), b"\x01" * 16, 2)
    assert card.transcript[-1][1] == h("91AE")
    assert card.failed_authentications == 1
    assert card.session is None


def test_part2_without_part1_is_an_illegal_command():
    card = n.EmulatedCard(UID)
    assert card.process(T14_CMD2) == h("911C")


def test_unknown_key_number():
    assert n.EmulatedCard(UID).process(h("9071000002050000")) == h("9140")


def test_bad_length():
    assert n.EmulatedCard(UID).process(h("90710000030000")) == h("917E")


def test_get_uid_needs_authentication():
    assert n.EmulatedCard(UID).process(h("9051000008" + "00" * 8 + "00")) == h("91AE")


def test_get_uid_with_wrong_mac_is_an_integrity_error_and_ends_session():
    card = n.EmulatedCard(UID)
    n.authenticate(n.CardLink(card), bytes(16), 0)
    assert card.process(h("9051000008" + "00" * 8 + "00")) == h("911E")
    assert card.session is None


def test_select_unknown_application():
    assert n.EmulatedCard(UID).process(h("00A4040C07D276000085010200")) == h("6A82")


def test_change_key_needs_the_master_key_session():
    card = n.EmulatedCard(UID)
    s = n.authenticate(n.CardLink(card), bytes(16), 2)
    with pytest.raises(n.CardProtocolError, match="919D"):
        n.change_key(n.CardLink(card), s, 3, b"\x07" * 16, bytes(16))
    assert card.keys[3] == bytes(16)


def test_change_key_with_wrong_old_key_fails_crc_and_changes_nothing():
    card = n.EmulatedCard(UID)
    s = n.authenticate(n.CardLink(card), bytes(16), 0)
    with pytest.raises(n.CardProtocolError, match="911E"):
        n.change_key(n.CardLink(card), s, 2, b"\x07" * 16, b"\x01" * 16)
    assert card.keys[2] == bytes(16)


def test_command_counter_advances_per_command():
    card = n.EmulatedCard(UID)
    link = n.CardLink(card)
    s = n.authenticate(link, bytes(16), 0)
    for expected in (1, 2, 3):
        assert n.get_card_uid(link, s) == UID
        assert s.cmd_ctr == card.session.cmd_ctr == expected


# --- provisioning and verification -------------------------------------------------


def test_provision_sets_diversified_keys_and_reports_check_values():
    card = n.EmulatedCard(UID)
    result = n.provision(n.CardLink(card), MASTER, UID)
    assert card.keys[2] == n.card_key(MASTER, UID, 2)
    assert card.keys[0] == n.card_key(MASTER, UID, 0)
    assert card.keys[0] != card.keys[2]
    assert result.card_key_kcv == n.key_check_value(card.keys[2])
    assert len(result.card_key_kcv) == 3 and result.card_key_kcv not in card.keys[2]
    assert n.verify_card(n.CardLink(card), MASTER, UID) == UID


def test_provisioned_card_no_longer_opens_with_factory_key():
    card = n.EmulatedCard(UID)
    n.provision(n.CardLink(card), MASTER, UID)
    keys = list(card.keys)
    with pytest.raises(n.CardAuthError, match="provisioned already"):
        n.provision(n.CardLink(card), bytes(16), UID)
    assert card.keys == keys


def test_provisioning_interrupted_after_key_2_can_be_finished():
    card = n.EmulatedCard(UID)
    card.keys[2] = n.card_key(MASTER, UID, 2)  # the card left the field before ChangeKey 0
    n.provision(n.CardLink(card), MASTER, UID)
    assert card.keys[0] == n.card_key(MASTER, UID, 0)
    assert n.verify_card(n.CardLink(card), MASTER, UID) == UID


def test_provision_refuses_a_uid_that_is_not_the_cards():
    card = n.EmulatedCard(UID, real_uid=h("04000000000001"))
    with pytest.raises(n.CardUidMismatch):
        n.provision(n.CardLink(card), MASTER, UID)
    assert card.keys == [bytes(16)] * 5


def test_two_cards_get_different_keys():
    other = h("04A1B2C3D4E5F7")
    assert n.card_key(MASTER, UID) != n.card_key(MASTER, other)


def test_verify_refuses_another_master_key():
    card = n.EmulatedCard(UID)
    n.provision(n.CardLink(card), MASTER, UID)
    with pytest.raises(n.CardAuthError):
        n.verify_card(n.CardLink(card), bytes(16), UID)


def test_verify_refuses_a_replayed_transaction():
    card = n.EmulatedCard(UID)
    n.provision(n.CardLink(card), MASTER, UID)
    card.transcript.clear()
    n.verify_card(n.CardLink(card), MASTER, UID)
    replay = n.EmulatedCard(UID, replay=list(card.transcript))
    with pytest.raises(n.CardAuthError, match="RndA' mismatch"):
        n.verify_card(n.CardLink(replay), MASTER, UID)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(CarkeyError, match="16 bytes"):
        n.card_key(MASTER[:8], UID)
    with pytest.raises(CarkeyError, match="7 bytes"):
        n.card_key(MASTER, UID[:4])
    with pytest.raises(CarkeyError, match="1..31"):
        n.diversify(MASTER, b"", b"", b"")
    assert issubclass(n.CardUidMismatch, Refused)


def test_session_repr_hides_keys():
    s = n.SecureSession(T14_TI, bytearray(T14_ENC), bytearray(T14_MAC))
    assert T14_ENC.hex() not in repr(s) and T14_MAC.hex() not in repr(s)


# --- firmware and host agree ------------------------------------------------------


def test_firmware_diversification_matches_an10922(mpy):
    got = mpy.call("carkey.protocol.ntag424", "diversify", AN10922_MASTER, AN10922_UID, AN10922_AID, AN10922_SYSID)
    assert got == AN10922_KEY


@settings(max_examples=25, deadline=None)
@given(master=st.binary(min_size=16, max_size=16), uid=st.binary(min_size=7, max_size=7), key_no=st.integers(0, 4))
def test_firmware_card_key_matches_host(mpy, master, uid, key_no):
    assert mpy.call("carkey.protocol.ntag424", "card_key", master, uid, key_no) == n.card_key(master, uid, key_no)


@settings(max_examples=10, deadline=None)
@given(m=st.binary(min_size=16, max_size=31))
def test_firmware_diversify_matches_host_on_every_length_it_takes(mpy, m):
    master = os.urandom(16)
    got = mpy.call("carkey.protocol.ntag424", "diversify", master, m[:7], m[7:10], m[10:])
    assert got == n.diversify(master, m[:7], m[7:10], m[10:])
