# carkey — heap cost of the firmware's BLE link: carkey.hw.ble_gatt and ble_frame loaded, a server with 4 slots.
# SPDX-License-Identifier: MIT
#
# Measured apart from the virtual `bluetooth` (a board's module is C and spends no
# MicroPython heap). Figures are for this 64-bit Unix port; a 32-bit ESP32 needs
# less for the objects (pointers are half the size), the same for the buffers.
# Run: pytest -q tests/firmware/test_ble_heap.py

import gc

import unittest
from ble_hub import Hub  # noqa: F401  (puts the virtual board on the path)
import bluetooth  # noqa: F401  (loaded before measuring)

# ble_gatt + ble_frame + protocol.errors bytecode and objects, and BleServer with
# MAX_CONNECTIONS links and one 514-byte answer buffer and one 263-byte command
# buffer that the links share (23.3 KiB measured; the budget was 26 KiB while each link
# had buffers of its own).
BUDGET = 24 * 1024
LINK_BUDGET = 768  # a slot without buffers of its own: 576 bytes measured


class TestHeap(unittest.TestCase):
    def test_ble_link_fits_its_budget(self):
        gc.collect()
        before = gc.mem_alloc()
        from carkey.hw import ble_gatt

        server = ble_gatt.BleServer("carkey-00000000")
        gc.collect()
        used = gc.mem_alloc() - before
        print("ble_gatt with %d slots: %d bytes" % (len(server.links), used))
        self.assertLessEqual(used, BUDGET)

    def test_one_slot(self):
        from carkey.hw import ble_gatt

        gc.collect()
        before = gc.mem_alloc()
        link = ble_gatt.BleLink(None)
        gc.collect()
        used = gc.mem_alloc() - before
        self.assertLessEqual(used, LINK_BUDGET)
        self.assertIsNotNone(link)
