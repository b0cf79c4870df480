# carkey — GPIO layer: board descriptions become Pin-style outputs and inputs.
# SPDX-License-Identifier: MIT
#
# A board description (boards/*.py, see boards/README.md) names each role's GPIO,
# whether it is active low and, for inputs, the pull. Board() turns it into
# Output and Input objects whose logical 1 always means "active" (relay energised,
# door open, ignition on), so no driver ever deals with inverted wiring.
#
# On a board the pins are machine.Pin objects; tests pass a pin factory that builds
# fakes (tests/mpy/fakepins.py). The tick clock is injectable the same way: drivers
# take a `clock` callable (default time.ticks_ms) and only ever compare its values
# with ticks_diff, so they survive the ticks wrap-around.

import time

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff
ticks_add = time.ticks_add

# Pin modes passed to a pin factory.
MODE_IN = "in"
MODE_OUT = "out"

_PULLS = (None, "up", "down")


class BoardError(ValueError):
    """A board description is malformed (bad spec shape, unknown pull, missing role)."""


class Output:
    """A Pin-style output: value(), value(v), on(), off(); 1 means active.

    The logical level is cached rather than read back, because an ESP32 pin in
    plain output mode does not reliably read back what it drives.
    """

    def __init__(self, pin, active_low=False):
        self._pin = pin
        self._invert = 1 if active_low else 0
        self._level = 0

    def value(self, v=None):
        if v is None:
            return self._level
        self._level = 1 if v else 0
        self._pin.value(self._level ^ self._invert)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class Input:
    """A Pin-style input: value() is 1 when the signal is active, whatever the wiring."""

    def __init__(self, pin, active_low=False):
        self._pin = pin
        self._invert = 1 if active_low else 0

    def value(self):
        return self._pin.value() ^ self._invert


def machine_pin(role, gpio, mode, pull, idle_level):
    """Pin factory for real boards.

    An output is created already driving its inactive level (`value=` is applied
    before the pad switches to output), so building the board never glitches a relay.
    """
    import machine

    if mode == MODE_OUT:
        return machine.Pin(gpio, machine.Pin.OUT, value=idle_level)
    if pull == "up":
        return machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_UP)
    if pull == "down":
        return machine.Pin(gpio, machine.Pin.IN, machine.Pin.PULL_DOWN)
    return machine.Pin(gpio, machine.Pin.IN)


def machine_uart(name, spec):
    """UART factory for real boards; a large TX buffer keeps write() from blocking."""
    import machine

    kwargs = {"baudrate": spec.get("baud", 115200), "tx": spec["tx"], "txbuf": spec.get("txbuf", 512)}
    if spec.get("rx") is not None:
        kwargs["rx"] = spec["rx"]
    return machine.UART(spec["id"], **kwargs)


def _field(desc, key, default=None):
    if isinstance(desc, dict):
        return desc.get(key, default)
    return getattr(desc, key, default)


class Board:
    """The pins of one board, built from its description.

    `outputs` and `inputs` map role names to Output/Input objects; `buses` is the
    description's bus dict (PN532 and car-bus wiring) for the drivers that own them.
    Pins are created in sorted role order so start-up is the same on every run.
    """

    def __init__(self, desc, pin_factory=None, uart_factory=None):
        self.name = _field(desc, "BOARD")
        if not self.name:
            raise BoardError("board description has no BOARD name")
        self.chip = _field(desc, "CHIP")
        self.kind = _field(desc, "KIND")
        self.buses = _field(desc, "BUSES") or {}
        make_pin = pin_factory or machine_pin
        self._make_uart = uart_factory or machine_uart
        self.outputs = {}
        self.inputs = {}
        specs = _field(desc, "OUTPUTS") or {}
        for role in sorted(specs):
            spec = specs[role]
            if len(spec) != 2:
                raise BoardError("output %s: expected (gpio, active_low)" % role)
            gpio, active_low = spec
            self.outputs[role] = Output(make_pin(role, gpio, MODE_OUT, None, 1 if active_low else 0), active_low)
        specs = _field(desc, "INPUTS") or {}
        for role in sorted(specs):
            spec = specs[role]
            if len(spec) != 3 or spec[2] not in _PULLS:
                raise BoardError("input %s: expected (gpio, active_low, None|'up'|'down')" % role)
            gpio, active_low, pull = spec
            self.inputs[role] = Input(make_pin(role, gpio, MODE_IN, pull, 1 if active_low else 0), active_low)

    def bus(self, name):
        try:
            return self.buses[name]
        except KeyError:
            raise BoardError("board %s has no bus %s" % (self.name, name))

    def uart(self, name):
        spec = self.bus(name)
        if spec.get("type") != "uart":
            raise BoardError("bus %s is not a UART" % name)
        return self._make_uart(name, spec)
