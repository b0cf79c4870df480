# carkey — PN532 NFC front end: frames, transports (HSU UART, I2C, SPI) and the reader commands.
# SPDX-License-Identifier: MIT
#
# Pn532(transport) speaks the PN532 host protocol (NXP UM0701-02): normal frames
# 00 00 FF LEN LCS TFI PD.. DCS 00, extended frames 00 00 FF FF FF LENM LENL LCS
# TFI PD.. DCS 00, ACK 00 00 FF 00 FF 00, NACK 00 00 FF FF 00 00. Every command
# is acknowledged by an ACK before its answer; an answer with a bad checksum is
# asked for again with a NACK; the chip's syntax-error frame (TFI 7F) raises.
#
# Everything is async and never blocks: transports only read what is already
# there (UART any(), the I2C ready byte, the SPI status read) and the driver
# sleeps a millisecond between looks. Outgoing frames are built in one buffer
# made at construction; each transport receives into its own buffer.
#
# Errors: Pn532Timeout (the chip did not answer in time: hung, unpowered or
# unwired), TargetLost (the card or phone stopped answering on the RF side),
# Pn532Error (anything else: bad frames, error statuses, bad answers).

import asyncio
import time
from micropython import const

_ticks_ms = time.ticks_ms
_ticks_diff = time.ticks_diff
_ticks_add = time.ticks_add

# Frame identifiers
_TFI_HOST = const(0xD4)  # host -> PN532
_TFI_CHIP = const(0xD5)  # PN532 -> host
_TFI_ERROR = const(0x7F)  # the chip's application-level error frame (syntax error)

# Commands (answer code = command + 1); arguments as carkey sends them.
_CMD_GET_FIRMWARE_VERSION = const(0x02)  # -> IC 32, Ver, Rev, Support
_CMD_WRITE_REGISTER = const(0x08)  # [ADR_H ADR_L VAL]* -> nothing
_CMD_SAM_CONFIGURATION = const(0x14)  # Mode 01 (normal), Timeout, IRQ 01 -> nothing
_CMD_RF_CONFIGURATION = const(0x32)  # CfgItem, ConfigurationData.. -> nothing
_CMD_IN_DATA_EXCHANGE = const(0x40)  # Tg[|40 MI], DataOut.. -> Status, DataIn..
_CMD_IN_COMMUNICATE_THRU = const(0x42)  # DataOut.. (raw frame, CRC by the chip) -> Status, DataIn..
_CMD_IN_DESELECT = const(0x44)  # Tg -> Status
_CMD_IN_LIST_PASSIVE_TARGET = const(0x4A)  # MaxTg 01, BrTy 00 (106 kbit/s type A) -> NbTg, target data
_CMD_IN_RELEASE = const(0x52)  # Tg -> Status

# RFConfiguration items
_RF_FIELD = const(0x01)  # bit 0: RF on, bit 1: auto RFCA
_RF_TIMINGS = const(0x02)  # RFU, ATR_RES timeout, retry timeout (code n = 100 us * 2^(n-1))
_RF_RETRIES = const(0x05)  # MxRtyATR, MxRtyPSL, MxRtyPassiveActivation

# CIU registers (PN532 C106 user manual §8.6): bit 7 = CRC on, for InCommunicateThru
_REG_TX_MODE = const(0x6302)
_REG_RX_MODE = const(0x6303)

# InDataExchange / InCommunicateThru status byte: low 6 bits error, bit 6 MI
_STATUS_ERR_MASK = const(0x3F)
_STATUS_MI = const(0x40)
_ST_TIMEOUT = const(0x01)  # the target did not answer (gone, or silent after its retries)
_ST_RELEASED = const(0x29)  # target released
_ST_VANISHED = const(0x2B)  # a previously activated card has disappeared

_MAX_DATA = const(262)  # DataOut/DataIn of one InDataExchange (user manual §7.3.8)
_MAX_FRAME = const(8 + 2 + 3 + _MAX_DATA)  # extended header + TFI/CMD/Tg + data + DCS/postamble
_ACK_TIMEOUT_MS = const(50)  # the ACK comes within ~1 ms of a command's last byte
_POLL_MS = const(1)
_NACK_RETRIES = const(2)

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"

