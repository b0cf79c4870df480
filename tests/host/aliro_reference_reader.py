"""A reference Aliro reader on CPython, for driving user devices in tests.

It speaks the expedited phase (SELECT, AUTH0 standard or fast, AUTH1 in public-key or
key-slot mode, EXCHANGE, CONTROL FLOW) over any `send(c_apdu) -> r_apdu` callable,
using the `cryptography`-based carkey_host.aliro modules and no firmware code, so
firmware tests can compare the ESP32 reader with it. Like carkey's car, it refuses a
credential missing from its key store when it is given one (`enrolled`).
"""

from __future__ import annotations

import dataclasses
import hmac
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

from cryptography.hazmat.primitives.asymmetric import ec

from carkey_host.aliro import apdu, crypto, tlv
from carkey_host.aliro.apdu import CommandApdu
from carkey_host.aliro.channel import ROLE_READER, ChannelError, SecureChannel
from carkey_host.aliro.user_device import EXCHANGE_STATUS_OK, EXPEDITED_AID

Send = Callable[[bytes], bytes]

KIND_STANDARD = "standard"
KIND_FAST = "fast"
KIND_FALLBACK = "fallback"  # a fast request that fell back to AUTH1


class DeviceError(Exception):
    """The user device answered a command with a status word other than 9000."""

    def __init__(self, command: str, sw: int):
        super().__init__(f"{command} answered {sw:04X}")
        self.command = command
        self.sw = sw


class ReaderRefused(Exception):
    """The reader refuses the device: bad answer, bad signature, unknown credential."""


@dataclass
class ReaderResult:
    kind: str
    credential_public_key: bytes
    keys: crypto.SessionKeys
    # Each EXCHANGE answer's decrypted data, the 00 02 00 00 status trailer removed.
    exchange_replies: list[bytes] = field(default_factory=list)


