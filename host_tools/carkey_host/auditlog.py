"""Reading the reader's audit log on the host: names for its codes (docs/STORAGE.md §4).

The codes are the firmware's (carkey_host.wire); the names are what the host prints."""

import time

from . import envelope as env
from .wire import KINDS, TRANSPORTS, codes

BATTERY = codes.EVENT_BATTERY  # a key fob's battery report: the result byte is the voltage in 20 mV steps

EVENTS = {codes.EVENT_TRANSACTION: "transaction", codes.EVENT_SHARE: "share-document",
          codes.EVENT_REVOCATION: "revocation-document", codes.EVENT_ADMIN: "admin-request",
          codes.EVENT_ENROLL: "enroll", codes.EVENT_CLOCK: "set-clock", codes.EVENT_BATTERY: "battery",
          codes.EVENT_MAINTENANCE: "maintenance"}
FAILURES = {codes.AUTH_FAILED: "authentication failed", codes.PROTOCOL_ERROR: "protocol error",
            codes.LINK_LOST: "link lost", codes.READER_FAULT: "reader fault"}


def command_name(command: int) -> str:
    return env.COMMAND_NAMES.get(command) or EVENTS.get(command) or f"0x{command:02x}"


def result_name(result: int) -> str:
    return env.RESULTS.get(result) or FAILURES.get(result) or f"0x{result:02x}"


def format_record(rec: dict) -> str:
    """One line: seq, UTC time, transport/kind, key slot, what, result."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(rec["time"]))
    slot = rec["slot"] if rec["slot"].strip("0") else "-"
    what, result = command_name(rec["command"]), result_name(rec["result"])
    if rec["command"] == BATTERY:
        what, result = "battery", f"{rec['result'] * 20 / 1000:.2f} V"
    return (f"#{rec['seq']:<4} {when}Z {TRANSPORTS.get(rec['transport'], '?'):>3}/{KINDS.get(rec['kind'], '?'):<8} "
            f"key {slot:<16} {what:<19} {result}")


def format_tally(rec: dict) -> str:
    """One line of the strangers' ring: interval start, transport/kind, what, result, count."""
    when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(rec["time"]))
    return (f"{when}Z+10min {TRANSPORTS.get(rec['transport'], '?'):>3}/{KINDS.get(rec['kind'], '?'):<8} "
            f"{command_name(rec['command']):<19} {result_name(rec['result'])} ×{rec['count']}")