# HSU wake-up (user manual §7.2.11 / §6.2.2): after power-down the chip needs a
# long preamble on RX before the first frame; 0x55 edges, then zeros.
_HSU_WAKE = b"\x55\x55" + bytes(14)

# I2C: the chip's 7-bit address; every read starts with the ready byte (bit 0).
I2C_ADDRESS = const(0x24)
# SPI prefixes; the chip clocks LSB first on the wire.
_SPI_DW = const(0x01)  # data write
_SPI_SR = const(0x02)  # status read: bit 0 = an answer is ready
_SPI_DR = const(0x03)  # data read


class Pn532Error(Exception):
    """The PN532 answered something wrong, or an operation failed with a status.

    `status` is the chip's status byte (low 6 bits) when the failure came with one.
    """

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class Pn532Timeout(Pn532Error):
    """The chip sent no ACK or no answer within the command's timeout."""


class TargetLost(Pn532Error):
    """The target stopped answering over RF (removed, or silent past its waiting time)."""


class FrameError(Pn532Error):
    """A frame arrived damaged: length or data checksum, postamble, size."""


def frame_size(buf, start, end):
    """Size of the frame whose start code 00 FF is at buf[start], or 0 if incomplete.

    Raises Pn532Error on a bad length checksum. Sizes count from the start code:
    ACK/NACK 5 bytes (with postamble), normal 2+2+LEN+2, extended 2+5+LEN+2.
    """
    have = end - start
    if have < 4:
        return 0
    a = buf[start + 2]
    b = buf[start + 3]
    if a == 0x00 and b == 0xFF:  # ACK
        return 5
    if a == 0xFF and b == 0x00:  # NACK (the chip never sends one; kept for the stand-ins)
        return 5
    if a == 0xFF and b == 0xFF:  # extended
        if have < 7:
            return 0
        n = (buf[start + 4] << 8) | buf[start + 5]
        if (buf[start + 4] + buf[start + 5] + buf[start + 6]) & 0xFF:
            raise FrameError("bad extended length checksum")
        return 9 + n
    if (a + b) & 0xFF:
        raise FrameError("bad length checksum")
    return 6 + a


def find_start(buf, start, end):
    # Index of the start code 00 FF at or after `start`, or -1.
    i = start
    while i + 1 < end:
        if buf[i] == 0 and buf[i + 1] == 0xFF:
            return i
        i += 1
    return -1


class UartTransport:
    """PN532 over HSU (115200 8N1): a machine.UART-like object with any/readinto/write.

    Bytes arrive in pieces; what follows a frame (an answer right behind its ACK)
    is kept for the next receive.
    """

    def __init__(self, uart, bufsize=_MAX_FRAME + 32):
        self._uart = uart
        self._buf = bytearray(bufsize)
        self._mv = memoryview(self._buf)
        self._n = 0
        self._used = 0

    def wake(self):
        self._uart.write(_HSU_WAKE)

    def write(self, frame):
        self._uart.write(frame)

    def flush(self):
        # Drop whatever is buffered or pending: used before resynchronising.
        self._n = self._used = 0
        uart = self._uart
        while uart.any():
            if not uart.readinto(self._mv):
                break

    async def receive(self, deadline):
        buf = self._buf
        mv = self._mv
        if self._used:
            rest = self._n - self._used
            buf[:rest] = buf[self._used : self._n]
            self._n = rest
            self._used = 0
        while True:
            n = self._n
            i = find_start(buf, 0, n)
            if i < 0:
                # Keep a trailing 00 (it may start a start code); drop the rest.
                keep = 1 if n and buf[n - 1] == 0 else 0
                buf[0] = 0
                self._n = n = keep
            elif i:
                buf[: n - i] = buf[i:n]
                self._n = n = n - i
            if n:
                try:
                    size = frame_size(buf, 0, n)
                except FrameError:
                    self._used = 2  # skip this start code next time
                    raise
                if size > len(buf):
                    self._used = 2
                    raise FrameError("frame too long")
                if size and size <= n:
                    self._used = size
                    return mv[:size]
            got = 0
            if self._uart.any():
                got = self._uart.readinto(mv[n:]) or 0
            if got:
                self._n = n + got
                continue
            if _ticks_diff(deadline, _ticks_ms()) <= 0:
                raise Pn532Timeout("no frame from the PN532")
            await asyncio.sleep_ms(_POLL_MS)


