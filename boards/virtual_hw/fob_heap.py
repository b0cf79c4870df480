# carkey — one wake of the whole key fob application under a fob board's config on the virtual board, reporting its heap.
# SPDX-License-Identifier: MIT
#
# Usage (boards/ and boards/virtual_hw on the path, CARKEY_AIR set, a car on that air):
#   micropython -X heapsize=N -c "import fob_heap; fob_heap.run('esp32_c3_fob', STATE_DIR[, modules=True])"
#
# What firmware/main.py runs on a fob (carkey.fob.app.run) with the board's own
# description: its button timing, actions, battery divider and BLE deadlines. Only
# the hardware is the virtual fob's (boards/virtual_hw/fob_platform.py: the pins as
# files in STATE_DIR, the virtual air as the radio), and the pins are wired
# active-high as on the virtual board. The caller leaves the wake that a tap on the
# button makes (an "asleep" file naming the button, the button released): the fob
# starts, tells a short press (unlock), visits the car, shows the outcome, makes the
# next press's ephemeral key, idles, and asks for deep sleep. The only change from
# app.run: the idle time before sleep (IDLE_MS, not app.IDLE_SLEEP_MS), which
# allocates nothing and only makes a run shorter.
# JSON lines on stdout once the application returned (nothing printed while it runs):
#   {"press": {...Press.to_dict()}, "alloc": N, "free": N}   the press; the heap right after it, after gc.collect()
#   {"slept": {...}, "alloc": N[, "modules": [...]]}         deep sleep asked; what was loaded (modules=True)

from carkey.fob import app

IDLE_MS = 100


class _Board:
    # The board config's own values, the pins' polarity as the virtual board's.
    def __init__(self, name):
        hw = __import__(name)
        for key in dir(hw):
            if key[0] != "_":
                setattr(self, key, getattr(hw, key))
        self.OUTPUTS = {role: (spec[0], False) for role, spec in hw.OUTPUTS.items()}
        self.INPUTS = {role: (spec[0], False, spec[2]) for role, spec in hw.INPUTS.items()}


def run(board_name, state_dir, modules=False):
    import asyncio
    import gc
    import sys

    from virtual_hw.fob_platform import VirtualFobPlatform

    platform = VirtualFobPlatform(state_dir)
    fob = app.FobApp(_Board(board_name), platform, state_dir)
    seen = []

    def on_press(press):
        # Only noted here: the lines are printed once the application is done, so the
        # harness allocates nothing of its own while the fob runs.
        gc.collect()
        seen.append((press, gc.mem_alloc(), gc.mem_free()))

    asyncio.run(fob.run(idle_sleep_ms=IDLE_MS, on_press=on_press, started_ms=app._LOADED_MS))
    import json

    for press, alloc, free in seen:
        print(json.dumps({"press": press.to_dict(), "alloc": alloc, "free": free}))
    gc.collect()
    out = {"slept": platform.sleep_request, "alloc": gc.mem_alloc()}
    if modules:
        out["modules"] = list(sys.modules)
    print(json.dumps(out))
