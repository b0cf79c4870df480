"""Serial-port checks shared by `carkey deploy` and `carkey flash`, with their exit codes.

Exit codes (beyond the CLI's 0 ok, 1 error, 2 usage, 3 refused):
  4 the port does not exist      5 the port is busy (another program holds it)
  6 nothing answered on the port 7 not enough space on the board
  8 a file on the board does not match after copying
"""

import os
import time

import serial

from .errors import CarkeyError

EXIT_PORT_MISSING = 4
EXIT_PORT_BUSY = 5
EXIT_NO_ANSWER = 6
EXIT_NO_SPACE = 7
EXIT_HASH_MISMATCH = 8
BUSY_GRACE_S = 1.0  # how long a port may look busy before it counts as busy


class PortMissing(CarkeyError):
    exit_code = EXIT_PORT_MISSING


class PortBusy(CarkeyError):
    exit_code = EXIT_PORT_BUSY


class NoAnswer(CarkeyError):
    exit_code = EXIT_NO_ANSWER


def _busy(text):
    return "exclusively lock" in text or "Resource temporarily unavailable" in text or "busy" in text.lower()


def open_exclusive(port, baudrate=115200, timeout=0):
    """Open `port` for this program alone, or raise PortMissing or PortBusy.

    A lock can outlive its holder by a moment: a process forked while the port was open
    keeps it until it execs (the virtual board starts one at every soft reset, e.g. right
    after a deploy), and a board on native USB re-enumerates after a reset. So a busy
    port is tried again for BUSY_GRACE_S; a program that really holds it still does then.
    Checking first and opening afterwards would leave a gap for exactly that lock.
    """
    if not os.path.exists(port):
        hint = " (a dangling link: is `carkey vboard` still running?)" if os.path.islink(port) else ""
        raise PortMissing(f"serial port {port} does not exist{hint}; check the cable, or list ports with "
                          "`python -m serial.tools.list_ports`")
    deadline = time.monotonic() + BUSY_GRACE_S
    while True:
        try:
            return serial.Serial(port, baudrate, exclusive=True, timeout=timeout)
        except serial.SerialException as e:
            text = str(e)
        if not _busy(text) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if _busy(text):
        raise PortBusy(f"serial port {port} is busy: close the other program using it "
                       "(a serial monitor, mpremote repl, another carkey)") from None
    if "Permission denied" in text:
        raise PortBusy(f"no permission to open {port}: join the dialout group or fix its mode") from None
    raise PortMissing(f"cannot open serial port {port}: {text}")


def check_port(port):
    """Raise PortMissing or PortBusy unless `port` can be opened exclusively right now
    (for tools that open the port themselves afterwards: esptool, mpremote)."""
    open_exclusive(port).close()
