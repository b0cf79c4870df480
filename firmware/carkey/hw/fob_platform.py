# carkey — the hardware layer of a real key fob: button and LED pins, the radio, the battery, deep sleep.
# SPDX-License-Identifier: MIT
#
# carkey.fob.app reaches `machine`, `esp32` and `bluetooth` only through a
# Platform. A fob's board description names its platform module (PLATFORM,
# default this one); the virtual fob's (boards/virtual_hw/fob_platform.py) has
# the same methods. It stays apart from the car's carkey.hw.platform (watchdog,
# PN532, UARTs: nothing a fob needs), so its for_board and safe_boot repeat that
# module's rules rather than load it. Written against stock MicroPython's
# machine, esp32 and bluetooth modules; not run on a board here (docs/FOB.md).


def _machine_pin(role, gpio, mode, pull, idle_level):
    # The pin factory carkey.fob.app calls (carkey.hw.pins.machine_pin's rules, without
    # loading that module): an output starts at its idle level, an input with its pull.
    import machine

    Pin = machine.Pin
    if mode == "out":
        return Pin(gpio, Pin.OUT, value=idle_level)
    if pull == "up":
        return Pin(gpio, Pin.IN, Pin.PULL_UP)
    if pull == "down":
        return Pin(gpio, Pin.IN, Pin.PULL_DOWN)
    return Pin(gpio, Pin.IN)


class Platform:
    def pin_factory(self):
        return _machine_pin

    def ble(self):
        import bluetooth

        return bluetooth.BLE()

    def woken_by_button(self):
        import machine

        return machine.reset_cause() == machine.DEEPSLEEP_RESET

    def battery_mv(self, spec):
        # The cell through a divider into an ADC pin: {"adc": gpio, "divider": ratio}.
        if not spec:
            return None
        import machine

        adc = machine.ADC(machine.Pin(spec["adc"]), atten=machine.ADC.ATTN_11DB)
        total = 0
        for _ in range(8):
            total += adc.read_uv()
        return int(total / 8 * spec.get("divider", 2) / 1000)

    def retained(self):
        # RTC slow memory (machine.RTC().memory(), 2048 bytes in MicroPython's esp32
        # port): kept through deep sleep, lost with power. None where there is none.
        try:
            import machine

            return machine.RTC().memory()
        except (AttributeError, OSError, ValueError):
            return None

    def retain(self, data):
        try:
            import machine

            machine.RTC().memory(data)
        except (AttributeError, OSError, ValueError):
            pass

    def deep_sleep(self, button_gpio, active_low, timer_ms=None):
        # ESP32-C3: GPIO 0-5 can wake the chip from deep sleep (no EXT0/EXT1 there);
        # MicroPython reaches that through Pin.irq(wake=machine.DEEPSLEEP). An
        # ESP32 (classic, S3) takes the same pin through EXT0.
        import machine

        if timer_ms is None:
            pin = machine.Pin(button_gpio, machine.Pin.IN, machine.Pin.PULL_UP if active_low else None)
            try:
                pin.irq(trigger=machine.Pin.WAKE_LOW if active_low else machine.Pin.WAKE_HIGH,
                        wake=machine.DEEPSLEEP)
            except (AttributeError, ValueError, TypeError):
                import esp32

                esp32.wake_on_ext0(pin, esp32.WAKEUP_ALL_LOW if active_low else esp32.WAKEUP_ANY_HIGH)
            machine.deepsleep()
        machine.deepsleep(timer_ms)


def safe_boot(board):
    """Whether the board's SAFE_BOOT_PIN (if it names one) is held low right now."""
    pin = getattr(board, "SAFE_BOOT_PIN", None)
    if pin is None:
        return False
    try:
        from machine import Pin
    except ImportError:
        return False
    return Pin(pin, Pin.IN, Pin.PULL_UP).value() == 0


def for_board(board):
    """The Platform the board description names (PLATFORM: a module with a Platform class)."""
    name = getattr(board, "PLATFORM", None)
    if name is None:
        return Platform()
    return __import__(name, None, None, ("Platform",)).Platform()
