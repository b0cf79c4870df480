"""The virtual board: a pty that behaves like an ESP32's USB serial port, MicroPython behind it.

    with VirtualBoard(flash_dir, link_path="/tmp/carkey-vboard") as board:
        print(board.port)   # mpremote connect /tmp/carkey-vboard ...

The MicroPython Unix port has no serial REPL of its own (its REPL is a readline
prompt without raw REPL, raw-paste or soft reset), so the ESP32 side of the protocol
lives here, in the host bridge, byte for byte as shared/runtime/pyexec.c answers it:
friendly REPL with banner, paste mode (Ctrl-E), raw REPL (Ctrl-A), raw-paste with
flow control, Ctrl-B, Ctrl-C (SIGINT to the running code), Ctrl-D soft reset
("MPY: soft reboot", then boot.py and, in the friendly REPL, main.py from the flash
directory). Code runs in a `micropython` process started with
carkey_host/mpy/vboard_shim.py, which maps "/" to the flash directory; a soft reset
replaces that process, so the heap and every module start fresh as on the board.
docs/VBOARD.md lists what differs from a real ESP32.

The board's "/" is its flash directory, so a host path handed to its virtual hardware
(the PN532 pty in CARKEY_PN532) would be looked up inside the flash. The bridge opens
such device files on the host instead, at every (re)start of the interpreter, and hands
the descriptor over as CARKEY_PN532_FD; the interpreter also gets a pipe,
CARKEY_HOST_LOG_FD, on which the virtual hardware reports what the host must hear (a
radio task that died, a device that could not be opened): `on_report` gets each line.
"""

import collections
import ctypes
import errno
import os
import select
import signal
import struct
import subprocess
import threading
import time
import tty
from pathlib import Path

from . import runner
from .errors import CarkeyError

SHIM = Path(__file__).resolve().parent / "mpy" / "vboard_shim.py"
# `import bluetooth` finds boards/virtual_hw/bluetooth.py; `import virtual_hw.platform`
# (the PLATFORM boards/virtual.py names) finds the package under boards/.
VIRTUAL_PATH = (runner.VIRTUAL_HW, runner.BOARDS_DIR)

# Serial REPL control characters.
CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5

RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
SOFT_REBOOT = b"MPY: soft reboot\r\n"
PASTE_BANNER = b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
# pyexec's stdin buffer is 256 bytes; raw-paste announces half of it as the window.
RAW_PASTE_WINDOW = 128
BOARD_NAME = "carkey virtual board with ESP32"

# Output waiting for a reader beyond the pty's own queue; more is dropped, as a USB
# serial port drops what no host reads.
OUT_LIMIT = 1 << 20
STARTUP_TIMEOUT = 30
FLASH_BYTES = 2 * 1024 * 1024
# Program input (what the running code may read from stdin) the bridge holds at most.
IN_LIMIT = 1 << 16
# Environment variables naming host device files the virtual hardware opens: the bridge
# opens them on the host and passes NAME_FD (boards/virtual_hw/host.py).
DEVICE_ENV = ("CARKEY_PN532",)
HOST_LOG_ENV = "CARKEY_HOST_LOG_FD"
REPORTS_KEPT = 100
# A report line starting so is the board's hardware at work (boards/virtual_hw/host.py):
# "kbd_intr N" sets the serial port's interrupt character (-1: none, Ctrl-C is data, as
# micropython.kbd_intr(-1) makes it on an ESP32); "watchdog MS" resets the board in MS ms,
# soft resets or not (a watchdog fed only that long), "watchdog 0" cancels it. pyexec sets the character back to Ctrl-C whenever code starts.
BRIDGE_PREFIX = "@bridge "
WATCHDOG_RESET = b"\r\nMPY: watchdog reset\r\n"

_COMPOUND = ("@", "if", "while", "for", "try", "with", "def", "class", "async")


class VirtualBoardError(CarkeyError):
    """The virtual board could not start (port path taken, MicroPython missing, ...)."""


