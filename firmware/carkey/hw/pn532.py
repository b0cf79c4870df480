# carkey — PN532 NFC front end: frames, errors and the reader commands over any transport.
# SPDX-License-Identifier: MIT
#
# Pn532(transport) speaks the PN532 host protocol (NXP UM0701-02): normal frames
# 00 00 FF LEN LCS TFI PD.. DCS 00, extended frames 00 00 FF FF FF LENM LENL LCS
# TFI PD.. DCS 00, ACK 00 00 FF 00 FF 00, NACK 00 00 FF FF 00 00. Every command
# is acknowledged by an ACK before its answer; an answer with a bad checksum is
# asked for again with a NACK; the chip's syntax-error frame (TFI 7F) raises.
#
# Transports live in their own modules so a board loads only its bus:
# pn532_hsu.UartTransport, pn532_i2c.I2cTransport, pn532_spi.SpiTransport. Each
# has wake(), write(frame), flush() and async receive(deadline) -> one frame view
# from its start code 00 FF.
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
MAX_FRAME = const(8 + 2 + 3 + _MAX_DATA)  # extended header + TFI/CMD/Tg + data + DCS/postamble
_ACK_TIMEOUT_MS = const(50)  # the ACK comes within ~1 ms of a command's last byte
POLL_MS = const(1)  # how long a transport sleeps between looks at the bus
_NACK_RETRIES = const(2)

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"


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
        self._tx = bytearray(MAX_FRAME)
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
            if n > MAX_FRAME - 10:
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
        s = sum(self._txmv[start:p])  # sum() runs in C: no per-byte bytecode
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
        if sum(frame[start : n - 1]) & 0xFF:
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
        # MxRtyATR FF (default), MxRtyPSL 01, MxRtyPassiveActivation 01: two activation
        # tries, so InListPassiveTarget returns at once on an empty field instead of
        # waiting for a target forever (FF, the chip's default).
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
