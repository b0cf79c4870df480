"""ISO 7816-4 command/response APDUs for the Aliro expedited phase, with chaining.

Only short APDUs are used: command data longer than 255 bytes travels as a chain
(CLA | 0x10 on every part but the last) and answers longer than 254 bytes come back
in parts, each ending in ``61xx`` until GET RESPONSE has fetched the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# Status words a user device answers with (PROTOCOL-NOTES.md).
SW_OK = 0x9000
SW_KEY_LOOKUP_FAILED = 0x6400
SW_MALFORMED = 0x6701
SW_BAD_CLA = 0x6800
SW_SECURITY = 0x6982  # bad signature, GCM failure
SW_CONDITIONS = 0x6985  # unsupported protocol version
SW_UNKNOWN_AID = 0x6A82
SW_BAD_P1P2 = 0x6A86
SW_WRONG_STATE = 0x6D00
SW_MORE_DATA = 0x6100  # | remaining byte count, 00 meaning 256 or more

CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80
CLA_CHAINING = 0x10

INS_SELECT = 0xA4
INS_AUTH0 = 0x80
INS_AUTH1 = 0x81
INS_EXCHANGE = 0xC9
INS_CONTROL_FLOW = 0x3C
INS_GET_RESPONSE = 0xC0

MAX_SHORT_DATA = 255
# An answer carries at most this much data, so data + SW fits a 256-byte frame.
MAX_RESPONSE_CHUNK = 254
# A chained command is refused beyond this many bytes: bounds a device's buffer.
MAX_CHAINED_DATA = 4096
# A reader stops collecting GET RESPONSE parts beyond this: bounds a reader's buffer.
MAX_COLLECTED_DATA = 65536


class ApduError(Exception):
    """A command that must be answered with the status word ``sw``."""

    def __init__(self, sw: int, message: str = ""):
        super().__init__(message or f"status {sw:04X}")
        self.sw = sw


@dataclass(frozen=True)
class CommandApdu:
    cla: int
    ins: int
    p1: int = 0
    p2: int = 0
    data: bytes = b""
    le: int | None = None  # expected answer length 1..256; None when absent

    @property
    def chained(self) -> bool:
        """True for a part of a chain that more parts follow."""
        return bool(self.cla & CLA_CHAINING)

    def to_bytes(self) -> bytes:
        if len(self.data) > MAX_SHORT_DATA:
            raise ValueError("command data longer than 255 bytes must be chained")
        out = bytearray([self.cla, self.ins, self.p1, self.p2])
        if self.data:
            out.append(len(self.data))
            out += self.data
        if self.le is not None:
            if not 1 <= self.le <= 256:
                raise ValueError("Le out of range")
            out.append(self.le & 0xFF)
        return bytes(out)


def parse_command(raw: bytes) -> CommandApdu:
    """Parse a short command APDU (ISO 7816-4 cases 1 to 4)."""
    raw = bytes(raw)
    if len(raw) < 4:
        raise ApduError(SW_MALFORMED, "command shorter than its header")
    cla, ins, p1, p2 = raw[:4]
    body = raw[4:]
    if not body:
        return CommandApdu(cla, ins, p1, p2)
    if len(body) == 1:
        return CommandApdu(cla, ins, p1, p2, le=body[0] or 256)
    lc = body[0]
    if lc == 0:
        raise ApduError(SW_MALFORMED, "extended-length commands are not supported")
    if len(body) == 1 + lc:
        return CommandApdu(cla, ins, p1, p2, body[1:])
    if len(body) == 2 + lc:
        return CommandApdu(cla, ins, p1, p2, body[1:-1], body[-1] or 256)
    raise ApduError(SW_MALFORMED, "Lc does not match the command length")


@dataclass(frozen=True)
class ResponseApdu:
    data: bytes
    sw: int

    def to_bytes(self) -> bytes:
        return bytes(self.data) + self.sw.to_bytes(2, "big")


def parse_response(raw: bytes) -> ResponseApdu:
    raw = bytes(raw)
    if len(raw) < 2:
        raise ApduError(SW_MALFORMED, "response shorter than a status word")
    return ResponseApdu(raw[:-2], int.from_bytes(raw[-2:], "big"))


def status(sw: int) -> bytes:
    return sw.to_bytes(2, "big")


def chain_command(command: CommandApdu) -> list[CommandApdu]:
    """Split a command into short APDUs; all but the last carry CLA | 0x10 and no Le."""
    data = bytes(command.data)
    if len(data) <= MAX_SHORT_DATA:
        return [command]
    parts = [data[i : i + MAX_SHORT_DATA] for i in range(0, len(data), MAX_SHORT_DATA)]
    head = [
        CommandApdu(command.cla | CLA_CHAINING, command.ins, command.p1, command.p2, part)
        for part in parts[:-1]
    ]
    return head + [
        CommandApdu(command.cla, command.ins, command.p1, command.p2, parts[-1], command.le)
    ]


class CommandChain:
    """Device side: joins chained parts into one command."""

    def __init__(self, limit: int = MAX_CHAINED_DATA):
        self._limit = limit
        self._head: CommandApdu | None = None
        self._data = bytearray()

    @property
    def pending(self) -> bool:
        return self._head is not None

    def reset(self) -> None:
        self._head = None
        self._data = bytearray()

    def feed(self, command: CommandApdu) -> CommandApdu | None:
        """The whole command once the last part arrives; None while parts are still due.

        Raises ApduError if a part does not continue the chain or the total is too long;
        the chain is dropped either way.
        """
        head = self._head
        if head is not None and (
            (head.cla & ~CLA_CHAINING) != (command.cla & ~CLA_CHAINING)
            or (head.ins, head.p1, head.p2) != (command.ins, command.p1, command.p2)
        ):
            self.reset()
            raise ApduError(SW_WRONG_STATE, "command does not continue the chain")
        if len(self._data) + len(command.data) > self._limit:
            self.reset()
            raise ApduError(SW_MALFORMED, "chained command too long")
        if command.chained:
            if head is None:
                self._head = command
            self._data += command.data
            return None
        if head is None:
            return command
        whole = CommandApdu(
            command.cla, command.ins, command.p1, command.p2, bytes(self._data + command.data), command.le
        )
        self.reset()
        return whole


class ResponseChain:
    """Device side: hands out a long answer in parts through 61xx and GET RESPONSE."""

    def __init__(self, chunk: int = MAX_RESPONSE_CHUNK):
        self._chunk = chunk
        self._rest = b""
        self._sw = SW_OK

    @property
    def pending(self) -> bool:
        return bool(self._rest)

    def reset(self) -> None:
        self._rest = b""

    def start(self, data: bytes, sw: int = SW_OK) -> bytes:
        """The first R-APDU for an answer of any length."""
        self._rest = bytes(data)
        self._sw = sw
        return self.next(self._chunk)

    def next(self, le: int | None) -> bytes:
        """The next part for a GET RESPONSE asking for ``le`` bytes (None: as many as fit)."""
        size = min(self._chunk, le or 256)
        part, self._rest = self._rest[:size], self._rest[size:]
        if self._rest:
            remaining = len(self._rest)
            return part + status(SW_MORE_DATA | (remaining if remaining < 256 else 0))
        return part + status(self._sw)


def transceive(send: Callable[[bytes], bytes], command: CommandApdu) -> ResponseApdu:
    """Reader side: send a command of any length and collect the whole answer.

    ``send`` carries one C-APDU and returns its R-APDU. A chain part answered with
    anything but 9000 ends the exchange with that answer. A device that keeps
    answering 61xx without data, or past MAX_COLLECTED_DATA, raises ApduError.
    """
    parts = chain_command(command)
    for part in parts[:-1]:
        answer = parse_response(send(part.to_bytes()))
        if answer.sw != SW_OK:
            return answer
    answer = parse_response(send(parts[-1].to_bytes()))
    data = bytearray(answer.data)
    while answer.sw & 0xFF00 == SW_MORE_DATA:
        le = answer.sw & 0xFF or 256
        answer = parse_response(send(CommandApdu(CLA_ISO, INS_GET_RESPONSE, le=le).to_bytes()))
        if not answer.data or len(data) + len(answer.data) > MAX_COLLECTED_DATA:
            raise ApduError(SW_MALFORMED, "GET RESPONSE made no progress or ran too long")
        data += answer.data
    return ResponseApdu(bytes(data), answer.sw)