class I2cTransport:
    """PN532 over I2C (up to 400 kHz, address 0x24) with its ready byte.

    Every read transaction starts with the ready byte; the frame follows. A first
    read of `peek` bytes covers ACKs and short answers; a longer answer is asked
    for again with a NACK (the chip then sends the same frame) and read whole.
    """

    def __init__(self, i2c, address=I2C_ADDRESS, peek=24):
        self._i2c = i2c
        self._addr = address
        self._buf = bytearray(1 + 1 + _MAX_FRAME)  # ready byte, preamble, frame
        self._mv = memoryview(self._buf)
        self._peek = peek
        self._status = bytearray(1)

    def wake(self):
        # An I2C address match wakes the chip from power-down; a ready-byte read
        # is the cheapest such transaction.
        try:
            self._i2c.readfrom_into(self._addr, self._status)
        except OSError:
            pass

    def write(self, frame):
        try:
            self._i2c.writeto(self._addr, frame)
        except OSError:
            # The chip NAKs its address while busy or asleep: the caller's
            # ACK wait turns this into a timeout and recovery.
            pass

    def flush(self):
        pass

    async def _ready(self, deadline):
        st = self._status
        while True:
            try:
                self._i2c.readfrom_into(self._addr, st)
                if st[0] & 1:
                    return
            except OSError:
                pass
            if _ticks_diff(deadline, _ticks_ms()) <= 0:
                raise Pn532Timeout("PN532 not ready")
            await asyncio.sleep_ms(_POLL_MS)

    async def receive(self, deadline):
        buf = self._buf
        want = self._peek
        for _ in range(2):
            await self._ready(deadline)
            try:
                self._i2c.readfrom_into(self._addr, self._mv[:want])
            except OSError:
                raise Pn532Timeout("PN532 I2C read failed") from None
            i = find_start(buf, 1, want)
            if i < 0:
                raise FrameError("no start code")
            size = frame_size(buf, i, want)
            if size and i + size <= want:
                return self._mv[i : i + size]
            if i + (size or 9) > len(buf):
                raise FrameError("frame too long")
            # Longer than the peek: the NACK makes the chip send it again.
            want = i + size if size else len(buf)
            self.write(NACK)
        raise FrameError("frame incomplete")


def _reverse_table():
    t = bytearray(256)
    for i in range(256):
        r = 0
        v = i
        for _ in range(8):
            r = (r << 1) | (v & 1)
            v >>= 1
        t[i] = r
    return bytes(t)


class SpiTransport:
    """PN532 over SPI (mode 0, up to 5 MHz, LSB first) with its DW/SR/DR prefixes.

    `cs` is an output pin (1 = idle). On a bus that can only shift MSB first
    (SoftSPI), pass lsb_first=False: bytes are then bit-reversed in software.
    """

    def __init__(self, spi, cs, lsb_first=True):
        self._spi = spi
        self._cs = cs
        self._rev = None if lsb_first else _reverse_table()
        self._buf = bytearray(_MAX_FRAME + 8)
        self._mv = memoryview(self._buf)
        self._out = bytearray(1 + _MAX_FRAME)
        self._one = bytearray(1)
        cs.value(1)

    def _fix(self, mv):
        rev = self._rev
        if rev is not None:
            for i in range(len(mv)):
                mv[i] = rev[mv[i]]

    def _prefix(self, code):
        one = self._one
        one[0] = code
        self._fix(one)
        self._spi.write(one)

    def wake(self):
        # CS low wakes the chip; it needs ~2 ms before it listens.
        self._cs.value(0)
        time.sleep_ms(2)
        self._cs.value(1)

    def write(self, frame):
        n = len(frame)
        out = self._out
        out[0] = _SPI_DW
        out[1 : 1 + n] = frame
        mv = memoryview(out)[: 1 + n]
        self._fix(mv)
        self._cs.value(0)
        try:
            self._spi.write(mv)
        finally:
            self._cs.value(1)

    def flush(self):
        pass

    def _read(self, mv):
        self._spi.readinto(mv)
        self._fix(mv)

    async def receive(self, deadline):
        one = self._one
        while True:
            self._cs.value(0)
            try:
                self._prefix(_SPI_SR)
                self._read(one)
            finally:
                self._cs.value(1)
            if one[0] & 1:
                break
            if _ticks_diff(deadline, _ticks_ms()) <= 0:
                raise Pn532Timeout("PN532 not ready")
            await asyncio.sleep_ms(_POLL_MS)
        buf = self._buf
        mv = self._mv
        self._cs.value(0)
        try:
            self._prefix(_SPI_DR)
            # Preamble 00, start code 00 FF, then LEN LCS (or FF FF LENM LENL LCS).
            self._read(mv[:5])
            i = find_start(buf, 0, 5)
            if i < 0:
                raise FrameError("no start code")
            have = 5
            if i:  # no preamble: read the byte that completes the header
                self._read(mv[5:6])
                have = 6
            if buf[i + 2] == 0xFF and buf[i + 3] == 0xFF:
                self._read(mv[have : i + 7])
                have = i + 7
            size = frame_size(buf, i, have)
            if i + size > len(buf):
                raise FrameError("frame too long")
            if i + size > have:
                self._read(mv[have : i + size])
        finally:
            self._cs.value(1)
        return mv[i : i + size]


