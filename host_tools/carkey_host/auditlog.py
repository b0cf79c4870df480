"""Reading the reader's audit log on the host: names for its codes (docs/STORAGE.md §4)."""

import time

from . import envelope as env

BATTERY = 0xF3  # a key fob's battery report: the result byte is the voltage in 20 mV steps

TRANSPORTS = {0: "car", 1: "nfc", 2: "ble", 3: "tcp", 4: "usb"}
KINDS = {0: "standard", 1: "fast", 2: "fallback", 3: "admin", 4: "passive"}
EVENTS = {0x00: "transaction", 0xE2: "share-document", 0xE3: "revocation-document", 0xE4: "admin-request",
          0xF1: "enroll", 0xF2: "set-clock", 0xF4: "maintenance"}
FAILURES = {0x80: "authentication failed", 0x81: "protocol error", 0x82: "link lost", 0x83: "reader fault"}


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
