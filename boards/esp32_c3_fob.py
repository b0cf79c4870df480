# carkey — board: ESP32-C3 key fob (BLE only): one button, a LED and a buzzer.
# SPDX-License-Identifier: MIT
#
# Avoided: 2, 8, 9 (strapping), 11 (flash supply), 12-17 (flash), 18 and 19 (USB),
# 20 and 21 (console UART).

BOARD = "esp32_c3_fob"
CHIP = "esp32c3"
KIND = "fob"

# Held low at start-up (the BOOT button): main.py skips the application (recovery, deploys).
SAFE_BOOT_PIN = 9

# role: (gpio, active_low)
OUTPUTS = {
    "led": (4, False),
    "buzzer": (5, False),
}

# role: (gpio, active_low, pull). The button shorts to ground.
INPUTS = {
    "button": (3, True, "up"),
}

BUSES = {}

# The LiPo cell through a 1M/1M divider (100 nF across the lower resistor) into
# ADC1 channel 1 (GPIO 1); below low_mv the LED flickers after each press (docs/FOB.md).
BATTERY = {"adc": 1, "divider": 2, "low_mv": 3500}

# Gesture -> command (unlock, lock, trunk); button timing in ms (carkey.fob.button).
BUTTON_ACTIONS = {"short": "unlock", "long": "lock", "double": "trunk"}
BUTTON_TIMING = {"debounce_ms": 30, "long_ms": 800, "double_ms": 350, "stuck_ms": 10000}