def continue_with_input(text):
    """True when a friendly-REPL entry needs another line (mirrors py/repl.c)."""
    if not text:
        return False
    first = text.split(None, 1)[0] if text.split() else ""
    starts_compound = first.startswith("@") or first.rstrip(":").split("(")[0] in _COMPOUND
    depth = 0
    quote = None  # None, "'", '"', "'''", '"""'
    i = 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif c in "'\"":
            quote = text[i : i + 3] if text[i : i + 3] in ("'''", '"""') else c
            i += len(quote)
            continue
        elif c == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        i += 1
    if quote and len(quote) == 3:
        return True
    if depth > 0 or quote:
        return True
    if text.endswith("\\"):
        return True
    return starts_compound and not text.endswith("\n")


def _die_with_parent():
    # The board process must not outlive the bridge, even if the bridge is SIGKILLed.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _banner_version():
    """`MicroPython v1.29.0-preview on 2026-07-05` from the Unix port in use."""
    proc = runner.run(
        "-c", "import sys;v=sys.implementation.version;print('%d.%d.%d' % v[:3], v[3] if len(v) > 3 else '',"
        " sys.version.split(' on ')[-1])",
        env=runner.environment(None), timeout=30,
    )
    parts = proc.stdout.split()
    if proc.returncode != 0 or len(parts) < 2:
        return "MicroPython"
    version, date = parts[0], parts[-1]
    extra = parts[1] if len(parts) == 3 and parts[1] else ""
    return f"MicroPython v{version}{'-' + extra if extra else ''} on {date}"


