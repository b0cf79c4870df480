# carkey — board: virtual car ECU for tests and the Unix port; every role, plain active-high wiring.
# SPDX-License-Identifier: MIT

BOARD = "virtual"
CHIP = "virtual"
KIND = "car"
# The hardware layer: the virtual board's stand-ins (boards/virtual_hw/platform.py).
PLATFORM = "virtual_hw.platform"

# role: (gpio, active_low)
OUTPUTS = {
    "lock": (0, False),
    "unlock": (1, False),
    "unlock_driver": (2, False),
    "trunk": (3, False),
    "drive_enable": (4, False),
    "horn": (5, False),
    "lights": (6, False),
    "led": (7, False),
    "buzzer": (8, False),
}

# role: (gpio, active_low, pull)
INPUTS = {
    "door_driver": (10, False, None),
    "door_passenger": (11, False, None),
    "door_rear_left": (12, False, None),
    "door_rear_right": (13, False, None),
    "door_trunk": (14, False, None),
    "lock_feedback": (15, False, None),
    "ignition": (16, False, None),
}

# The PN532 sits on a UART here because the Unix port reaches its stand-in through a pty.
BUSES = {
    "pn532": {"type": "uart", "id": 1, "tx": 20, "rx": 21, "baud": 115200},
    "carbus": {"type": "uart", "id": 2, "tx": 22, "rx": 23, "baud": 115200, "txbuf": 512},
}
