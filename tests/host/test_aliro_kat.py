"""Known-answer replay of the Aliro expedited phase against the simulated user device.

Replays both transactions of tests/vectors/aliro-expedited-kat.json (standard, then
fast) through carkey_host.aliro.UserDevice byte for byte, and checks every
intermediate value (ECDH, Kdh, salts, HKDF outputs, signatures, cryptogram, IVs).

Run: .venv/bin/pytest -q tests/host/test_aliro_kat.py
"""

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from carkey_host.aliro import crypto, tlv
from carkey_host.aliro.channel import (
    DEVICE_IV_PREFIX,
    READER_IV_PREFIX,
    ROLE_DEVICE,
    ROLE_READER,
    SecureChannel,
    channel_iv,
)
from carkey_host.aliro.kpersistent_cache import KpersistentCache
from carkey_host.aliro.user_device import State, UserDevice

# Part of the repository (see tests/vectors/README.md): a missing file is an error, not a skip.
KAT_PATH = Path(__file__).resolve().parents[1] / "vectors" / "aliro-expedited-kat.json"
KAT = json.loads(KAT_PATH.read_text())
COMMON = KAT["common"]
STANDARD, FAST = KAT["transactions"]


def h(value: str) -> bytes:
    return bytes.fromhex(value)


READER_ID = h(COMMON["reader_identifier"])
READER_KEY = h(COMMON["reader_long_term_public_key"])
CREDENTIAL_PUB = h(COMMON["credential_long_term_public_key"])
SELECT_A5 = h(STANDARD["hkdf_volatile"]["salt_components_in_order"]["proprietary_information_tlv"])
# The NXP device's bitmap: mailbox read/write and step-up bits (see the AUTH1 plaintext).
KAT_BITMAP = h(STANDARD["auth1_response_encryption"]["plaintext_fields"]["5e"])


def make_device(*ephemeral_hex: str, cache: KpersistentCache | None = None) -> UserDevice:
    keys = iter([crypto.private_key_from_bytes(h(k)) for k in ephemeral_hex])
    return UserDevice(
        crypto.private_key_from_bytes(h(COMMON["credential_long_term_private_key"])),
        {h(t["reader_group_identifier"]): h(t["reader_public_key"]) for t in COMMON["user_device_trusts"]},
        kpersistent_cache=cache,
        ephemeral_key_factory=lambda: next(keys),
        random_bytes=lambda n: pytest.fail("a KAT transaction must not need random bytes"),
        signaling_bitmap=KAT_BITMAP,
    )


def replay(device: UserDevice, transaction: dict) -> None:
    for step in transaction["apdus"]:
        answer = device.process(h(step["c_apdu"]))
        assert answer.hex() == step["r_apdu"], f"step {step['step']} {step['command']}"


def transcript_for(transaction: dict, salt_block: dict) -> crypto.Transcript:
    inputs = transaction["inputs"]
    parts = salt_block["salt_components_in_order"]
    return crypto.Transcript(
        reader_group_public_key=h(COMMON["reader_group_identifier_key"]),
        reader_identifier=READER_ID,
        reader_ephemeral_public_key=h(inputs["reader_ephemeral_public_key"]),
        device_ephemeral_public_key=h(inputs["ud_ephemeral_public_key"]),
        transaction_id=h(inputs["transaction_identifier"]),
        flag=h(parts["flag"]),
        proprietary_tlv=h(parts["proprietary_information_tlv"]),
        credential_public_key=CREDENTIAL_PUB,
    )


# --- the device against the recorded transactions ------------------------------------


def test_standard_transaction_replays_byte_for_byte():
    device = make_device(STANDARD["inputs"]["ud_ephemeral_private_key"])
    replay(device, STANDARD)
    assert device.state is State.SECURE
    assert device.last_reader_status == h(STANDARD["inputs"]["exchange_97_reader_status"])


def test_standard_transaction_caches_the_kat_kpersistent():
    device = make_device(STANDARD["inputs"]["ud_ephemeral_private_key"])
    replay(device, STANDARD)
    assert device.kpersistent_cache.get(READER_ID) == h(STANDARD["hkdf_persistent"]["keys"]["Kpersistent"])


def test_fast_transaction_after_standard_on_the_same_device():
    device = make_device(
        STANDARD["inputs"]["ud_ephemeral_private_key"], FAST["inputs"]["ud_ephemeral_private_key"]
    )
    replay(device, STANDARD)
    device.reset()  # "on a new connection"
    replay(device, FAST)
    assert device.state is State.SECURE