class ReferenceReader:
    def __init__(
        self,
        group_private_key: ec.EllipticCurvePrivateKey,
        reader_identifier: bytes,
        *,
        enrolled: Iterable[bytes] | None = None,
        policy: int = 0x02,
        ephemeral_key_factory: Callable[[], ec.EllipticCurvePrivateKey] = crypto.generate_private_key,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ):
        self._group_key = group_private_key
        self.group_public_key = crypto.public_key_bytes(group_private_key)
        self.reader_identifier = bytes(reader_identifier)
        self.enrolled = None if enrolled is None else [bytes(k) for k in enrolled]
        self.policy = policy
        self._new_ephemeral_key = ephemeral_key_factory
        self._random_bytes = random_bytes
        # Kpersistent per credential public key, learnt in standard transactions.
        self.kpersistent: dict[bytes, bytes] = {}

    @property
    def group_id(self) -> bytes:
        return self.reader_identifier[:16]

    # --- one transaction ---------------------------------------------------------

    def transact(
        self,
        send: Send,
        *,
        fast: bool = False,
        auth1_mode: int = 0x01,
        exchanges: Iterable[Iterable[tuple[int, bytes]]] = ([(0x97, b"\x01\x01")],),
        control_flow: tuple[int, int] | None = (0x01, 0x00),
    ) -> ReaderResult:
        proprietary = self.select(send)
        transaction_type = 0x01 if fast else 0x00
        ephemeral = self._new_ephemeral_key()
        transaction_id = self._random_bytes(16)
        fields = self._command(
            send,
            "AUTH0",
            CommandApdu(
                apdu.CLA_PROPRIETARY,
                apdu.INS_AUTH0,
                data=tlv.encode_all(
                    [
                        (0x41, bytes([transaction_type])),
                        (0x42, bytes([self.policy])),
                        (0x5C, crypto.PROTOCOL_VERSION),
                        (0x87, crypto.public_key_bytes(ephemeral)),
                        (0x4C, transaction_id),
                        (0x4D, self.reader_identifier),
                    ]
                ),
                le=256,
            ),
            unique=True,
        )
        device_ephemeral = fields.get(0x86, b"")
        try:
            crypto.public_key_from_bytes(device_ephemeral)
        except crypto.InvalidPublicKey as exc:
            raise ReaderRefused("AUTH0 answer has no valid device ephemeral key") from exc
        transcript = crypto.Transcript(
            reader_group_public_key=self.group_public_key,
            reader_identifier=self.reader_identifier,
            reader_ephemeral_public_key=crypto.public_key_bytes(ephemeral),
            device_ephemeral_public_key=device_ephemeral,
            transaction_id=transaction_id,
            flag=bytes([transaction_type, self.policy]),
            proprietary_tlv=proprietary,
        )

        result = None
        if fast:
            cryptogram = fields.get(0x9D)
            if cryptogram is None or len(cryptogram) != 64:
                raise ReaderRefused("fast AUTH0 answer without a 64-byte cryptogram")
            result = self._match_cryptogram(transcript, cryptogram)
        if result is None:
            result, channel = self._auth1(send, transcript, ephemeral, auth1_mode)
            result.kind = KIND_FALLBACK if fast else KIND_STANDARD
        else:
            channel = SecureChannel.from_keys(result.keys, ROLE_READER)

        for plaintext in exchanges:
            result.exchange_replies.append(self.exchange(send, channel, tlv.encode_all(plaintext)))
        if control_flow is not None:
            self.control_flow(send, *control_flow)
        return result

    # --- steps ---------------------------------------------------------------------

    def select(self, send: Send) -> bytes:
        """SELECT the expedited AID; returns the A5 object that enters every salt."""
        answer = self._command(
            send, "SELECT", CommandApdu(apdu.CLA_ISO, apdu.INS_SELECT, 0x04, 0x00, EXPEDITED_AID, le=256)
        )
        try:
            fci = tlv.decode_one(answer)
            inner = tlv.decode_unique(fci.value) if fci.tag == 0x6F else {}
            versions = tlv.decode_unique(inner.get(0xA5, b"")).get(0x5C, b"")
        except tlv.TlvError as exc:
            raise ReaderRefused(f"malformed SELECT answer: {exc}") from exc
        if inner.get(0x84) != EXPEDITED_AID or 0xA5 not in inner:
            raise ReaderRefused("SELECT answer lacks the AID or proprietary information")
        if crypto.PROTOCOL_VERSION not in [versions[i : i + 2] for i in range(0, len(versions), 2)]:
            raise ReaderRefused("device does not support protocol version 0100")
        # Strict decoding means re-encoding gives back exactly the bytes sent.
        return tlv.encode(0xA5, inner[0xA5])

    def _match_cryptogram(self, transcript: crypto.Transcript, cryptogram: bytes) -> ReaderResult | None:
        for credential, kpersistent in self.kpersistent.items():
            candidate = dataclasses.replace(transcript, credential_public_key=credential)
            keys = crypto.derive_fast_keys(kpersistent, candidate)
            try:
                plaintext = crypto.open_cryptogram(keys.cryptogram_sk, cryptogram)
            except crypto.CryptogramError:
                continue
            if not self._is_enrolled(credential):
                raise ReaderRefused("cryptogram matched a credential that is no longer enrolled")
            if len(plaintext) != 48:
                raise ReaderRefused("cryptogram plaintext has the wrong size")
            return ReaderResult(KIND_FAST, credential, keys)
        return None

    def _auth1(
        self, send: Send, transcript: crypto.Transcript, ephemeral: ec.EllipticCurvePrivateKey, mode: int
    ) -> tuple[ReaderResult, SecureChannel]:
        signature = crypto.sign(self._group_key, crypto.signed_data(transcript, crypto.USAGE_READER))
        encrypted = self._command(
            send,
            "AUTH1",
            CommandApdu(
                apdu.CLA_PROPRIETARY,
                apdu.INS_AUTH1,
                data=tlv.encode_all([(0x41, bytes([mode])), (0x9E, signature)]),
                le=256,
            ),
        )
        shared_x = crypto.ecdh_shared_x(ephemeral, transcript.device_ephemeral_public_key)
        kdh = crypto.derive_kdh(shared_x, transcript.transaction_id)
        keys = crypto.derive_standard_keys(kdh, transcript)
        channel = SecureChannel.from_keys(keys, ROLE_READER)
        try:
            fields = tlv.decode_unique(channel.open(encrypted))
        except (ChannelError, tlv.TlvError) as exc:
            raise ReaderRefused(f"AUTH1 answer does not decrypt: {exc}") from exc

        credential = self._credential_from(fields, mode)
        device_signature = fields.get(0x9E, b"")
        if not crypto.verify(credential, crypto.signed_data(transcript, crypto.USAGE_DEVICE), device_signature):
            raise ReaderRefused("device signature does not verify")
        if not self._is_enrolled(credential):
            raise ReaderRefused("credential not enrolled")
        with_credential = dataclasses.replace(transcript, credential_public_key=credential)
        self.kpersistent[credential] = crypto.derive_kpersistent(kdh, with_credential)
        # The AUTH1 answer used the device's counter 1; EXCHANGE continues on this channel.
        return ReaderResult(KIND_STANDARD, credential, keys), channel

    def _credential_from(self, fields: dict[int, bytes], mode: int) -> bytes:
        if mode == 0x01:
            credential = fields.get(0x5A, b"")
            try:
                crypto.public_key_from_bytes(credential)
            except crypto.InvalidPublicKey as exc:
                raise ReaderRefused("AUTH1 answer has no valid credential public key") from exc
            return credential
        slot = fields.get(0x4E, b"")
        for candidate in self.enrolled or ():
            if len(slot) == 8 and hmac.compare_digest(crypto.key_slot(candidate), slot):
                return candidate
        raise ReaderRefused("key slot matches no enrolled credential")

    def _is_enrolled(self, credential: bytes) -> bool:
        if self.enrolled is None:
            return True
        return any(hmac.compare_digest(credential, known) for known in self.enrolled)

    def exchange(self, send: Send, channel: SecureChannel, plaintext: bytes) -> bytes:
        """One EXCHANGE; returns the answer's data without the status trailer."""
        encrypted = self._command(
            send,
            "EXCHANGE",
            CommandApdu(apdu.CLA_PROPRIETARY, apdu.INS_EXCHANGE, data=channel.seal(plaintext), le=256),
        )
        try:
            answer = channel.open(encrypted)
        except ChannelError as exc:
            raise ReaderRefused("EXCHANGE answer does not decrypt") from exc
        if answer[-4:] != EXCHANGE_STATUS_OK:
            raise ReaderRefused(f"EXCHANGE status trailer {answer[-4:].hex()}")
        return answer[:-4]

    def control_flow(self, send: Send, s1: int, s2: int) -> None:
        data = tlv.encode_all([(0x41, bytes([s1])), (0x42, bytes([s2]))])
        self._command(send, "CONTROL FLOW", CommandApdu(apdu.CLA_PROPRIETARY, apdu.INS_CONTROL_FLOW, data=data))

    @staticmethod
    def _command(send: Send, name: str, command: CommandApdu, unique: bool = False):
        answer = apdu.transceive(send, command)
        if answer.sw != apdu.SW_OK:
            raise DeviceError(name, answer.sw)
        if not unique:
            return answer.data
        try:
            return tlv.decode_unique(answer.data)
        except tlv.TlvError as exc:
            raise ReaderRefused(f"malformed {name} answer: {exc}") from exc
