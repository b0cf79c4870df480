# carkey — board: ESP32-S3-DevKitC-1 (N8R8) car ECU with MOSFET relay drivers; PN532 on SPI.
# SPDX-License-Identifier: MIT
#
# Avoided: 0, 3, 45, 46 (strapping), 26-32 (flash), 33-37 (octal PSRAM),
# 19 and 20 (USB), 43 and 44 (console UART), 38 and 48 (RGB LED on the devkit).

# Heap: the whole application needs 299-305 KiB on the 64-bit Unix port (about 210 KiB on
# a 32-bit ESP32, an estimate): it fits in the N8R8's PSRAM. docs/HARDWARE.md, "Which board fits".

BOARD = "esp32_s3"
CHIP = "esp32s3"
KIND = "car"

# Held low at start-up (the BOOT button): main.py skips the application (recovery, deploys).
SAFE_BOOT_PIN = 0

# role: (gpio, active_low). The drivers' gates have pull-down resistors, so a pin in
# reset (high impedance) leaves every relay off.
OUTPUTS = {
    "lock": (4, False),
    "unlock": (5, False),
    "unlock_driver": (6, False),
    "trunk": (7, False),
    "drive_enable": (15, False),
    "horn": (16, False),
    "lights": (17, False),
    "led": (1, False),
    "buzzer": (2, False),
}

# role: (gpio, active_low, pull). Car signals arrive through optocouplers that pull low when active.
INPUTS = {
    "door_driver": (8, True, "up"),
    "door_passenger": (9, True, "up"),
    "door_rear_left": (14, True, "up"),
    "door_rear_right": (21, True, "up"),
    "door_trunk": (47, True, "up"),
    "lock_feedback": (39, True, "up"),
    "ignition": (40, True, "up"),
}

BUSES = {
    "pn532": {"type": "spi", "id": 1, "sck": 12, "mosi": 11, "miso": 13, "cs": 10, "irq": 18, "baudrate": 1000000},
    "carbus": {"type": "uart", "id": 1, "tx": 41, "rx": 42, "baud": 115200, "txbuf": 512},
}