def test_fast_transaction_from_a_restored_cache(tmp_path):
    # The KAT's Kpersistent from transaction 1, cached first and persisted across a restart.
    cache = KpersistentCache()
    cache.put(READER_ID, h(FAST["inputs"]["kpersistent_from_transaction_1"]))
    cache.save(tmp_path / "kp.json")
    device = make_device(FAST["inputs"]["ud_ephemeral_private_key"], cache=KpersistentCache.load(tmp_path / "kp.json"))
    replay(device, FAST)


def test_select_answer_carries_the_kat_proprietary_tlv():
    device = make_device()
    assert device.proprietary_tlv == SELECT_A5
    assert device.select_response() + b"\x90\x00" == h(STANDARD["apdus"][0]["r_apdu"])
    assert crypto.key_slot(CREDENTIAL_PUB) == device.key_slot == h(COMMON["credential_key_slot_sha1_first8"])


# --- the key schedule ------------------------------------------------------------------


def test_ecdh_and_kdh():
    inputs = STANDARD["inputs"]
    reader_eph = crypto.private_key_from_bytes(h(inputs["reader_ephemeral_private_key"]))
    device_eph = crypto.private_key_from_bytes(h(inputs["ud_ephemeral_private_key"]))
    assert crypto.public_key_bytes(reader_eph) == h(inputs["reader_ephemeral_public_key"])
    assert crypto.public_key_bytes(device_eph) == h(inputs["ud_ephemeral_public_key"])
    z = crypto.ecdh_shared_x(device_eph, h(inputs["reader_ephemeral_public_key"]))
    assert z == crypto.ecdh_shared_x(reader_eph, h(inputs["ud_ephemeral_public_key"]))
    assert z.hex() == STANDARD["ecdh"]["shared_x"] == STANDARD["kdh_x963"]["z"]
    kdh = crypto.derive_kdh(z, h(STANDARD["kdh_x963"]["shared_info"]))
    assert kdh.hex() == STANDARD["kdh_x963"]["kdh"]


@pytest.mark.parametrize(
    "transaction, block, label",
    [
        (STANDARD, "hkdf_volatile", crypto.LABEL_VOLATILE),
        (STANDARD, "hkdf_persistent", crypto.LABEL_PERSISTENT),
        (FAST, "hkdf_volatile_fast", crypto.LABEL_VOLATILE_FAST),
    ],
)
def test_salt_and_info_layout(transaction, block, label):
    kat = transaction[block]
    parts = kat["salt_components_in_order"]
    t = transcript_for(transaction, kat)
    assert label.hex() == parts["word"]
    assert t.salt(label).hex() == kat["salt"]
    assert t.info().hex() == kat["info"]
    # The layout piece by piece, so a mismatch names the field.
    expected = b"".join(h(v) for v in parts.values() if v is not None)
    assert t.salt(label) == expected


def test_standard_key_split_and_kpersistent():
    kat = STANDARD["hkdf_volatile"]
    t = transcript_for(STANDARD, kat)
    kdh = h(STANDARD["kdh_x963"]["kdh"])
    assert crypto.hkdf_sha256(kdh, t.salt(crypto.LABEL_VOLATILE), t.info(), 160).hex() == kat["okm"]
    keys = crypto.derive_standard_keys(kdh, t)
    expected = kat["keys"]
    assert keys.sk_reader.hex() == expected["SKReader"]
    assert keys.sk_device.hex() == expected["SKDevice"]
    assert keys.step_up_sk.hex() == expected["StepUpSK"]
    assert keys.ble_sk.hex() == expected["BleSK"]
    assert keys.ursk.hex() == expected["URSK"]
    assert keys.cryptogram_sk is None
    kp = crypto.derive_kpersistent(kdh, t)
    assert kp.hex() == STANDARD["hkdf_persistent"]["okm"] == FAST["inputs"]["kpersistent_from_transaction_1"]


def test_step_up_keys():
    step_up = h(STANDARD["hkdf_volatile"]["keys"]["StepUpSK"])
    reader, device = crypto.derive_step_up_keys(step_up)
    assert reader.hex() == STANDARD["stepup_keys_hkdf"]["StepUpSKReader"]["okm"]
    assert device.hex() == STANDARD["stepup_keys_hkdf"]["StepUpSKDevice"]["okm"]


def test_fast_key_split():
    kat = FAST["hkdf_volatile_fast"]
    t = transcript_for(FAST, kat)
    keys = crypto.derive_fast_keys(h(kat["ikm"]), t)
    expected = kat["keys"]
    assert keys.cryptogram_sk.hex() == expected["CryptogramSK"]
    assert keys.sk_reader.hex() == expected["SKReader"]
    assert keys.sk_device.hex() == expected["SKDevice"]
    assert keys.ble_sk.hex() == expected["BleSK"]
    assert keys.ursk.hex() == expected["URSK"]
    assert keys.step_up_sk is None


