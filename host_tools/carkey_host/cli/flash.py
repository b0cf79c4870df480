"""`carkey flash`: write a MicroPython firmware image to an ESP32 through its ROM bootloader (esptool)."""

import argparse
import json
import sys

from .. import flash as lib
from . import out as _out

EPILOG = """\
Flashes MicroPython itself (once per board, or to upgrade it); `carkey deploy` then
installs carkey on top. Get the image from micropython.org/download: the full .bin
for ESP32_GENERIC, ESP32_GENERIC_S3 or ESP32_GENERIC_C3, v1.21 or later (which
version and why: docs/HARDWARE.md §1.9). It is written at 0x1000 on
an ESP32 and at 0x0 on an S3 or C3; the chip is detected unless --chip names it, and
an image built for another chip is refused.

If nothing answers: hold BOOT, tap EN/RST, release BOOT, and run the command again.

examples:
  carkey flash --port /dev/ttyUSB0 --firmware ESP32_GENERIC-v1.26.0.bin --erase
  carkey flash --port /dev/ttyACM0 --firmware ESP32_GENERIC_S3.bin --chip esp32s3 --baud 921600

exit codes: 0 done, 1 error, 2 bad usage or bad image file, 4 port missing,
  5 port busy, 6 no bootloader answered
"""


def do_flash(args):
    steps = {"connect_esp": "connecting to the bootloader", "run_stub": "loading the flasher stub",
             "change_baud": f"switching to {args.baud} baud", "attach_flash": "attaching the flash",
             "erase_flash": "erasing the whole flash", "write_flash": "writing and verifying the image",
             "reset_chip": "resetting the board"}
    status = None
    if not args.json and sys.stderr.isatty():
        from rich.console import Console

        status = Console(stderr=True).status("checking the image")
        status.start()

    def progress(step):
        if status is not None:
            status.update(steps.get(step, step) + f" on {args.port}")

    try:
        result = lib.flash(args.port, args.firmware, chip=args.chip, baud=args.baud, erase=args.erase,
                           attempts=args.connect_attempts, progress=progress)
    finally:
        if status is not None:
            status.stop()
    if args.json:
        _out(json.dumps(result.as_dict()))
    else:
        _out(f"flashed {args.firmware} ({result.size} bytes) to the {result.chip} on {result.port} at "
             f"0x{result.offset:x}{' after a full erase' if result.erased else ''} in {result.seconds:.1f} s")
        _out(f"next: carkey deploy --port {result.port} --board BOARD")
    return 0


def register(sub):
    p = sub.add_parser(
        "flash",
        help="write a MicroPython firmware image to an ESP32 (esptool, chip detection)",
        description="Write a MicroPython firmware .bin to an ESP32, ESP32-S3 or ESP32-C3 over its ROM serial bootloader.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--port", required=True, metavar="PORT", help="serial port (/dev/ttyUSB0, /dev/ttyACM0, COM3)")
    p.add_argument("--firmware", required=True, metavar="FILE.bin", help="the full MicroPython firmware image")
    p.add_argument("--erase", action="store_true", help="erase the whole flash first (also wipes the board's files)")
    p.add_argument("--chip", choices=("auto",) + lib.CHIPS, default="auto", help="chip type (default: detect it)")
    p.add_argument("--baud", type=int, choices=lib.BAUDS, default=lib.DEFAULT_BAUD, metavar="N",
                   help=f"baud rate for writing (default {lib.DEFAULT_BAUD}; "
                   f"one of {', '.join(map(str, lib.BAUDS))}); connecting always uses 115200")
    p.add_argument("--connect-attempts", type=int, default=lib.DEFAULT_CONNECT_ATTEMPTS, metavar="N",
                   help=f"bootloader sync attempts before giving up (default {lib.DEFAULT_CONNECT_ATTEMPTS})")
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")
    p.set_defaults(func=do_flash)
