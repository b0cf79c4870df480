# carkey — the test fakes' logs stay bounded: a long run cannot fill the heap a test measures.
# SPDX-License-Identifier: MIT
#
# Each fake that records what the code under test did (PN532 chip and buses, APDU link,
# GPIO timeline, UART, the virtual board's car body) is driven far past its limit: its
# logs keep the newest entries only, the counts keep the totals, and the heap does not
# grow with the run.
#   .venv/bin/pytest -q tests/firmware/test_fake_logs.py

import asyncio
import gc

import unittest
from fake_pn532_bus import FakeChip, make_frame
from fake_pn532_buses import FakeSPI
from fakelink import FakeLink
from fakelog import LIMIT
from fakepins import FakePins, VirtualClock
from fakeuart import FakeUART

from carkey.protocol.errors import LinkError

# The default heap, not 64 KiB: what is measured here is that the logs stop growing
# (heap_growth), and a few dozen live log entries scattered through a 64 KiB heap by
# the garbage between them leave no hole for a 0.5 KiB list on some runs.

RUN = 10 * LIMIT


def heap_growth(step, n):
    """Bytes still allocated after `n` more calls of step(i) than after the first 2 * LIMIT."""
    for i in range(2 * LIMIT):
        step(i)
    gc.collect()
    before = gc.mem_alloc()
    for i in range(2 * LIMIT, 2 * LIMIT + n):
        step(i)
    gc.collect()
    return gc.mem_alloc() - before


class FakeLogsTest(unittest.TestCase):
    def test_chip_keeps_the_newest_commands_and_counts_all(self):
        chip = FakeChip()

        def step(i):
            # GetFirmwareVersion with a varying parameter byte, so the newest entry is known
            chip.host_write(make_frame(bytes([0xD4, 0x02, i & 0xFF])))
            chip.out.clear()  # the host read the ACK and the answer

        self.assertLess(heap_growth(step, RUN), 512)
        self.assertEqual(len(chip.commands), LIMIT)
        self.assertEqual((len(chip.raw), len(chip.frames)), (LIMIT, LIMIT))
        self.assertEqual(chip.counts[0x02], 2 * LIMIT + RUN)
        self.assertEqual(chip.commands[-1], (0x02, bytes([(2 * LIMIT + RUN - 1) & 0xFF])))

    def test_spi_bus_logs_are_bounded(self):
        chip = FakeChip()
        bus = FakeSPI(chip)

        def step(i):
            bus.cs.value(0)
            bus.write(b"\x01" + make_frame(b"\xd4\x02"))
            bus.cs.value(1)
            chip.out.clear()

        self.assertLess(heap_growth(step, RUN), 512)
        self.assertEqual(len(bus.wire), LIMIT)
        self.assertLessEqual(len(bus.mosi), 32 * LIMIT)

    def test_link_keeps_the_newest_commands(self):
        link = FakeLink([])  # no script: every command is recorded, then refused

        def step(i):
            try:
                asyncio.run(link.transceive(bytes([i & 0xFF]), 100))
            except LinkError:
                pass

        self.assertLess(heap_growth(step, RUN), 512)
        self.assertEqual((len(link.sent), len(link.timeouts), link.count), (LIMIT, LIMIT, 2 * LIMIT + RUN))
        self.assertEqual(link.sent[-1], bytes([(2 * LIMIT + RUN - 1) & 0xFF]))

    def test_pin_timeline_is_bounded(self):
        clock = VirtualClock()
        pins = FakePins(clock)
        led = pins("led", 2, "out", None, 0)

        def step(i):
            clock.advance(1)
            led.value(i & 1)

        self.assertLess(heap_growth(step, RUN), 512)
        self.assertEqual(len(pins.timeline), LIMIT)
        self.assertEqual(pins.timeline[-1], (clock.ms, "led", (2 * LIMIT + RUN - 1) & 1))

    def test_every_fake_keeps_the_same_number(self):
        import fakelink
        import fakepins
        import fakeuart

        self.assertEqual((fakelink.LOG_LIMIT, fakepins.LOG_LIMIT, fakeuart.LOG_LIMIT), (LIMIT, LIMIT, LIMIT))

    def test_virtual_car_body_timeline_is_bounded(self):
        from virtual_hw.car_body import TIMELINE_LIMIT, CarBody

        body = CarBody()
        n = 4 * TIMELINE_LIMIT
        for i in range(n):
            body.output_changed("unlock", i & 1)
        self.assertEqual(len(body.timeline), TIMELINE_LIMIT)
        self.assertEqual(body.timeline[-1][1:], ("unlock", (n - 1) & 1))
        # The oldest entry kept is an end (level 0) whose start was dropped: not a pulse.
        self.assertEqual(len(body.pulses()), TIMELINE_LIMIT // 2 - 1)

    def test_uart_writes_are_bounded(self):
        uart = FakeUART()

        def step(i):
            uart.write(b"CK1 LOCK seq=%d\n" % i)

        self.assertLess(heap_growth(step, RUN), 512)
        self.assertEqual(len(uart.writes), LIMIT)
        self.assertEqual(uart.writes[-1], b"CK1 LOCK seq=%d\n" % (2 * LIMIT + RUN - 1))


if __name__ == "__main__":
    unittest.main()
