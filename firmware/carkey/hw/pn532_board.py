# carkey — builds the PN532 driver a board's "pn532" bus describes (boards/*.py BUSES).
# SPDX-License-Identifier: MIT
#
# pn532_from_spec(board.bus("pn532")) opens the bus with machine.I2C, machine.SPI
# (LSB first, mode 0) or machine.UART (timeout 0: reads never block) and returns a
# Pn532 over the matching transport, with the optional `rst` pin as its reset line.
# The virtual board has no machine.UART: pass uart=PtyUART(path) (boards/virtual_hw).
# `machine` is injectable for tests.

from carkey.hw.pn532 import Pn532


def pn532_from_spec(spec, machine=None, uart=None):
    kind = spec.get("type")
    if uart is None and machine is None:
        import machine
    reset = None
    if spec.get("rst") is not None:
        reset = machine.Pin(spec["rst"], machine.Pin.OUT, value=1)
    if kind == "uart":
        from carkey.hw.pn532_hsu import UartTransport

        if uart is None:
            uart = machine.UART(spec["id"], baudrate=spec.get("baud", 115200), tx=spec["tx"], rx=spec["rx"],
                                timeout=0, rxbuf=512)
        return Pn532(UartTransport(uart), reset=reset)
    if kind == "i2c":
        from carkey.hw.pn532_i2c import I2cTransport

        i2c = machine.I2C(spec["id"], scl=machine.Pin(spec["scl"]), sda=machine.Pin(spec["sda"]),
                          freq=spec.get("freq", 400000))
        return Pn532(I2cTransport(i2c), reset=reset)
    if kind == "spi":
        from carkey.hw.pn532_spi import SpiTransport

        spi = machine.SPI(spec["id"], baudrate=spec.get("baudrate", 1000000), polarity=0, phase=0,
                          firstbit=machine.SPI.LSB, sck=machine.Pin(spec["sck"]), mosi=machine.Pin(spec["mosi"]),
                          miso=machine.Pin(spec["miso"]))
        cs = machine.Pin(spec["cs"], machine.Pin.OUT, value=1)
        return Pn532(SpiTransport(spi, cs), reset=reset)
    raise ValueError("pn532 bus type is uart, i2c or spi, not %r" % kind)
