# carkey — the virtual board's way out to its host: device files the host opened, a host-side report line.
# SPDX-License-Identifier: MIT
#
# On the virtual board "/" is the flash directory, so a host path such as the PN532
# pty's /tmp/carkey-nfc cannot be opened by name there. The host bridge
# (carkey_host.vboard) opens each device file on the host and passes its descriptor
# as NAME_FD, and gives the interpreter a pipe, CARKEY_HOST_LOG_FD, whose lines the
# host prints (`carkey vboard`): what a person at the host must see even when nobody
# watches the board's REPL. Without the bridge (the virtual car process runs in the
# host's own filesystem) a device is opened by its path and reports go nowhere.

import os

_LOG = "CARKEY_HOST_LOG_FD"
_log = None


def on_vboard():
    return bool(os.getenv(_LOG))


def device(name):
    """What to open for the device in environment variable `name`: the descriptor the
    host opened, or the path itself off the virtual board. None if `name` is unset."""
    path = os.getenv(name)
    if not path:
        return None
    fd = os.getenv(name + "_FD")
    if fd:
        return int(fd)
    if on_vboard():
        raise OSError(2, "%s=%s could not be opened on the host (its stand-in not running?)" % (name, path))
    return path


def report(text):
    """One line to the host's log (nothing off the virtual board)."""
    global _log
    fd = os.getenv(_LOG)
    if not fd:
        return
    try:
        if _log is None:
            _log = open(int(fd), "wb")
        _log.write(text.replace("\n", " ").encode() + b"\n")
        _log.flush()
    except OSError:
        pass  # the host went away: the board carries on


BRIDGE = "@bridge "  # a report line the bridge obeys rather than prints


def bridge(command):
    """Ask the virtual board's bridge for what an ESP32's hardware does: "kbd_intr N"
    (the serial port's interrupt character, -1: none), "watchdog MS" (reset the board
    in MS milliseconds). Off the virtual board: nothing."""
    report(BRIDGE + command)
