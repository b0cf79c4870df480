"""A simulated Aliro user device (phone, fob, card) answering expedited-phase APDUs.

`UserDevice.process` takes one C-APDU and returns its R-APDU, so any transport
(an in-process reader, a socket, the BLE framing) can carry it. Every error answer
ends the current transaction: its keys are dropped and the application stays
selected, so a reader must start again with AUTH0 (or SELECT).
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from cryptography.hazmat.primitives.asymmetric import ec

from . import apdu, crypto, tlv
from .apdu import ApduError, CommandApdu
from .channel import ROLE_DEVICE, ChannelError, ChannelExhausted, SecureChannel
from .kpersistent_cache import KpersistentCache

EXPEDITED_AID = bytes.fromhex("A000000909ACCE5501")
GROUP_ID_LEN = 16
READER_IDENTIFIER_LEN = 32
TRANSACTION_ID_LEN = 16
CRYPTOGRAM_LEN = 64

TRANSACTION_STANDARD = 0x00
TRANSACTION_FAST = 0x01
POLICIES = (0x01, 0x02, 0x03)
AUTH1_SEND_KEY_SLOT = 0x00
AUTH1_SEND_PUBLIC_KEY = 0x01

# EXCHANGE answers end with a 2-byte length and a 2-byte status: 0000 is success.
EXCHANGE_STATUS_OK = bytes.fromhex("00020000")

# Called with the decrypted EXCHANGE TLVs; returns the TLVs to put before the status.
ExchangeHandler = Callable[[list[tlv.Tlv]], Iterable[tuple[int, bytes]]]


class LinkDropped(Exception):
    """The device stops answering (unknown reader group): the reader sees the link go."""


class State(enum.Enum):
    IDLE = "idle"  # nothing selected
    SELECTED = "selected"  # expedited AID selected, no transaction
    AUTH0_DONE = "auth0"  # ephemeral keys exchanged, AUTH1 expected
    AUTH0_FAST = "auth0-fast"  # cryptogram sent: AUTH1 or a fast EXCHANGE expected
    SECURE = "secure"  # secure channel open: EXCHANGE or CONTROL FLOW expected


@dataclass
class _Transaction:
    ephemeral_key: ec.EllipticCurvePrivateKey
    # None when the reader group is not trusted: AUTH1 then drops the link.
    transcript: crypto.Transcript | None
    channel: SecureChannel | None = None


def _default_ephemeral_key() -> ec.EllipticCurvePrivateKey:
    return crypto.generate_private_key()


class UserDevice:
    """An Aliro user device holding one credential.

    credential_private_key: the long-term P-256 credential key.
    trusted_readers: reader group id (16 bytes) -> reader group public key (65 bytes).
    kpersistent_cache: where Kpersistent keys live between transactions; the caller
        persists it (`KpersistentCache.save`/`load` or `to_dict`/`from_dict`).
    exchange_handler: carkey's vendor extension hook inside EXCHANGE.
    ephemeral_key_factory, random_bytes: the device's only sources of randomness,
        injectable so tests can fix them (signatures use RFC 6979 nonces).
    signaling_bitmap: the 5E value of the AUTH1 answer and the cryptogram.
    """

    def __init__(
        self,
        credential_private_key: ec.EllipticCurvePrivateKey,
        trusted_readers: Mapping[bytes, bytes] | None = None,
        *,
        kpersistent_cache: KpersistentCache | None = None,
        exchange_handler: ExchangeHandler | None = None,
        ephemeral_key_factory: Callable[[], ec.EllipticCurvePrivateKey] = _default_ephemeral_key,
        random_bytes: Callable[[int], bytes] = os.urandom,
        signaling_bitmap: bytes = b"\x00\x00",
        supported_versions: tuple[bytes, ...] = (crypto.PROTOCOL_VERSION,),
        fast_enabled: bool = True,
    ):
        if len(signaling_bitmap) != 2:
            raise ValueError("signaling bitmap is 2 bytes")
        self._credential_key = credential_private_key
        self.credential_public_key = crypto.public_key_bytes(credential_private_key)
        self.key_slot = crypto.key_slot(self.credential_public_key)
        self._trusted: dict[bytes, bytes] = {}
        for group_id, public_key in (trusted_readers or {}).items():
            self.trust_reader(group_id, public_key)
        self.kpersistent_cache = kpersistent_cache if kpersistent_cache is not None else KpersistentCache()
        self.exchange_handler = exchange_handler
        self._new_ephemeral_key = ephemeral_key_factory
        self._random_bytes = random_bytes
        self.signaling_bitmap = bytes(signaling_bitmap)
        self.supported_versions = tuple(bytes(v) for v in supported_versions)
        self.fast_enabled = fast_enabled
        self.proprietary_tlv = crypto.proprietary_tlv(versions=self.supported_versions)

        self.state = State.IDLE
        self._txn: _Transaction | None = None
        self._command_chain = apdu.CommandChain()
        self._response_chain = apdu.ResponseChain()
        # What the last transaction's reader told us, for the app's UI and for tests.
        self.last_reader_status: bytes | None = None
        self.last_control_flow: tuple[int, int] | None = None

    # --- trust store ---------------------------------------------------------

    def trust_reader(self, group_id: bytes, public_key: bytes) -> None:
        group_id, public_key = bytes(group_id), bytes(public_key)
        if len(group_id) != GROUP_ID_LEN:
            raise ValueError("reader group id is 16 bytes")
        crypto.public_key_from_bytes(public_key)  # refuse a key that is not on the curve
        self._trusted[group_id] = public_key

    def distrust_reader(self, group_id: bytes) -> None:
        self._trusted.pop(bytes(group_id), None)

    @property
    def trusted_readers(self) -> dict[bytes, bytes]:
        return dict(self._trusted)

    @property
    def current_reader_identifier(self) -> bytes | None:
        """The reader identifier of the transaction under way (None outside one)."""
        if self._txn is None or self._txn.transcript is None:
            return None
        return self._txn.transcript.reader_identifier

    # --- transport entry points -----------------------------------------------

    def select_response(self) -> bytes:
        """FCI: 6F [84 AID][A5 proprietary information]."""
        return tlv.encode(0x6F, tlv.encode(0x84, EXPEDITED_AID) + self.proprietary_tlv)

    def reset(self) -> None:
        """The field or link went away: forget the selection and the transaction."""
        self._end_transaction()
        self._command_chain.reset()
        self._response_chain.reset()
        self.state = State.IDLE

    def process(self, c_apdu: bytes) -> bytes:
        """Answer one C-APDU. Raises LinkDropped when the device would go silent."""
        try:
            command = apdu.parse_command(c_apdu)
            if command.ins == apdu.INS_GET_RESPONSE and command.cla == apdu.CLA_ISO:
                return self._get_response(command)
            self._response_chain.reset()
            if command.ins == apdu.INS_SELECT:
                self._command_chain.reset()  # SELECT always starts afresh
            if command.chained:
                self._check_header(command)
            whole = self._command_chain.feed(command)
            if whole is None:
                return apdu.status(apdu.SW_OK)
            return self._response_chain.start(self._dispatch(whole))
        except ApduError as error:
            self._fail()
            return apdu.status(error.sw)
        except LinkDropped:
            self.reset()
            raise

    # --- dispatch -------------------------------------------------------------

    _HANDLERS = {
        apdu.INS_SELECT: ("_select", apdu.CLA_ISO),
        apdu.INS_AUTH0: ("_auth0", apdu.CLA_PROPRIETARY),
        apdu.INS_AUTH1: ("_auth1", apdu.CLA_PROPRIETARY),
        apdu.INS_EXCHANGE: ("_exchange", apdu.CLA_PROPRIETARY),
        apdu.INS_CONTROL_FLOW: ("_control_flow", apdu.CLA_PROPRIETARY),
    }
    # Commands whose data may exceed one short APDU and so may come chained.
    _CHAINABLE = (apdu.INS_AUTH0, apdu.INS_AUTH1, apdu.INS_EXCHANGE)

    def _check_header(self, command: CommandApdu) -> str:
        """Name of the handler for ``command``, after the CLA, INS and P1/P2 checks."""
        base_cla = command.cla & ~apdu.CLA_CHAINING
        if base_cla not in (apdu.CLA_ISO, apdu.CLA_PROPRIETARY):
            raise ApduError(apdu.SW_BAD_CLA)
        if command.ins not in self._HANDLERS:
            raise ApduError(apdu.SW_WRONG_STATE, "instruction not supported")
        name, cla = self._HANDLERS[command.ins]
        if base_cla != cla or (command.chained and command.ins not in self._CHAINABLE):
            raise ApduError(apdu.SW_BAD_CLA)
        expected_p1p2 = (0x04, 0x00) if command.ins == apdu.INS_SELECT else (0x00, 0x00)
        if (command.p1, command.p2) != expected_p1p2:
            raise ApduError(apdu.SW_BAD_P1P2)
        return name

    def _dispatch(self, command: CommandApdu) -> bytes:
        name = self._check_header(command)
        return getattr(self, name)(command)

    def _get_response(self, command: CommandApdu) -> bytes:
        if not self._response_chain.pending:
            raise ApduError(apdu.SW_WRONG_STATE, "no answer waiting")
        if (command.p1, command.p2) != (0, 0):
            raise ApduError(apdu.SW_BAD_P1P2)
        return self._response_chain.next(command.le)

    def _end_transaction(self) -> None:
        # Drop every transaction key; the cache keeps only Kpersistent.
        self._txn = None

    def _fail(self) -> None:
        self._end_transaction()
        self._command_chain.reset()
        self._response_chain.reset()
        if self.state is not State.IDLE:
            self.state = State.SELECTED

    def _require(self, *states: State) -> _Transaction | None:
        if self.state not in states:
            raise ApduError(apdu.SW_WRONG_STATE, f"not expected in state {self.state.value}")
        return self._txn

    @staticmethod
    def _fields(data: bytes) -> dict[int, bytes]:
        try:
            return tlv.decode_unique(data)
        except tlv.TlvError as exc:
            raise ApduError(apdu.SW_MALFORMED, str(exc)) from exc

    @staticmethod
    def _field(fields: dict[int, bytes], tag: int, length: int) -> bytes:
        value = fields.get(tag)
        if value is None or len(value) != length:
            raise ApduError(apdu.SW_MALFORMED, f"tag {tag:02X} missing or not {length} bytes")
        return value

    # --- commands -------------------------------------------------------------

    def _select(self, command: CommandApdu) -> bytes:
        self._end_transaction()
        if command.data != EXPEDITED_AID:
            self.state = State.IDLE
            raise ApduError(apdu.SW_UNKNOWN_AID)
        self.state = State.SELECTED
        return self.select_response()

    def _auth0(self, command: CommandApdu) -> bytes:
        self._require(State.SELECTED)
        fields = self._fields(command.data)
        transaction_type = self._field(fields, 0x41, 1)[0]
        policy = self._field(fields, 0x42, 1)[0]
        version = self._field(fields, 0x5C, 2)
        reader_ephemeral = self._field(fields, 0x87, crypto.PUBLIC_KEY_LEN)
        transaction_id = self._field(fields, 0x4C, TRANSACTION_ID_LEN)
        reader_identifier = self._field(fields, 0x4D, READER_IDENTIFIER_LEN)
        if transaction_type not in (TRANSACTION_STANDARD, TRANSACTION_FAST) or policy not in POLICIES:
            raise ApduError(apdu.SW_MALFORMED, "unknown transaction type or policy")
        try:
            crypto.public_key_from_bytes(reader_ephemeral)
        except crypto.InvalidPublicKey as exc:
            raise ApduError(apdu.SW_MALFORMED, "reader ephemeral key is not a P-256 point") from exc
        if version not in self.supported_versions:
            raise ApduError(apdu.SW_CONDITIONS, "protocol version not supported")

        ephemeral_key = self._new_ephemeral_key()
        ephemeral_public = crypto.public_key_bytes(ephemeral_key)
        group_key = self._trusted.get(reader_identifier[:GROUP_ID_LEN])
        transcript = None
        if group_key is not None:
            transcript = crypto.Transcript(
                reader_group_public_key=group_key,
                reader_identifier=reader_identifier,
                reader_ephemeral_public_key=reader_ephemeral,
                device_ephemeral_public_key=ephemeral_public,
                transaction_id=transaction_id,
                flag=bytes([transaction_type, policy]),
                proprietary_tlv=self.proprietary_tlv,
                credential_public_key=self.credential_public_key,
                protocol_version=version,
            )
        # An untrusted reader still gets an ordinary-looking answer; AUTH1 drops it.
        self._txn = _Transaction(ephemeral_key, transcript)
        answer = tlv.encode(0x86, ephemeral_public)
        if transaction_type == TRANSACTION_STANDARD:
            self.state = State.AUTH0_DONE
            return answer

        kpersistent = self.kpersistent_cache.get(reader_identifier) if transcript else None
        if self.fast_enabled and kpersistent is not None:
            keys = crypto.derive_fast_keys(kpersistent, transcript)
            cryptogram = crypto.seal_cryptogram(
                keys.cryptogram_sk, crypto.cryptogram_plaintext(self.signaling_bitmap)
            )
            self._txn.channel = SecureChannel.from_keys(keys, ROLE_DEVICE)
            self.state = State.AUTH0_FAST
        else:
            # Indistinguishable from a real cryptogram: the reader falls back to AUTH1.
            cryptogram = self._random_bytes(CRYPTOGRAM_LEN)
            self.state = State.AUTH0_DONE
        return answer + tlv.encode(0x9D, cryptogram)

    def _auth1(self, command: CommandApdu) -> bytes:
        txn = self._require(State.AUTH0_DONE, State.AUTH0_FAST)
        fields = self._fields(command.data)
        mode = self._field(fields, 0x41, 1)[0]
        reader_signature = self._field(fields, 0x9E, crypto.SIGNATURE_LEN)
        if mode not in (AUTH1_SEND_KEY_SLOT, AUTH1_SEND_PUBLIC_KEY):
            raise ApduError(apdu.SW_MALFORMED, "unknown AUTH1 command parameters")
        transcript = txn.transcript
        if transcript is None:
            raise LinkDropped("reader group not trusted")
        # A reader certificate (tag 90) is not supported: the signature must verify
        # under the trusted reader group key itself.
        group_key = transcript.reader_group_public_key
        if not crypto.verify(group_key, crypto.signed_data(transcript, crypto.USAGE_READER), reader_signature):
            raise ApduError(apdu.SW_SECURITY, "reader signature does not verify")

        shared_x = crypto.ecdh_shared_x(txn.ephemeral_key, transcript.reader_ephemeral_public_key)
        kdh = crypto.derive_kdh(shared_x, transcript.transaction_id)
        keys = crypto.derive_standard_keys(kdh, transcript)
        self.kpersistent_cache.put(transcript.reader_identifier, crypto.derive_kpersistent(kdh, transcript))
        signature = crypto.sign(self._credential_key, crypto.signed_data(transcript, crypto.USAGE_DEVICE))
        identity = (
            tlv.encode(0x5A, self.credential_public_key)
            if mode == AUTH1_SEND_PUBLIC_KEY
            else tlv.encode(0x4E, self.key_slot)
        )
        plaintext = identity + tlv.encode(0x9E, signature) + tlv.encode(0x5E, self.signaling_bitmap)
        txn.channel = SecureChannel.from_keys(keys, ROLE_DEVICE)
        answer = txn.channel.seal(plaintext)
        self.state = State.SECURE
        return answer

    def _exchange(self, command: CommandApdu) -> bytes:
        txn = self._require(State.AUTH0_FAST, State.SECURE)
        if len(command.data) < 16:
            raise ApduError(apdu.SW_MALFORMED, "EXCHANGE shorter than a GCM tag")
        try:
            plaintext = txn.channel.open(command.data)
        except ChannelExhausted as exc:
            raise ApduError(apdu.SW_WRONG_STATE, "channel counter exhausted") from exc
        except ChannelError as exc:
            raise ApduError(apdu.SW_SECURITY, "EXCHANGE does not authenticate") from exc
        # The reader proved it holds the session keys: the channel is now open.
        self.state = State.SECURE
        try:
            items = tlv.decode_all(plaintext)
        except tlv.TlvError as exc:
            raise ApduError(apdu.SW_MALFORMED, str(exc)) from exc
        for tag, value in items:
            if tag == 0x97:
                if len(value) != 2:
                    raise ApduError(apdu.SW_MALFORMED, "reader status is 2 bytes")
                self.last_reader_status = value
        reply = b""
        if self.exchange_handler is not None:
            reply = tlv.encode_all(self.exchange_handler(items))
        try:
            return txn.channel.seal(reply + EXCHANGE_STATUS_OK)
        except ChannelExhausted as exc:
            raise ApduError(apdu.SW_WRONG_STATE, "channel counter exhausted") from exc

    def _control_flow(self, command: CommandApdu) -> bytes:
        if self.state is State.IDLE:
            raise ApduError(apdu.SW_WRONG_STATE)
        fields = self._fields(command.data)
        s1 = self._field(fields, 0x41, 1)[0]
        s2 = self._field(fields, 0x42, 1)[0]
        self.last_control_flow = (s1, s2)
        self._end_transaction()
        self.state = State.SELECTED
        return b""
