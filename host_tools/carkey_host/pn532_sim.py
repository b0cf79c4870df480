"""A PN532 stand-in on a pty: the virtual board's NFC front end, byte for byte.

`Pn532Sim` opens a pseudo-terminal and answers PN532 host frames on it as the chip
does over HSU (docs/NFC.md): an ACK after every well-formed command frame, the
answer frame after it, the last answer again after a NACK, a command cancelled by
an ACK from the host, a wake-up on the long preamble `55 55 00 00 00`. The firmware
opens `sim.path` (or the symlink given as `link`) with boards/virtual_hw/uart.py.

The antenna holds zero or one target: any object with `uid`, `atqa`, `sak`, `ats`
and `process(capdu) -> rapdu` (optional `activate()`, and `requires_ecp`: answer a
poll only after an ECP frame, as phones in express mode do). `PhoneTarget` puts an
Aliro `UserDevice` or a `carkey_host.phone.Phone` there.

Fault injection: `corrupt_next_answer()`, `drop_next_ack()`, `delay_next_answer(s)`,
`remove_after(n_apdus)`, `hang()` (ignore everything until the next wake-up), and
`send_error_frame_next()`. Commands, APDU pairs and ECP frames are recorded, the newest
LOG_LIMIT of each (`carkey nfc-sim` runs for hours); `apdu_count` counts every APDU.
"""

import os
import select
import threading
import time
import tty
from collections import deque

from . import nfc_timing
from .aliro.user_device import LinkDropped, State

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"
ERROR_FRAME = b"\x00\x00\xff\x01\xff\x7f\x81\x00"
LOG_LIMIT = 256  # entries each record keeps, the newest
WAKE = b"\x55\x55\x00\x00\x00"

FIRMWARE = (0x32, 0x01, 0x06, 0x07)  # IC PN532, version 1.6, ISO 14443-A/B and 18092 supported
MAX_DATA = 262  # one InDataExchange, either direction

ST_OK = 0x00
ST_TIMEOUT = 0x01
ST_MI = 0x40
ST_BAD_PARAMETER = 0x27  # command not acceptable in the current context

# ATS of a phone emulating an ISO-DEP card: TL 05, T0 78 (FSCI 8: FSC 256; TA TB TC
# follow), TA 80, TB 70 (FWI 7: about 39 ms, SFGI 0), TC 02 (CID not supported).
PHONE_ATS = bytes.fromhex("0578807002")


def frame(payload):
    """A PN532 frame around TFI+data: normal up to 255 bytes, extended above."""
    n = len(payload)
    if n > 255:
        head = b"\x00\x00\xff\xff\xff" + bytes([n >> 8, n & 0xFF, (-(n >> 8) - n) & 0xFF])
    else:
        head = b"\x00\x00\xff" + bytes([n, (-n) & 0xFF])
    return head + payload + bytes([(-sum(payload)) & 0xFF, 0])


class TargetGone(Exception):
    """A target's process() raises this when it goes silent (the phone dropped the link)."""


class PhoneTarget:
    """An Aliro user device on the antenna: a phone emulating an ISO-DEP card.

    `device` is a `UserDevice` or a `Phone` (its `.device` is used, and its
    transaction bookkeeping runs as for a TCP connection). `on_end(transaction)` is
    called when a presentation that exchanged APDUs ends (InRelease, field off, a new
    activation) with a `phone.Transaction` (for a bare UserDevice: None).
    """

    def __init__(self, device, uid=b"\x08\x12\x34\x56", atqa=b"\x00\x04", sak=0x20, ats=PHONE_ATS,
                 requires_ecp=False, on_end=None):
        self.phone = device if hasattr(device, "device") else None
        self.device = device.device if self.phone is not None else device
        self.uid, self.atqa, self.sak, self.ats = bytes(uid), bytes(atqa), sak, bytes(ats)
        self.requires_ecp = requires_ecp
        self.on_end = on_end
        self.apdus = deque(maxlen=LOG_LIMIT)
        self.apdu_count = 0
        self.presentations = 0
        self._mark = 0

    def activate(self):
        self.device.reset()
        self.device.last_reader_status = self.device.last_control_flow = None
        self.presentations += 1
        self._mark = self.apdu_count
        if self.phone is not None:
            from .phone import Transaction

            self.phone.transaction = Transaction(self.presentations)
            self.phone._pending = []

    def process(self, capdu):
        try:
            rapdu = self.device.process(capdu)
        except LinkDropped:
            if self.phone is not None and self.phone.transaction is not None:
                self.phone.transaction.dropped = True
            raise TargetGone("the device dropped the link") from None
        self.apdus.append((capdu, rapdu))
        self.apdu_count += 1
        if self.phone is not None and self.phone.transaction is not None and self.device.state is State.SECURE:
            self.phone.transaction.authenticated = True
        return rapdu

    def deactivate(self):
        txn = None
        if self.phone is not None:
            txn = self.phone.transaction
            if txn is not None:
                txn.reader_status = self.device.last_reader_status
                txn.control_flow = self.device.last_control_flow
            self.phone.keydir.save_kpersistent_cache(self.device.kpersistent_cache)
        self.device.reset()
        if self.on_end is not None and self.apdu_count > self._mark:
            self._mark = self.apdu_count
            self.on_end(txn)


