# carkey — I2C and SPI buses in front of the fake PN532 (fake_pn532_bus.FakeChip).
# SPDX-License-Identifier: MIT
#
# FakeI2C delivers frames as transactions that start with the ready byte; FakeSPI
# takes DW/SR/DR prefixes under CS, LSB first on the wire (or MSB first for a
# SoftSPI-style bus, which the chip then reads bit-reversed). Logs are bounded (fakelog).

from fakelog import keep, keep_first


class FakeI2C:
    """machine.I2C over a FakeChip at address 0x24; every transaction is logged."""

    def __init__(self, chip, address=0x24):
        self.chip = chip
        self.address = address
        self.log = []  # ("w", bytes) / ("r", bytes read)

    def writeto(self, addr, data):
        if addr != self.address:
            raise OSError(19)  # ENODEV: nobody acknowledges the address
        keep(self.log, ("w", bytes(data)))
        self.chip.host_write(data)
        return len(data)

    def readfrom_into(self, addr, buf):
        if addr != self.address:
            raise OSError(19)
        for i in range(len(buf)):
            buf[i] = 0
        out = self.chip.out
        if out and len(buf) > 1:
            frame = out.pop(0)
            buf[0] = 1
            n = min(len(frame), len(buf) - 1)
            buf[1 : 1 + n] = frame[:n]
        elif out:
            buf[0] = 1
        keep(self.log, ("r", bytes(buf)))


def _rev(b):
    r = 0
    for _ in range(8):
        r = (r << 1) | (b & 1)
        b >>= 1
    return r


class FakeCs:
    def __init__(self, spi):
        self._spi = spi
        self.level = 1

    def value(self, v=None):
        if v is None:
            return self.level
        if v and not self.level:
            self._spi.end()
        if not v and self.level:
            self._spi.begin()
        self.level = v


class FakeSPI:
    """machine.SPI over a FakeChip: `lsb` is the bus bit order (the chip's is LSB first).

    With lsb=False the bus shifts MSB first, so every byte the chip sees is the
    bit-reverse of what the host passed, and the same on the way back.
    """

    def __init__(self, chip, lsb=True):
        self.chip = chip
        self.lsb = lsb
        self.cs = FakeCs(self)
        self.wire = []  # per CS-low transaction: bytes as the chip read them off MOSI
        self.mosi = bytearray()  # the first bytes the host passed to write(), before the bus shifted them
        self._mode = None
        self._tx = b""
        self._frame = b""

    def _conv(self, data):
        return bytes(data) if self.lsb else bytes(_rev(b) for b in data)

    def begin(self):
        self._mode = None
        self._tx = b""

    def end(self):
        keep(self.wire, self._tx)
        if self._mode == 0x01:
            self.chip.host_write(self._tx[1:])
        elif self._mode == 0x03:
            self._frame = b""
        self._mode = None

    def write(self, data):
        assert self.cs.level == 0, "SPI write with CS high"
        keep_first(self.mosi, data)
        data = self._conv(data)
        if self._mode is None:
            self._mode = data[0]
            assert self._mode in (1, 2, 3), "bad prefix %02x" % self._mode
            if self._mode == 0x03 and self.chip.out:
                self._frame = self.chip.out.pop(0)
        self._tx += data

    def readinto(self, buf):
        assert self.cs.level == 0, "SPI read with CS high"
        if self._mode == 0x02:
            out = bytes([1 if self.chip.out else 0])
        else:
            out = self._frame[: len(buf)]
            self._frame = self._frame[len(buf) :]
        out = out + bytes(len(buf) - len(out))
        buf[:] = self._conv(out)
