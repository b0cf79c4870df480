# carkey — drive a sliced crypto generator from the event loop.
# SPDX-License-Identifier: MIT
#
# A P-256 scalar multiplication takes 1–3 s on an ESP32. Its *_steps generator
# yields after every point addition; handing control back to the loop there
# keeps BLE, NFC and the watchdog served while the maths runs.

import asyncio


async def run(steps):
    try:
        while True:
            next(steps)
            await asyncio.sleep_ms(0)
    except StopIteration as done:
        return done.value
