# carkey — board entry point: run the ECU application unless safe boot is asked for.
# SPDX-License-Identifier: MIT
#
# Holding the board's SAFE_BOOT_PIN low while it starts (the BOOT button on ESP32
# dev boards) skips the application: the REPL stays free for recovery and deploys
# and no output is driven. The relays stay off: the board's pull resistors hold
# them until the application builds its door controller.

import sys

if sys.platform == "esp32":  # as in boot.py: pyexec turned Ctrl-C on again for this file
    while True:
        try:
            import micropython

            micropython.kbd_intr(-1)
            break
        except KeyboardInterrupt:
            pass


def _installed():
    # Any copy of the installed record, intact or not, as carkey.ecu.admin.installed
    # counts it, found without loading more code: loading is what may have failed.
    import os

    for suffix in (".a", ".b"):
        try:
            os.stat("/state/installed" + suffix)
            return True
        except OSError:
            pass
    return False


def _safe_boot():
    # SAFE_BOOT_PIN held: main.py ends at the REPL, for whoever is inside the car.
    print("carkey: safe boot (SAFE_BOOT_PIN held low): application not started")
    if sys.platform == "esp32":
        micropython.kbd_intr(3)


try:
    import board

    fob = getattr(board, "KIND", "car") == "fob"
    if fob:
        from carkey.fob import app
    else:
        from carkey.ecu import app
    if app.safe_boot(board):
        _safe_boot()
    else:
        if sys.platform == "esp32" and fob:
            micropython.kbd_intr(3)  # the car application decides for itself (installed mode)
        app.run(board)
except SystemExit:
    raise  # a reset the application asked for (the virtual board's machine.reset)
except BaseException as e:  # noqa: B036 - installed, nothing may reach the REPL
    # The application guards its own run (carkey.ecu.app.run), but not what comes before:
    # a module that does not load (too little heap, a damaged file), a failure before its
    # guard, a Ctrl-C must not leave an installed car at the REPL either (docs/SECURITY.md
    # §3.9). Reset and try again; the safe-boot button still stops the loop (read here
    # through the hardware layer alone: the application may be what did not load), and a
    # factory board shows the error at the REPL.
    if not _installed():
        raise
    print("carkey: application failed to start (%s): resetting" % type(e).__name__)
    if isinstance(e, MemoryError):
        print("carkey: too little heap for the car application on this board (docs/HARDWARE.md, 'Which board fits')")
    try:
        from carkey.hw.platform import safe_boot

        held = safe_boot(board)
    except BaseException:  # noqa: B036 - board or platform did not load either
        held = False
    if held:
        _safe_boot()
    else:
        import time

        try:
            time.sleep(1)  # a board that cannot start retries once a second, not in a tight loop
        except BaseException:  # noqa: B036 - a Ctrl-C here resets all the same
            pass
        if sys.platform == "esp32":
            import machine

            machine.reset()
        raise SystemExit  # the virtual board's bridge starts a fresh interpreter, as at a reset