class Pn532Sim:
    def __init__(self, link=None, firmware=FIRMWARE, chunk=16, awake=False, realtime=False, baud=115200):
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        # Like a UART with nobody reading: bytes the host does not take are lost,
        # the stand-in never blocks on them.
        os.set_blocking(self._master, False)
        self.dropped_bytes = 0
        self.path = os.ttyname(self._slave)
        self.link = link
        if link is not None:
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(self.path, link)
        self.firmware = firmware
        self.chunk = chunk
        self.awake = awake  # HSU: after power-up the chip waits for the wake-up preamble
        # realtime: ACKs and answers leave when a real PN532 on HSU would have them ready:
        # frame bytes at `baud`, the chip's time per command, air time (carkey_host.nfc_timing).
        self.realtime = realtime
        self._byte_s = 10 / baud
        self._params = nfc_timing.Params()
        self._rf_s = 0.0
        self.target = None
        self._active = False
        self._muted = False  # the target stopped answering (dropped the link)
        self._ecp_seen = False
        self.field_on = False
        self.commands = deque(maxlen=LOG_LIMIT)  # (command code, parameters) of well-formed frames
        self.apdus = deque(maxlen=LOG_LIMIT)  # (capdu, rapdu) of whole APDUs exchanged with a target
        self.apdu_count = 0
        self.ecp_frames = deque(maxlen=LOG_LIMIT)
        self.wakeups = 0
        self.empty_polls = 0  # InListPassiveTarget answered with no target
        self.nacks = 0
        self.aborts = 0
        self._last_answer = None
        self._pending = []  # frames waiting for their time: [due, bytes, is_answer]
        self._chain = bytearray()  # host-side MI chaining of one C-APDU
        self._answer_rest = b""  # the rest of an R-APDU still to be fetched (MI)
        self._faults = {}
        self._remove_after = None
        self._hung = False
        self._rx = bytearray()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="pn532-sim", daemon=True)
        self._thread.start()

    # --- antenna and faults ---------------------------------------------------

    def place(self, target):
        with self._cond:
            self.target = target
            self._active = False
            self._muted = False
            self._ecp_seen = False
            self._cond.notify_all()

    def remove(self):
        with self._cond:
            self._deactivate()
            self.target = None
            self._cond.notify_all()

    def corrupt_next_answer(self, times=1):
        self._faults["corrupt"] = times

    def drop_next_ack(self):
        self._faults["drop_ack"] = 1

    def delay_next_answer(self, seconds):
        self._faults["delay"] = seconds

    def send_error_frame_next(self):
        self._faults["error_frame"] = 1

    def remove_after(self, n_apdus):
        """Take the target away once it has answered `n_apdus` more APDUs."""
        self._remove_after = self.apdu_count + n_apdus

    def hang(self):
        """Stop answering anything until the host sends the wake-up preamble."""
        with self._cond:
            self._hung = True
            self._pending = []

    def wait_for(self, predicate, timeout=10.0):
        """Block until predicate(sim) is true (checked after every command)."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError("PN532 stand-in: condition not reached")

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.link is not None and os.path.islink(self.link):
            os.unlink(self.link)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- wire ---------------------------------------------------------------

    def _write(self, data):
        # In pieces, as a UART delivers them.
        for i in range(0, len(data), self.chunk):
            piece = data[i : i + self.chunk]
            try:
                n = os.write(self._master, piece)
            except BlockingIOError:
                n = 0
            except OSError:  # the host side is gone
                n = 0
            self.dropped_bytes += len(piece) - n

    def _run(self):
        while not self._stop:
            timeout = 0.05
            with self._cond:
                if self._pending:
                    timeout = max(0.0, min(timeout, self._pending[0][0] - time.monotonic()))
            ready, _, _ = select.select([self._master], [], [], timeout)
            if ready:
                try:
                    data = os.read(self._master, 4096)
                except BlockingIOError:
                    data = b""
                except OSError:  # EIO: nobody has the pty open right now
                    data = b""
                    time.sleep(0.01)
                if data:
                    with self._cond:
                        self._feed(data)
                        self._cond.notify_all()
            with self._cond:
                self._flush_due()

    def _flush_due(self):
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            _, data, is_answer = self._pending.pop(0)
            if is_answer:
                self._send_answer(data)
            else:
                self._write(data)

    def _out_at(self, due, data, is_answer):
        self._pending.append([due, data, is_answer])
        self._pending.sort(key=lambda item: item[0])  # stable: an ACK stays before its answer
        self._flush_due()

    def _feed(self, data):
        rx = self._rx
        rx += data
        if WAKE in rx:
            cut = rx.index(WAKE) + len(WAKE)
            del rx[:cut]
            self.wakeups += 1
            self.awake = True
            self._hung = False
        if self._hung or not self.awake:
            # Asleep or hung: only a wake-up gets through; keep a tail that may start one.
            del rx[: max(0, len(rx) - len(WAKE))]
            return
        while True:
            i = rx.find(b"\x00\xff")
            if i < 0:
                del rx[: max(0, len(rx) - 1)]
                return
            del rx[:i]
            if len(rx) < 4:
                return
            a, b = rx[2], rx[3]
            if a == 0x00 and b == 0xFF:  # ACK from the host: cancel the command under way
                if len(rx) < 5:
                    return
                del rx[:5]
                answers = [p for p in self._pending if p[2]]
                if answers:
                    self._pending = [p for p in self._pending if not p[2]]
                    self.aborts += 1
                continue
            if a == 0xFF and b == 0x00:  # NACK: send the last answer again
                if len(rx) < 5:
                    return
                del rx[:5]
                self.nacks += 1
                if self._last_answer is not None:
                    self._send_answer(self._last_answer)
                continue
            if a == 0xFF and b == 0xFF:
                if len(rx) < 7:
                    return
                n = (rx[4] << 8) | rx[5]
                if (rx[4] + rx[5] + rx[6]) & 0xFF:
                    del rx[:2]
                    continue
                start = 7
            else:
                if (a + b) & 0xFF:
                    del rx[:2]  # bad length checksum: the chip ignores the frame
                    continue
                n = a
                start = 4
            if len(rx) < start + n + 2:
                return
            payload = bytes(rx[start : start + n])
            dcs = rx[start + n]
            del rx[: start + n + 2]
            if (sum(payload) + dcs) & 0xFF or n < 2 or payload[0] != 0xD4:
                continue  # damaged or not for us: no ACK, the host times out
            self._command(payload[1], payload[2:], 1 + start + n + 2)

    def _command(self, cmd, params, frame_bytes):
        self.commands.append((cmd, params))
        rt = self.realtime
        due = time.monotonic() + (frame_bytes + len(ACK)) * self._byte_s * rt
        if self._faults.pop("drop_ack", None) is None:
            self._out_at(due, ACK, False)
        self._rf_s = 0.0
        if self._faults.pop("error_frame", None):
            answer = ERROR_FRAME
        else:
            handler = _HANDLERS.get(cmd)
            data = handler(self, params) if handler else None
            answer = ERROR_FRAME if data is None else frame(bytes([0xD5, cmd + 1]) + data)
        if rt:
            due += self._params.chip_ms / 1000 + self._rf_s + len(answer) * self._byte_s
        self._out_at(due + self._faults.pop("delay", 0), answer, True)

    def _send_answer(self, data):
        self._last_answer = data
        times = self._faults.get("corrupt")
        if times:
            self._faults["corrupt"] = times - 1
            bad = bytearray(data)
            bad[-2] ^= 0x01  # DCS
            data = bytes(bad)
        self._write(data)

    # --- commands -------------------------------------------------------------

    def _deactivate(self):
        if self._active and self.target is not None and hasattr(self.target, "deactivate"):
            self.target.deactivate()
        self._active = False
        self._chain = bytearray()
        self._answer_rest = b""

    def _get_firmware_version(self, params):
        return bytes(self.firmware) if not params else None

    def _sam_configuration(self, params):
        if len(params) < 1 or params[0] not in (1, 2, 3, 4):
            return None
        return b""

    def _rf_configuration(self, params):
        if len(params) < 2:
            return None
        if params[0] == 0x01:
            self.field_on = bool(params[1] & 1)
            if not self.field_on:
                self._deactivate()
                self._ecp_seen = False
        return b""

    def _write_register(self, params):
        return b"" if params and len(params) % 3 == 0 else None

    def _in_communicate_thru(self, params):
        if not params:
            return None
        self.field_on = True
        if params[0] == 0x6A:
            self.ecp_frames.append(bytes(params))
            self._ecp_seen = True
        self._rf_s = nfc_timing.rf_frame_s(len(params) + nfc_timing.CRC_A) + self._params.ecp_wait_ms / 1000
        return bytes([ST_TIMEOUT])  # nobody answers a polling frame

    def _in_list_passive_target(self, params):
        if len(params) < 2 or params[0] not in (1, 2):
            return None
        self.field_on = True
        t = self.target
        if params[1] != 0x00 or t is None or (getattr(t, "requires_ecp", False) and not self._ecp_seen):
            self.empty_polls += 1
            return b"\x00"
        self._deactivate()
        if hasattr(t, "activate"):
            t.activate()
        self._active = True
        self._muted = False
        self._rf_s = nfc_timing.activation_s(self._params)
        return b"\x01\x01" + t.atqa + bytes([t.sak, len(t.uid)]) + t.uid + t.ats

    def _in_data_exchange(self, params):
        if len(params) < 1:
            return None
        tg, data = params[0], params[1:]
        if tg & 0x3F != 1 or len(data) > MAX_DATA:
            return None
        if not self._active or self.target is None or self._muted:
            return bytes([ST_TIMEOUT])
        if tg & ST_MI:
            self._chain += data
            return bytes([ST_OK])
        if not data and self._answer_rest:
            return self._answer_part()
        capdu = bytes(self._chain + data)
        self._chain = bytearray()
        if self._remove_after is not None and self.apdu_count >= self._remove_after:
            self._remove_after = None  # taken away before this command reached it
            self._deactivate()
            self.target = None
            return bytes([ST_TIMEOUT])
        try:
            rapdu = self.target.process(capdu)
        except TargetGone:
            self._muted = True
            return bytes([ST_TIMEOUT])
        self.apdus.append((capdu, rapdu))
        self.apdu_count += 1
        self._rf_s = nfc_timing.rf_apdu_s(len(capdu), len(rapdu), self._params)
        self._answer_rest = rapdu
        return self._answer_part()

    def _answer_part(self):
        part, self._answer_rest = self._answer_rest[:MAX_DATA], self._answer_rest[MAX_DATA:]
        return bytes([ST_MI if self._answer_rest else ST_OK]) + part

    def _in_release(self, params):
        if len(params) != 1:
            return None
        self._deactivate()
        return bytes([ST_OK])

    _in_deselect = _in_release

    def _power_down(self, params):
        self.awake = False
        self._deactivate()
        return bytes([ST_OK])


_HANDLERS = {
    0x02: Pn532Sim._get_firmware_version,
    0x08: Pn532Sim._write_register,
    0x14: Pn532Sim._sam_configuration,
    0x16: Pn532Sim._power_down,
    0x32: Pn532Sim._rf_configuration,
    0x40: Pn532Sim._in_data_exchange,
    0x42: Pn532Sim._in_communicate_thru,
    0x44: Pn532Sim._in_deselect,
    0x4A: Pn532Sim._in_list_passive_target,
    0x52: Pn532Sim._in_release,
}


def serve_phone(phone, link=None, requires_ecp=False, taps=None, on_ready=None, on_tap=None, stop=None):
    """Put `phone` (a carkey_host.phone.Phone) on the antenna of a new stand-in and serve
    presentations until `taps` transactions ended or `stop` (a threading.Event) is set.

    on_ready(sim) runs once the pty exists; on_tap(number, transaction) after each.
    Returns the transactions.
    """
    done = []

    def ended(txn):
        done.append(txn)
        if on_tap is not None:
            on_tap(len(done), txn)

    with Pn532Sim(link=link) as sim:
        sim.place(PhoneTarget(phone, requires_ecp=requires_ecp, on_end=ended))
        if on_ready is not None:
            on_ready(sim)
        with sim._cond:
            while taps is None or len(done) < taps:
                if stop is not None and stop.is_set():
                    break
                sim._cond.wait(0.1)
    return done