class _Child:
    """One MicroPython process: a power-on or a soft reset's fresh interpreter."""

    def __init__(self, flash_dir, extra_paths, heapsize, flash_bytes, extra_env, report=print):
        cmd_r, self.cmd_w = os.pipe()
        self.evt_r, evt_w = os.pipe()
        self.log_r, log_w = os.pipe()
        self.log_partial = b""
        self.log_ended = False
        env = runner.environment(None)  # the shim puts the flash and the virtual board on sys.path
        env.update(extra_env)
        env[HOST_LOG_ENV] = str(log_w)
        devices = []
        for name in DEVICE_ENV:
            env.pop(name + "_FD", None)
            if not env.get(name):
                continue
            try:
                fd = os.open(env[name], os.O_RDWR | os.O_NOCTTY)
            except OSError as e:
                report(f"cannot open {env[name]} ({name}) on the host: {e.strerror}")
                continue
            devices.append(fd)
            env[name + "_FD"] = str(fd)
        try:
            self.proc = runner.launch(
                SHIM, cmd_r, evt_w, flash_dir, flash_bytes or 0, *extra_paths,
                heapsize=heapsize,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(cmd_r, evt_w, log_w, *devices),
                env=env,
                cwd=str(flash_dir),
                start_new_session=True,  # a Ctrl-C typed at the host terminal is not the board's
                preexec_fn=_die_with_parent,
            )
        finally:
            for fd in (cmd_r, evt_w, log_w, *devices):
                os.close(fd)
        os.set_blocking(self.log_r, False)
        self.started = False  # has it sent any event yet
        self.partial = b""  # a D event whose status byte has not arrived yet
        self.early_output = bytearray()  # what it printed before that, for an error message
        self.out_fd = self.proc.stdout.fileno()
        self.in_fd = self.proc.stdin.fileno()
        os.set_blocking(self.out_fd, False)
        os.set_blocking(self.evt_r, False)
        os.set_blocking(self.in_fd, False)

    def send_all(self, kind, payload):
        data = kind + struct.pack(">I", len(payload)) + payload
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.cmd_w, view)
            except BrokenPipeError:
                return
            view = view[n:]

    def ack(self):
        try:
            os.write(self.cmd_w, b"A")
        except BrokenPipeError:
            pass

    def interrupt(self):
        try:
            os.kill(self.proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self.cmd_w, self.evt_r, self.log_r):
            try:
                os.close(fd)
            except OSError:
                pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class VirtualBoard:
    """A pty speaking the ESP32 serial REPL protocol, backed by the MicroPython Unix port.

    flash_dir: the board's filesystem ("/" on the board); created if missing.
    link_path: optional symlink made to point at the pty (refused if the path exists).
    heapsize:  MicroPython heap, e.g. "64k" for a small ESP32 build (default: the port's).
    extra_path: host directories put on the board's module path after /lib, read-only
               (default: boards/virtual_hw and boards, the virtual radio, PN532 UART,
               car body and platform).
    flash_bytes: the filesystem size os.statvfs reports (default 2 MiB, an ESP32 with
               4 MB flash; None: the host disk's figures). Writes are not limited.
    env:       extra environment for the interpreter, e.g. {"CARKEY_PN532": pty path,
               "CARKEY_AIR": "127.0.0.1:7300"} for boards/virtual_hw. Paths in DEVICE_ENV
               are host paths (relative ones from the current directory), opened on the host.
    on_report: called (from the bridge thread) with each line the virtual hardware reports
               to the host; the last REPORTS_KEPT lines are also kept in `reports`.
    """

    def __init__(self, flash_dir, link_path=None, heapsize=None, extra_path=VIRTUAL_PATH,
                 flash_bytes=FLASH_BYTES, env=None, on_report=None):
        self.flash_bytes = flash_bytes
        self.env = dict(env or {})
        for name in DEVICE_ENV:
            if self.env.get(name):
                self.env[name] = os.path.abspath(self.env[name])  # links kept: a restarted stand-in moves them
        self.on_report = on_report
        self.reports = collections.deque(maxlen=REPORTS_KEPT)
        self.flash_dir = Path(flash_dir).resolve()
        self.link_path = Path(link_path) if link_path else None
        self.heapsize = heapsize
        self.extra_path = [Path(p).resolve() for p in extra_path if Path(p).is_dir()]
        self.port = None
        self.boots = 0  # how many interpreters were started (power-on + soft resets)
        self._master = self._slave = None
        self._thread = None
        self._wake_r = self._wake_w = None
        self._child = None
        self._error = None

    # --- lifecycle ----------------------------------------------------------------

    def start(self):
        if self._thread is not None:
            raise VirtualBoardError("the virtual board is already running")
        if self.link_path is not None and (self.link_path.exists() or self.link_path.is_symlink()):
            raise VirtualBoardError(f"{self.link_path} already exists: remove it or choose another --link path")
        if self.flash_dir.exists() and not self.flash_dir.is_dir():
            raise VirtualBoardError(f"flash directory {self.flash_dir} is not a directory")
        try:
            runner.interpreter()
        except FileNotFoundError as e:
            raise VirtualBoardError(str(e)) from None
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self._banner = (_banner_version() + "; " + BOARD_NAME).encode()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        if self.link_path is not None:
            try:
                self.link_path.symlink_to(self.port)
            except OSError as e:
                self._close_fds()
                raise VirtualBoardError(f"cannot create {self.link_path}: {e.strerror}") from None
        self._wake_r, self._wake_w = os.pipe()
        self._init_state()
        self._stopping = False
        self._up = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vboard", daemon=True)
        self._thread.start()
        # Up means at a prompt, or running main.py (which may never end).
        if not self._up.wait(STARTUP_TIMEOUT) or self._error is not None:
            error = self._error or VirtualBoardError(f"the board did not come up within {STARTUP_TIMEOUT} s")
            self.stop()
            raise error
        return self

    def stop(self):
        if self._thread is None:
            return
        self._stopping = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=10)
        self._thread = None
        if self._child is not None:
            self._child.close()
            self._child = None
        if self.link_path is not None and self.link_path.is_symlink():
            self.link_path.unlink()
        self._close_fds()

    def _close_fds(self):
        for name in ("_master", "_slave", "_wake_r", "_wake_w"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def pid(self):
        """The process id of the interpreter running now (changes on every soft reset)."""
        return self._child.proc.pid if self._child else None

    @property
    def error(self):
        """An unexpected failure of the bridge thread, if one stopped it."""
        return self._error

    # --- state ----------------------------------------------------------------------

    def _init_state(self):
        self._mode = "friendly"  # or "raw"
        self._state = "busy"  # idle, busy (command sent, not started), running, ending
        self._steps = []  # what to send after the current command: ("p", path) or "prompt"
        self._line = bytearray()  # friendly: the entry so far; raw: the code so far
        self._cont = False  # friendly: inside a multi-line entry
        self._paste = None  # friendly paste mode buffer, or None
        self._raw_paste = None  # raw-paste buffer, or None
        self._window_left = 0
        self._esc = 0  # friendly: bytes of an escape sequence still to swallow
        self._inbuf = bytearray()  # client bytes not yet consumed by the REPL
        self._outbuf = bytearray()  # bytes for the client that the pty would not take yet
        self._cmd_kind = None
        self._last_status = b"0"
        self._intr = CTRL_C  # the serial port's interrupt character, None: none
        self._watchdog_at = None  # monotonic time of a watchdog reset to come

    def _power_on(self, reason=None):
        if self._child is not None:
            self._child.close()
        if reason:
            self._write(reason)
        self._intr = CTRL_C  # the watchdog's deadline outlives a soft reset (carkey.hw.maintenance)
        self._child = _Child(self.flash_dir, self.extra_path, self.heapsize, self.flash_bytes, self.env,
                             self._report)
        self.boots += 1
        self._steps = [("p", "boot.py")]
        if self._mode == "friendly":
            self._steps.append(("p", "main.py"))
        self._steps.append("prompt")
        self._next_step()

    def _soft_reset(self):
        self._power_on(SOFT_REBOOT)

    def _next_step(self):
        while self._steps:
            step = self._steps.pop(0)
            if step == "prompt":
                self._prompt(banner=True)
                return
            kind, path = step
            if kind == "p" and path == "main.py" and self._last_status not in (b"0", b"N"):
                continue  # boot.py failed: pyexec skips main.py
            self._dispatch(kind.encode(), path.encode())
            return

    def _prompt(self, banner=False):
        self._state = "idle"
        self._up.set()
        self._line.clear()
        self._cont = False
        if self._mode == "raw":
            self._write((RAW_BANNER if banner else b"") + b">")
        else:
            if banner:
                self._write(self._banner + b'\r\nType "help()" for more information.\r\n')
            self._write(b">>> ")

    def _dispatch(self, kind, payload):
        self._cmd_kind = kind
        self._state = "busy"
        self._child.send_all(kind, payload)

    # --- I/O ----------------------------------------------------------------------------

    def _write(self, data):
        if len(self._outbuf) + len(data) > OUT_LIMIT:
            data = data[: max(0, OUT_LIMIT - len(self._outbuf))]
        self._outbuf += data
        self._flush_out()

    def _flush_out(self):
        while self._outbuf:
            try:
                n = os.write(self._master, self._outbuf)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno == errno.EIO:
                    return
                raise
            del self._outbuf[:n]

    def _loop(self):
        try:
            # Every interpreter is started from this thread: PR_SET_PDEATHSIG follows the
            # thread that forked, and this one lives exactly as long as the board.
            self._power_on()
            while not self._stopping:
                child = self._child
                rlist = [self._wake_r, self._master, child.out_fd, child.evt_r]
                if not child.log_ended:
                    rlist.append(child.log_r)
                wlist = [self._master] if self._outbuf else []
                r, w, _ = select.select(rlist, wlist, [], 0.5)
                if self._stopping:
                    break
                if w:
                    self._flush_out()
                if child.out_fd in r:
                    self._pump_child_output(child)
                if child.evt_r in r:
                    self._events(child)  # before reports: a G resets what a report set after it
                if child.log_r in r:
                    self._pump_reports(child)
                if self._watchdog_at is not None and time.monotonic() >= self._watchdog_at:
                    self._mode = "friendly"
                    self._watchdog_at = None
                    self._power_on(WATCHDOG_RESET)
                    continue
                if self._master in r:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        data = b""
                    self._inbuf += data
                self._process_input()
        except Exception as e:  # keep the reason; stop() still cleans up
            self._error = e

    def _pump_reports(self, child):
        try:
            data = os.read(child.log_r, 4096)
        except (BlockingIOError, OSError):
            return
        if not data:
            child.log_ended = True  # its end closed: nothing more to read (and no busy loop)
            return
        lines = (child.log_partial + data).split(b"\n")
        child.log_partial = lines.pop()[-4096:]
        for line in lines:
            text = line.decode("utf-8", "replace")
            if text.startswith(BRIDGE_PREFIX):
                self._hardware(text[len(BRIDGE_PREFIX):].split())
            else:
                self._report(text)

    def _hardware(self, words):
        try:
            value = int(words[1])
        except (IndexError, ValueError):
            return
        if words[0] == "kbd_intr":
            self._intr = value if value >= 0 else None
        elif words[0] == "watchdog":  # 0: the application feeds it again
            self._watchdog_at = time.monotonic() + value / 1000 if value > 0 else None

    def _report(self, text):
        self.reports.append(text)
        if self.on_report is not None:
            self.on_report(text)

    def _pump_child_output(self, child):
        while True:
            try:
                data = os.read(child.out_fd, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            if not child.started and len(child.early_output) < 4096:
                child.early_output += data
            # ESP32 stdout is "cooked": every \n leaves the board as \r\n.
            self._write(data.replace(b"\n", b"\r\n"))

    def _events(self, child):
        try:
            data = os.read(child.evt_r, 256)
        except BlockingIOError:
            return
        if not data:
            if not child.started:
                # It never came up (a bad heap size, a broken install): restarting would loop.
                self._pump_child_output(child)
                output = bytes(child.early_output)
                self._error = VirtualBoardError(
                    "MicroPython exited before the board came up: " + (output.decode(errors="replace").strip() or
                                                                        f"exit status {child.proc.wait()}"))
                self._stopping = True
                self._up.set()
                return
            # The interpreter died (os._exit, a crash): the board resets.
            self._pump_child_output(child)
            self._mode = "friendly"
            self._watchdog_at = None
            self._power_on(b"\r\nMPY: board process ended, hard reset\r\n")
            return
        child.started = True
        data = child.partial + data
        child.partial = b""
        if data.endswith(b"D"):
            child.partial, data = b"D", data[:-1]  # its status byte is still on the way
        i = 0
        while i < len(data):
            ev = data[i : i + 1]
            i += 1
            if ev == b"G":
                self._intr = CTRL_C  # pyexec: Ctrl-C interrupts the code it starts
                if self._state == "busy":
                    self._state = "running"
                    self._up.set()
                    self._process_input()  # what arrived before the code started is its input
            elif ev == b"E":
                # The code ended: no SIGINT from now on, and the supervisor learns so from
                # the A. An interrupt may make it send E twice; only the first is answered.
                if self._state in ("running", "interrupted"):
                    self._state = "ending"
                    child.ack()
            elif ev == b"D":
                self._last_status = data[i : i + 1]
                i += 1
                self._state = "ending"
            elif ev == b"P":
                if self._state not in ("busy", "running", "interrupted", "ending"):
                    continue
                self._pump_child_output(child)
                self._finish_command()

    def _finish_command(self):
        status = self._last_status
        if status == b"X":
            self._soft_reset()  # SystemExit: pyexec's forced exit
            return
        if self._steps:
            self._next_step()
            return
        self._prompt()

    def _to_program(self, data):
        try:
            os.write(self._child.in_fd, data[:IN_LIMIT])
        except (BlockingIOError, BrokenPipeError):
            pass  # a full receive buffer drops bytes, as a UART does

    # --- the REPL, one byte at a time -------------------------------------------------------

    def _process_input(self):
        while self._inbuf:
            if self._state == "busy":
                return  # not started yet: the REPL gets them if the command runs no code
            if self._state == "running":
                # The running code reads what arrives, up to a Ctrl-C; what follows a Ctrl-C
                # waits for the REPL, as it waits in the board's receive buffer.
                data = bytes(self._inbuf)
                cut = data.find(bytes([self._intr])) if self._intr is not None else -1
                if cut < 0:
                    self._inbuf.clear()
                    self._to_program(data)
                    return
                del self._inbuf[: cut + 1]
                if cut:
                    self._to_program(data[:cut])
                self._state = "interrupted"
                self._child.interrupt()
                return
            if self._state == "interrupted":
                # Every further Ctrl-C is another interrupt (code may catch the first one);
                # the other bytes wait for the prompt.
                while CTRL_C in self._inbuf:
                    self._inbuf.remove(CTRL_C)
                    self._child.interrupt()
                return
            if self._state != "idle":
                return  # ending: the bytes wait for the prompt
            c = self._inbuf.pop(0)
            if self._raw_paste is not None:
                self._raw_paste_byte(c)
            elif self._mode == "raw":
                self._raw_byte(c)
            elif self._paste is not None:
                self._paste_byte(c)
            else:
                self._friendly_byte(c)

    def _raw_byte(self, c):
        line = self._line
        if c == CTRL_A:
            if len(line) == 2 and line[0] == CTRL_E:
                command = line[1]
                self._line.clear()
                if command == ord("A"):
                    self._write(b"R\x01" + struct.pack("<H", RAW_PASTE_WINDOW) + b"\x01")
                    self._raw_paste = bytearray()
                    self._window_left = RAW_PASTE_WINDOW
                else:
                    self._write(b"R\x00>")
                return
            self._line.clear()
            self._write(RAW_BANNER + b">")
        elif c == CTRL_B:
            self._line.clear()
            self._mode = "friendly"
            self._write(b"\r\n")
            self._prompt(banner=True)
        elif c == CTRL_C:
            self._line.clear()
        elif c == CTRL_D:
            self._write(b"OK")
            if not line:
                self._write(b"\r\n")
                self._soft_reset()
                return
            code = bytes(line)
            self._line.clear()
            self._dispatch(b"r", code)
        else:
            line.append(c)

    def _raw_paste_byte(self, c):
        if c in (CTRL_C, CTRL_D):
            code = bytes(self._raw_paste)
            self._raw_paste = None
            self._write(b"\x04")  # end of data acknowledged
            if c == CTRL_C:
                self._write(b"\x04Traceback (most recent call last):\r\nKeyboardInterrupt: \r\n\x04>")
                self._state = "idle"
                return
            self._dispatch(b"r", code)
            return
        self._raw_paste.append(c)
        self._window_left -= 1
        if self._window_left == 0:
            self._write(b"\x01")
            self._window_left = RAW_PASTE_WINDOW

    def _paste_byte(self, c):
        if c == CTRL_C:
            self._paste = None
            self._write(b"\r\n")
            self._prompt()
        elif c == CTRL_D:
            code = bytes(self._paste)
            self._paste = None
            self._write(b"\r\n")
            self._dispatch(b"f", code)
        else:
            self._paste.append(c)
            self._write(b"\r\n=== " if c == 13 else bytes([c]))

    def _friendly_byte(self, c):
        if self._esc:
            # Swallow cursor keys and the like (ESC [ X, ESC O X): no line editing here.
            self._esc = 0 if (self._esc == 2 and 0x40 <= c <= 0x7E) or self._esc > 8 else self._esc + 1
            return
        line = self._line
        at_start = not self._cont and not self._current_line()
        if c == 0x1B:
            self._esc = 1
        elif c == CTRL_A and at_start:
            self._mode = "raw"
            self._write(b"\r\n")
            self._prompt(banner=True)
        elif c == CTRL_B and at_start:
            self._write(b"\r\n")
            self._prompt(banner=True)
        elif c == CTRL_C:
            self._write(b"\r\n")
            self._prompt()
        elif c == CTRL_D:
            if self._cont:
                self._write(b"\r\n")
                self._exec_friendly()
            elif not line:
                self._write(b"\r\n")
                self._soft_reset()
        elif c == CTRL_E and at_start:
            self._paste = bytearray()
            self._write(PASTE_BANNER)
        elif c == 13:  # Enter
            self._write(b"\r\n")
            text = line.decode("utf-8", "replace")
            if not self._cont and not text:
                self._write(b">>> ")
            elif continue_with_input(text):
                line += b"\n"
                self._cont = True
                self._write(b"... ")
            else:
                self._exec_friendly()
        elif c in (8, 127):
            if self._current_line():
                del line[-1]
                self._write(b"\x08\x1b[K")
        elif c == 10:
            pass
        elif c >= 32 or c == 9:
            line.append(c)
            self._write(bytes([c]))

    def _current_line(self):
        return self._line[self._line.rfind(b"\n") + 1 :]

    def _exec_friendly(self):
        code = bytes(self._line).rstrip(b"\n")
        self._line.clear()
        self._cont = False
        self._dispatch(b"s", code)
