# carkey — board: virtual key fob for tests and the Unix port; button, LED and buzzer on the virtual board's GPIO.
# SPDX-License-Identifier: MIT

BOARD = "virtual_fob"
CHIP = "virtual"
KIND = "fob"
# The hardware layer: the virtual board's stand-ins (boards/virtual_hw/fob_platform.py).
PLATFORM = "virtual_hw.fob_platform"

# role: (gpio, active_low)
OUTPUTS = {
    "led": (4, False),
    "buzzer": (5, False),
}

# role: (gpio, active_low, pull)
INPUTS = {
    "button": (3, False, None),
}

BUSES = {}

# The cell through a 1:1 divider into ADC GPIO 1; below low_mv the fob flickers after each press.
BATTERY = {"adc": 1, "divider": 2, "low_mv": 3300}
