# carkey — board: ESP32-DevKitC (ESP32-WROOM-32E, no PSRAM) car ECU with an opto-isolated relay module.
# SPDX-License-Identifier: MIT
#
# Avoided: 0, 2, 5, 12, 15 (strapping), 6-11 (flash), 1 and 3 (USB console),
# 14 for relays (it toggles during boot). 34-39 are input-only without internal
# pulls, so the door switches there need external pull-ups. A WROVER module uses
# 16 and 17 for PSRAM: move the car bus before using one.
# No unlock_driver relay: every free pin is taken, so the driver-door command
# reports a hardware fault on this board.

# Heap: the whole application needs 288-303 KiB on the 64-bit Unix port (about 210 KiB on
# a 32-bit ESP32, an estimate); a WROOM-32 gives roughly 110-130 KiB with BLE up, so this
# board runs it only with a WROVER (PSRAM) module. docs/HARDWARE.md, "Which board fits".

BOARD = "esp32_devkitc"
CHIP = "esp32"
KIND = "car"

# Held low at start-up (the BOOT button): main.py skips the application (recovery, deploys).
SAFE_BOOT_PIN = 0

# role: (gpio, active_low). The relay module's inputs are active low and pulled up
# on the module, so a pin in reset (high impedance) leaves every relay off.
OUTPUTS = {
    "lock": (25, True),
    "unlock": (26, True),
    "trunk": (32, True),
    "drive_enable": (33, True),
    "horn": (4, True),
    "lights": (13, True),
    "led": (18, False),
    "buzzer": (19, False),
}

# role: (gpio, active_low, pull). Car signals arrive through optocouplers that pull low when active.
INPUTS = {
    "door_driver": (34, True, None),
    "door_passenger": (35, True, None),
    "door_rear_left": (36, True, None),
    "door_rear_right": (39, True, None),
    "door_trunk": (14, True, "up"),
    "lock_feedback": (23, True, "up"),
    "ignition": (27, True, "up"),
}

BUSES = {
    "pn532": {"type": "i2c", "id": 0, "sda": 21, "scl": 22, "freq": 400000},
    # rx is named even though carkey only transmits: UART2 would otherwise claim its default pin.
    "carbus": {"type": "uart", "id": 2, "tx": 17, "rx": 16, "baud": 115200, "txbuf": 512},
}
