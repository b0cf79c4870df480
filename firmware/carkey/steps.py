# carkey — runs long work (a p256 *_steps generator) in slices on the event loop.
# SPDX-License-Identifier: MIT

import asyncio


async def run_steps(steps):
    # Drives a p256 *_steps generator, handing the loop back after every slice: a
    # scalar multiplication takes 1–3 s on an ESP32, and BLE, NFC and the watchdog
    # must keep running meanwhile.
    try:
        while True:
            next(steps)
            await asyncio.sleep_ms(0)
    except StopIteration as done:
        return done.value
