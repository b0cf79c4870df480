# carkey — passive entry over BLE: scans for one phone's advertisements and feeds its RSSI to carkey.ecu.proximity.
# SPDX-License-Identifier: MIT
#
# MicroPython gives RSSI only in scan results, so the car scans (one window per
# interval) for the address of a phone that has just authenticated, and turns
# near/far changes into lock/unlock requests for the door controller. Phones
# that rotate private addresses are followed again at their next transaction;
# the hint is never an authentication: an unlock waits for that phone's own
# granted transaction in the approach (carkey.ecu.proximity.PassiveEntry). Off unless the owner
# enables passive entry (PassiveEntry(enabled=True)).

import asyncio
import time
from micropython import const

_SCAN_WINDOW_US = const(30_000)


class ProximityWatch:
    def __init__(self, server, entry, interval_ms=1000):
        self._server = server
        self.entry = entry  # a carkey.ecu.proximity.PassiveEntry
        self.interval_ms = interval_ms
        self._addr = None
        self._rssi = 0
        self._fresh = False
        self._flag = asyncio.ThreadSafeFlag()
        server.scan_listener = self

    def watch(self, addr):
        # Follow this address from now on (the phone of a granted transaction).
        self._addr = bytes(addr)
        self._fresh = False
        self.entry.reset()

    def follow(self, addr):
        # The watched phone again, its address perhaps rotated: the approach goes on.
        self._addr = bytes(addr)

    def forget(self):
        self._addr = None

    # IRQ side: record and flag.
    def _irq_result(self, addr, rssi):
        if self._addr is not None and bytes(addr) == self._addr:
            self._rssi = rssi
            self._fresh = True
            self._flag.set()

    def _irq_done(self):
        self._flag.set()

    async def run(self, on_action):
        # Scans forever; awaits on_action(ACTION_LOCK or ACTION_UNLOCK) on each change.
        ble = self._server.ble
        interval_us = self.interval_ms * 1000
        while True:
            if self._addr is None or not self.entry.enabled:
                await asyncio.sleep_ms(self.interval_ms)
                continue
            ble.gap_scan(0, interval_us, _SCAN_WINDOW_US)
            try:
                while self._addr is not None and self.entry.enabled:
                    try:
                        await asyncio.wait_for_ms(self._flag.wait(), self.interval_ms)
                    except asyncio.TimeoutError:
                        pass
                    now = time.ticks_ms()
                    if self._fresh:
                        self._fresh = False
                        action = self.entry.sample(self._rssi, now)
                    else:
                        action = self.entry.tick(now, time.ticks_diff)
                    if action is not None:
                        await on_action(action)
            finally:
                ble.gap_scan(None)
