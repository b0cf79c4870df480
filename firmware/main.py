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

import board

if getattr(board, "KIND", "car") == "fob":
    from carkey.fob import app
else:
    from carkey.ecu import app

fob = getattr(board, "KIND", "car") == "fob"
if sys.platform == "esp32" and (fob or app.safe_boot(board)):
    micropython.kbd_intr(3)  # the car application decides for itself (installed mode)

if app.safe_boot(board):
    print("carkey: safe boot (SAFE_BOOT_PIN held low): application not started")
else:
    app.run(board)
