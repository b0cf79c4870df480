# carkey — hardware layer: the one place firmware reaches GPIO, buses and the tick clock.
# SPDX-License-Identifier: MIT
#
# Which hardware a board has is its description's business: PLATFORM names the
# module whose Platform class the application uses (boards/README.md). The car's
# default is carkey.hw.platform, the key fob's carkey.hw.fob_platform; the rule
# and the safe-boot check live here so neither application loads the other's.


def named_platform(board, default):
    """The Platform the board description names (PLATFORM: a module with a Platform class), else default()."""
    name = getattr(board, "PLATFORM", None)
    if name is None:
        return default()
    return __import__(name, None, None, ("Platform",)).Platform()


def safe_boot(board):
    """Whether the board's SAFE_BOOT_PIN (if it names one) is held low right now."""
    pin = getattr(board, "SAFE_BOOT_PIN", None)
    if pin is None:
        return False
    try:
        from machine import Pin
    except ImportError:
        return False
    return Pin(pin, Pin.IN, Pin.PULL_UP).value() == 0
