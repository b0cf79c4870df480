"""carkey's extension inside EXCHANGE (docs/PROTOCOL.md §4), host side.

Written from the spec, independently of the firmware: the envelope `E1`, command
requests `C2`, results `C4`, the reader's hello `C0`/`C1`. Command ids and result codes
are the firmware's own (carkey_host.wire); their names here are what the host prints.
"""

from dataclasses import dataclass

from .aliro import tlv
from .wire import codes

ENVELOPE = 0xE1
HELLO_VERSION = 0xC0
CAR_STATE = 0xC1
COMMAND_REQUEST = 0xC2
SHARE_DOCUMENT = 0xC3
COMMAND_RESULT = 0xC4
REVOCATION_DOCUMENT = 0xC5
DOCUMENT_RESULT = 0xC6
SHARE_TAG = 0xE2
REVOCATION_TAG = 0xE3
READER_STATUS = 0x97

COMMANDS = {
    "lock": codes.CMD_LOCK,
    "unlock": codes.CMD_UNLOCK,
    "unlock-driver": codes.CMD_UNLOCK_DRIVER,
    "trunk": codes.CMD_TRUNK,
    "drive": codes.CMD_DRIVE_ENABLE,
    "locate": codes.CMD_LOCATE,
    "status": codes.CMD_STATUS,
}
COMMAND_NAMES = {v: k for k, v in COMMANDS.items()}

RESULTS = {
    codes.OK: "ok",
    codes.NOT_ENTITLED: "not entitled",
    codes.OUTSIDE_VALIDITY: "outside validity window",
    codes.OUTSIDE_SCHEDULE: "outside schedule",
    codes.USE_LIMIT_REACHED: "use limit reached",
    codes.NEEDS_STANDARD: "needs a standard transaction",
    codes.KEY_SUSPENDED: "key suspended",
    codes.KEY_REVOKED: "key revoked or unknown",
    codes.LOCKED_OUT: "locked out",
    codes.CLOCK_UNTRUSTED: "clock not trusted",
    codes.BAD_REQUEST: "unknown command or bad argument",
    codes.DOCUMENT_REFUSED: "document refused",
    codes.HARDWARE_FAULT: "hardware fault",
    codes.NO_ROOM: "no room (key store or revocation list full)",
    codes.DOCUMENT_SUPERSEDED: "document superseded (a newer one for this key was applied, or this one already was)",
}
OUTSIDE_VALIDITY = codes.OUTSIDE_VALIDITY
# Share results after which the document is never presented again: accepted, or refused
# for good (key revoked, document refused, superseded).
SHARE_FINAL = (codes.OK, codes.KEY_REVOKED, codes.DOCUMENT_REFUSED, codes.DOCUMENT_SUPERSEDED)


@dataclass(frozen=True)
class CarState:
    locked: bool
    doors_open: int  # bit 0 driver, 1 passenger, 2 rear left, 3 rear right, 4 trunk
    drive_minutes: int

    @classmethod
    def parse(cls, value: bytes) -> "CarState":
        if len(value) != 3:
            raise tlv.TlvError(f"car state is 3 bytes, got {len(value)}")
        return cls(bool(value[0]), value[1], value[2])

    def describe(self) -> str:
        doors = [n for bit, n in enumerate(("driver", "passenger", "rear-left", "rear-right", "trunk"))
                 if self.doors_open >> bit & 1]
        text = "locked" if self.locked else "unlocked"
        text += ", open: " + (",".join(doors) if doors else "none")
        if self.drive_minutes:
            text += f", drive enabled {self.drive_minutes} min"
        return text


@dataclass(frozen=True)
class CommandResult:
    command: int
    result: int
    state: CarState

    @property
    def ok(self) -> bool:
        return self.result == 0

    def describe(self) -> str:
        name = COMMAND_NAMES.get(self.command, f"0x{self.command:02x}")
        return f"{name}: {RESULTS.get(self.result, f'result 0x{self.result:02x}')} ({self.state.describe()})"


def command_request(command: int, argument: bytes = b"") -> tuple[int, bytes]:
    return COMMAND_REQUEST, bytes([command]) + argument


def envelope(items) -> tuple[int, bytes]:
    return ENVELOPE, tlv.encode_all(items)


def open_envelope(items) -> list:
    """The TLVs inside the E1 envelope among decrypted EXCHANGE items (empty when absent)."""
    for tag, value in items:
        if tag == ENVELOPE:
            return tlv.decode_all(value)
    return []


def parse_result(value: bytes) -> CommandResult:
    if len(value) != 5:
        raise tlv.TlvError(f"command result is 5 bytes, got {len(value)}")
    return CommandResult(value[0], value[1], CarState.parse(value[2:]))


def parse_document_result(value: bytes) -> tuple[int, int]:
    """(document tag E2|E3, result code) of a C6 object."""
    if len(value) != 2 or value[0] not in (SHARE_TAG, REVOCATION_TAG):
        raise tlv.TlvError(f"malformed document result {value.hex()}")
    return value[0], value[1]