class Target:
    """One ISO 14443-A target as InListPassiveTarget reported it."""

    def __init__(self, tg, atqa, sak, uid, ats):
        self.tg = tg
        self.atqa = atqa  # SENS_RES, 2 bytes as the chip sends them
        self.sak = sak  # SEL_RES
        self.uid = uid
        self.ats = ats  # ATS with its length byte TL first, or b"" for a non-ISO-DEP target

    @property
    def iso_dep(self):
        return bool(self.sak & 0x20) and len(self.ats) > 0


def ecp_access_frame(tci, reader_group_id):
    """An Apple ECP V2 "access" polling frame: 6A 02 CB 02 06 TCI(3) group(8).

    Configuration byte CB = 1 (always), 1 (no user authentication: express),
    00, 1011 (11 data bytes follow the subtype). Terminal type 02 = access,
    subtype 06 = key reader; the chip adds CRC_A.
    """
    if len(tci) != 3 or len(reader_group_id) != 8:
        raise ValueError("ECP needs a 3-byte TCI and an 8-byte reader group id")
    return b"\x6a\x02\xcb\x02\x06" + bytes(tci) + bytes(reader_group_id)


class Pn532:
    """The PN532 as an ISO 14443-A reader: setup, polling, ISO-DEP exchange, recovery.

    `reset` is an optional output pin wired to RSTPDN (1 = running).
    """

    def __init__(self, transport, reset=None, ack_timeout_ms=_ACK_TIMEOUT_MS):
        self._t = transport
        self._reset = reset
        self._ack_ms = ack_timeout_ms
        self._tx = bytearray(_MAX_FRAME)
        self._txmv = memoryview(self._tx)
        self._extra = bytearray(3)
        self.firmware = None
        self.recoveries = 0

    # --- frames --------------------------------------------------------------

    def _frame(self, cmd, head, data):
        # Build TFI cmd head data into the tx buffer; return the frame view.
        tx = self._tx
        n = 2 + len(head) + len(data)  # TFI + cmd + ...
        if n > 255:
            if n > _MAX_FRAME - 10:
                raise ValueError("command too long")
            tx[0:5] = b"\x00\x00\xff\xff\xff"
            tx[5] = n >> 8
            tx[6] = n & 0xFF
            tx[7] = (-(tx[5] + tx[6])) & 0xFF
            p = 8
        else:
            tx[0:3] = b"\x00\x00\xff"
            tx[3] = n
            tx[4] = (-n) & 0xFF
            p = 5
        start = p
        tx[p] = _TFI_HOST
        tx[p + 1] = cmd
        p += 2
        tx[p : p + len(head)] = head
        p += len(head)
        tx[p : p + len(data)] = data
        p += len(data)
        s = 0
        for i in range(start, p):
            s += tx[i]
        tx[p] = (-s) & 0xFF
        tx[p + 1] = 0
        return self._txmv[: p + 2]

    def _payload(self, frame, cmd):
        # The answer data of a received frame (after D5 cmd+1), checksums checked.
        n = len(frame)
        if n == 5:
            raise Pn532Error("unexpected ACK/NACK")
        if frame[2] == 0xFF and frame[3] == 0xFF:
            start = 7
        else:
            start = 4
        s = 0
        for i in range(start, n - 1):
            s += frame[i]
        if s & 0xFF:
            raise FrameError("bad data checksum")
        if frame[n - 1] != 0:
            raise FrameError("bad postamble")
        body = frame[start : n - 2]
        if len(body) == 1 and body[0] == _TFI_ERROR:
            raise Pn532Error("PN532 reported a syntax error")
        if len(body) < 2 or body[0] != _TFI_CHIP or body[1] != cmd + 1:
            raise Pn532Error("answer to another command")
        return body[2:]

    @staticmethod
    def _is_ack(frame):
        return len(frame) == 5 and frame[2] == 0x00 and frame[3] == 0xFF

    async def call(self, cmd, head=b"", data=b"", timeout_ms=1000):
        """Send one command, wait for its ACK and answer; return the answer data view.

        No frame at all within the ACK time means a hung or absent chip
        (Pn532Timeout). A lost or damaged ACK followed by the answer is accepted.
        A damaged answer is asked for again with a NACK. The view lives in the
        transport's buffer until the next command.
        """
        t = self._t
        t.write(self._frame(cmd, head, data))
        now = _ticks_ms()
        ack_deadline = _ticks_add(now, self._ack_ms)
        deadline = _ticks_add(now, timeout_ms)
        alive = False  # a frame (even a damaged one) came back
        nacks = 0
        while True:
            try:
                frame = await t.receive(deadline if alive else ack_deadline)
                alive = True
                if self._is_ack(frame):
                    continue
                return self._payload(frame, cmd)
            except Pn532Timeout:
                # Abort the command (an ACK from the host cancels it) so a late
                # answer never pairs with the next command.
                t.write(ACK)
                t.flush()
                if not alive:
                    raise Pn532Timeout("no ACK for command %02X" % cmd) from None
                raise Pn532Timeout("no answer to command %02X within %d ms" % (cmd, timeout_ms)) from None
            except FrameError:
                if not alive:
                    alive = True  # a damaged ACK: the answer still follows
                    continue
                if nacks >= _NACK_RETRIES:
                    raise
                nacks += 1
                t.write(NACK)

    # --- setup ---------------------------------------------------------------

    async def begin(self, timeout_ms=500):
        """Wake the chip, check it is a PN532, leave SAM out, set the RF retries.

        Returns (IC, Ver, Rev, Support) of GetFirmwareVersion.
        """
        t = self._t
        if self._reset is not None:
            self._reset.value(0)
            await asyncio.sleep_ms(10)
            self._reset.value(1)
            await asyncio.sleep_ms(10)
        t.flush()
        t.wake()
        # SAMConfiguration first: over HSU it must be the first command after wake-up.
        await self.call(_CMD_SAM_CONFIGURATION, b"\x01\x14\x01", timeout_ms=timeout_ms)
        fw = await self.call(_CMD_GET_FIRMWARE_VERSION, timeout_ms=timeout_ms)
        if len(fw) != 4 or fw[0] != 0x32:
            raise Pn532Error("not a PN532")
        self.firmware = (fw[0], fw[1], fw[2], fw[3])
        # One passive activation try per InListPassiveTarget (returns at once when the
        # field is empty), ATR retries unchanged, no PSL retries.
        await self.call(_CMD_RF_CONFIGURATION, b"\x05\xff\x01\x01", timeout_ms=timeout_ms)
        # Retry timeout 0x07 (6.4 ms): how long InCommunicateThru waits for an answer
        # (the ECP frame gets none).
        await self.call(_CMD_RF_CONFIGURATION, b"\x02\x00\x0b\x07", timeout_ms=timeout_ms)
        return self.firmware

    async def recover(self, timeout_ms=500):
        """Resynchronise a chip that stopped answering: abort, reset pin, wake, set up again."""
        self.recoveries += 1
        t = self._t
        t.write(ACK)
        await asyncio.sleep_ms(2)
        return await self.begin(timeout_ms)

    async def field(self, on, timeout_ms=500):
        await self.call(_CMD_RF_CONFIGURATION, b"\x01\x01" if on else b"\x01\x00", timeout_ms=timeout_ms)

    # --- targets -------------------------------------------------------------

    async def send_ecp(self, frame, timeout_ms=200):
        """Send an ECP polling frame (ecp_access_frame) with CRC_A; phones never answer it."""
        await self.call(_CMD_WRITE_REGISTER, b"\x63\x02\x80\x63\x03\x80", timeout_ms=timeout_ms)
        data = await self.call(_CMD_IN_COMMUNICATE_THRU, b"", frame, timeout_ms=timeout_ms)
        if len(data) < 1:
            raise Pn532Error("short InCommunicateThru answer")
        st = data[0] & _STATUS_ERR_MASK
        if st not in (0, _ST_TIMEOUT):
            raise Pn532Error("ECP frame failed", st)

    async def list_target(self, timeout_ms=1000):
        """One InListPassiveTarget for a 106 kbit/s type A target; a Target or None."""
        d = await self.call(_CMD_IN_LIST_PASSIVE_TARGET, b"\x01\x00", timeout_ms=timeout_ms)
        if len(d) < 1:
            raise Pn532Error("short InListPassiveTarget answer")
        if d[0] == 0:
            return None
        if d[0] != 1 or len(d) < 6:
            raise Pn532Error("bad InListPassiveTarget answer")
        uid_len = d[5]
        end = 6 + uid_len
        if uid_len not in (4, 7, 10) or end > len(d):
            raise Pn532Error("bad UID length")
        ats = b""
        if end < len(d):
            tl = d[end]
            if tl < 1 or end + tl != len(d):
                raise Pn532Error("bad ATS length")
            ats = bytes(d[end : end + tl])
        elif d[4] & 0x20:
            raise Pn532Error("ISO-DEP target without ATS")
        return Target(d[1], bytes(d[2:4]), d[4], bytes(d[6:end]), ats)

    async def release(self, tg, timeout_ms=200):
        d = await self.call(_CMD_IN_RELEASE, bytes((tg,)), timeout_ms=timeout_ms)
        if len(d) != 1 or d[0] & _STATUS_ERR_MASK:
            raise Pn532Error("InRelease failed", d[0] & _STATUS_ERR_MASK if len(d) else None)

    @staticmethod
    def _check(status):
        st = status & _STATUS_ERR_MASK
        if st == 0:
            return
        if st == _ST_TIMEOUT or st == _ST_RELEASED or st == _ST_VANISHED:
            raise TargetLost("target lost (status %02X)" % st, st)
        raise Pn532Error("InDataExchange status %02X" % st, st)

    async def exchange(self, tg, data, out, timeout_ms=1000):
        """InDataExchange with host-side chaining; the answer goes into `out`.

        Data longer than 262 bytes leaves in parts with the MI bit on Tg; an answer
        whose status has MI set is fetched on with empty InDataExchanges. Returns
        the answer length. ISO-DEP chaining and S(WTX) on the RF side are the chip's.
        """
        n = len(data)
        mv = memoryview(data) if not isinstance(data, memoryview) else data
        head = self._extra
        pos = 0
        while True:
            part = n - pos
            more = part > _MAX_DATA
            if more:
                part = _MAX_DATA
            hv = memoryview(head)[:1]
            head[0] = tg | (_STATUS_MI if more else 0)
            d = await self.call(_CMD_IN_DATA_EXCHANGE, hv, mv[pos : pos + part], timeout_ms)
            if len(d) < 1:
                raise Pn532Error("short InDataExchange answer")
            self._check(d[0])
            pos += part
            if not more:
                break
            if len(d) != 1:
                raise Pn532Error("answer before the last command part")
        got = 0
        while True:
            k = len(d) - 1
            if got + k > len(out):
                raise Pn532Error("answer too long")
            out[got : got + k] = d[1:]
            got += k
            if not d[0] & _STATUS_MI:
                return got
            head[0] = tg
            d = await self.call(_CMD_IN_DATA_EXCHANGE, memoryview(head)[:1], b"", timeout_ms)
            if len(d) < 1:
                raise Pn532Error("short InDataExchange answer")
            self._check(d[0])