# --- signatures and cryptogram ---------------------------------------------------------


@pytest.mark.parametrize(
    "block, private_hex, usage",
    [
        ("reader_signature", COMMON["reader_long_term_private_key"], crypto.USAGE_READER),
        ("ud_signature", COMMON["credential_long_term_private_key"], crypto.USAGE_DEVICE),
    ],
)
def test_signed_data_and_signature(block, private_hex, usage):
    kat = STANDARD[block]
    t = transcript_for(STANDARD, STANDARD["hkdf_volatile"])
    data = crypto.signed_data(t, usage)
    assert data.hex() == kat["signed_data"]
    assert usage.hex() == kat["signed_data_fields"]["93_usage"]
    # RFC 6979 nonces make the signature itself reproducible.
    assert crypto.sign(crypto.private_key_from_bytes(h(private_hex)), data).hex() == kat["signature_r_s"]
    assert crypto.verify(h(kat["public_key"]), data, h(kat["signature_r_s"]))
    assert not crypto.verify(h(kat["public_key"]), data + b"\x00", h(kat["signature_r_s"]))


def test_cryptogram():
    kat = FAST["cryptogram"]
    plaintext = crypto.cryptogram_plaintext(h(kat["plaintext_fields"]["5e"]))
    assert plaintext.hex() == kat["plaintext"]
    assert kat["iv"] == crypto.CRYPTOGRAM_IV.hex()
    sealed = crypto.seal_cryptogram(h(kat["key"]), plaintext)
    assert sealed.hex() == kat["auth0_response_9D_value"] == kat["ciphertext"] + kat["tag"]
    assert crypto.open_cryptogram(h(kat["key"]), sealed) == plaintext
    with pytest.raises(crypto.CryptogramError):
        crypto.open_cryptogram(h(FAST["hkdf_volatile_fast"]["keys"]["SKReader"]), sealed)


# --- secure channel --------------------------------------------------------------------


def test_iv_layout():
    assert channel_iv(DEVICE_IV_PREFIX, 1).hex() == STANDARD["auth1_response_encryption"]["iv"]
    assert channel_iv(READER_IV_PREFIX, 1).hex() == STANDARD["exchange_command_encryption"]["iv"]
    assert channel_iv(DEVICE_IV_PREFIX, 2).hex() == STANDARD["exchange_response_encryption"]["iv"]
    assert DEVICE_IV_PREFIX.hex() == STANDARD["auth1_response_encryption"]["iv_prefix"]
    assert READER_IV_PREFIX.hex() == STANDARD["exchange_command_encryption"]["iv_prefix"]


@pytest.mark.parametrize(
    "transaction, messages",
    [
        (STANDARD, ["auth1_response_encryption", "exchange_command_encryption", "exchange_response_encryption"]),
        (FAST, ["exchange_command_encryption", "exchange_response_encryption"]),
    ],
)
def test_channel_messages(transaction, messages):
    keys = transaction["hkdf_volatile" if transaction is STANDARD else "hkdf_volatile_fast"]["keys"]
    device = SecureChannel(h(keys["SKReader"]), h(keys["SKDevice"]), ROLE_DEVICE)
    reader = SecureChannel(h(keys["SKReader"]), h(keys["SKDevice"]), ROLE_READER)
    for name in messages:
        kat = transaction[name]
        sender, receiver = (device, reader) if kat["sender"] == "user_device" else (reader, device)
        assert sender.send_counter == kat["counter"]
        sealed = sender.seal(h(kat["plaintext"]))
        assert sealed.hex() == kat["apdu_data"] == kat["ciphertext"] + kat["tag"]
        # The same bytes from the primitive directly, with the KAT's key and IV.
        assert AESGCM(h(kat["key"])).encrypt(h(kat["iv"]), h(kat["plaintext"]), None) == sealed
        assert receiver.open(sealed).hex() == kat["plaintext"]


def test_auth1_plaintext_fields():
    kat = STANDARD["auth1_response_encryption"]
    fields = tlv.decode_unique(h(kat["plaintext"]))
    assert {f"{tag:02x}": value.hex() for tag, value in fields.items()} == kat["plaintext_fields"]
    assert fields[0x5A] == CREDENTIAL_PUB
    assert fields[0x9E].hex() == STANDARD["ud_signature"]["signature_r_s"]
