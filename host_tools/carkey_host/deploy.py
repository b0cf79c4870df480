"""Install the firmware on a board over its USB serial REPL: compile, compare hashes, copy what changed.

    report = deploy("/dev/ttyUSB0", "esp32_devkitc")

What goes where (install_plan):
  /lib/carkey/**.mpy   every firmware module, compiled with mpy-cross (bytecode: one
                       build fits every board; "/lib" is on an ESP32's sys.path),
                       except the benchmark's (BENCH_ONLY: `carkey bench --port` copies them)
  /board.py            the board description (boards/<board>.py), kept as source so
                       it stays readable on the board; firmware loads it with `import board`
  /boot.py, /main.py   from firmware/ when present, as source (the ESP32 runs them as .py)

One exec round reads every planned file's size and SHA-256 on the board (plus free
space and what else sits under /lib/carkey); only missing or different files are
copied, files left under /lib/carkey by older versions are removed (a stale .py would
shadow the new .mpy), and a second round re-hashes what was written.

mpremote is used as a library (its SerialTransport), pinned in requirements.lock:
one connection and one raw REPL for the whole deploy, a progress callback
per chunk, and typed errors (TransportError / TransportExecError) to map onto exit
codes, where chained `mpremote` subprocesses would reconnect per step and leave
only their text output to interpret.
"""

import ast
import contextlib
import hashlib
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import paths
from .build import BuildError, compile_firmware
from .errors import CarkeyError
from .serialport import EXIT_HASH_MISMATCH, EXIT_NO_SPACE, NoAnswer, check_port

BOARDS = ("esp32_devkitc", "esp32_s3", "esp32_c3_fob", "virtual")
BOARDS_DIR = paths.REPO_ROOT / "boards"
PACKAGE_DIR = "/lib/carkey"
# Modules only the benchmark imports: not installed (`carkey bench --port` copies them).
BENCH_ONLY = ("bench.mpy", "bench_reader.mpy")
CHUNK = 512  # bytes per write exec; raw-paste flow control keeps the board's buffer safe
# littlefs allocates whole blocks; count a file as at least this much when checking space.
BLOCK = 4096


class NotEnoughSpace(CarkeyError):
    exit_code = EXIT_NO_SPACE


class HashMismatch(CarkeyError):
    exit_code = EXIT_HASH_MISMATCH


@dataclass
class InstallItem:
    dest: str  # absolute path on the board
    source: Path  # host file copied there
    data: bytes = field(repr=False)

    @property
    def size(self):
        return len(self.data)

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class FileResult:
    dest: str
    size: int
    action: str  # unchanged, new, updated, replaced (corrupt/different on the board), removed


@dataclass
class DeployReport:
    port: str
    board: str
    dry_run: bool
    files: list
    bytes_copied: int = 0
    free_bytes: int = None
    seconds: float = 0.0

    @property
    def copied(self):
        return [f for f in self.files if f.action in ("new", "updated", "replaced")]

    @property
    def removed(self):
        return [f for f in self.files if f.action == "removed"]

    def as_dict(self):
        return {
            "port": self.port,
            "board": self.board,
            "dry_run": self.dry_run,
            "files": [{"path": f.dest, "size": f.size, "action": f.action} for f in self.files],
            "copied": len(self.copied),
            "removed": len(self.removed),
            "unchanged": sum(1 for f in self.files if f.action == "unchanged"),
            "bytes_copied": self.bytes_copied,
            "free_bytes": self.free_bytes,
            "seconds": round(self.seconds, 3),
        }


def check_board(board):
    if board not in BOARDS:
        raise CarkeyError(f"unknown board {board!r}; choose from {', '.join(BOARDS)}")
    return BOARDS_DIR / f"{board}.py"


def install_plan(board, build_dir=None, firmware_dir=None):
    """Compile the firmware and list every file the board should hold, in install order."""
    board_file = check_board(board)
    firmware_dir = Path(firmware_dir or paths.FIRMWARE_DIR)
    package = firmware_dir / "carkey"
    build_dir = Path(build_dir or paths.BUILD_DIR / "deploy")
    try:
        compiled = compile_firmware(build_dir / "carkey", root=package)
    except BuildError as e:
        raise CarkeyError(str(e)) from None
    items = []
    for mpy in compiled:
        rel = mpy.relative_to(build_dir / "carkey").as_posix()
        if rel in BENCH_ONLY:
            continue
        items.append(InstallItem(f"{PACKAGE_DIR}/{rel}", mpy, mpy.read_bytes()))
    items.append(InstallItem("/board.py", board_file, board_file.read_bytes()))
    for name in ("boot.py", "main.py"):
        source = firmware_dir / name
        if source.exists():
            items.append(InstallItem("/" + name, source, source.read_bytes()))
    return items


# Runs on the board: one line per path, (path, size, sha256 hex) or (path, None, None)
# when missing, then the other files under the package directory, then free bytes.
_SURVEY = """\
import os,hashlib,binascii
def _h(p):
    try:
        s=os.stat(p)
    except OSError:
        return (p,None,None)
    if s[0]&0x4000:
        return (p,-1,None)
    h=hashlib.sha256();b=bytearray(256);m=memoryview(b)
    with open(p,'rb') as f:
        while True:
            n=f.readinto(b)
            if not n:
                break
            h.update(m[:n])
    return (p,s[6],binascii.hexlify(h.digest()).decode())
def _w(d,o):
    try:
        for e in os.ilistdir(d):
            q=d+'/'+e[0]
            if e[1]&0x4000:
                _w(q,o)
            else:
                o.append(q)
    except OSError:
        pass
    return o
for _p in {paths!r}:
    print(repr(_h(_p)))
for _p in _w({package!r},[]):
    print(repr(('#extra',_p)))
_s=os.statvfs('/')
print(repr(('#free',_s[1]*_s[4])))
del _h,_w,_p,_s
"""


def _blocks(n):
    return (n + BLOCK - 1) // BLOCK * BLOCK


class Board:
    """The raw REPL of one port (mpremote's SerialTransport), errors mapped to carkey's."""

    def __init__(self, port, timeout=10):
        from mpremote.transport_serial import SerialTransport, TransportError

        check_port(port)
        self.port = port
        self.timeout = timeout
        self._log = io.StringIO()  # mpremote prints what it got when the board does not answer
        try:
            with contextlib.redirect_stdout(self._log):
                # A read timeout matters on a pty: mpremote then reads without checking
                # inWaiting(), and a silent port would block it for ever.
                self._t = SerialTransport(port, baudrate=115200, timeout=timeout)
        except TransportError as e:
            raise NoAnswer(f"cannot open {port}: {e}") from None
        try:
            with contextlib.redirect_stdout(self._log):
                self._t.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
        except TransportError:
            self.close()
            raise NoAnswer(
                f"no MicroPython REPL answered on {port} within {timeout} s: is MicroPython flashed "
                "(carkey flash), is another program printing on it, or is the board stuck? "
                "Press reset and try again"
            ) from None

    def exec(self, code):
        from mpremote.transport_serial import TransportError, TransportExecError

        try:
            return self._t.exec(code)
        except TransportExecError as e:
            raise CarkeyError(f"the board refused a deploy step:\n{e.error_output.strip()}") from None
        except TransportError as e:
            raise NoAnswer(f"the board stopped answering on {self.port}: {e}") from None

    def run(self, code, timeout):
        """Run code, waiting up to `timeout` s for its output to end (slow benchmarks).
        Returns (stdout, stderr) as bytes."""
        from mpremote.transport_serial import TransportError

        try:
            return self._t.exec_raw(code, timeout=timeout)
        except TransportError as e:
            raise NoAnswer(f"the board stopped answering on {self.port}: {e}") from None

    def write_file(self, dest, data, progress=None):
        from mpremote.transport_serial import TransportError

        try:
            self._t.fs_writefile(dest, data, chunk_size=CHUNK, progress_callback=progress)
        except OSError as e:
            raise CarkeyError(f"cannot write {dest} on the board: {e.strerror or e}") from None
        except TransportError as e:
            raise NoAnswer(f"the board stopped answering while writing {dest}: {e}") from None

    def survey(self, dests, package=PACKAGE_DIR):
        """{dest: (size, sha256hex) or None}, the extra files under `package`, free bytes."""
        out = self.exec(_SURVEY.format(paths=list(dests), package=package)).decode()
        found, extra, free = {}, [], None
        for line in out.splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                record = ast.literal_eval(line)
            except (SyntaxError, ValueError):
                raise CarkeyError(f"unexpected answer from the board: {line[:80]!r}") from None
            if record[0] == "#extra":
                extra.append(record[1])
            elif record[0] == "#free":
                free = record[1]
            else:
                path, size, digest = record
                found[path] = None if size is None else (size, digest)
        return found, extra, free

    def soft_reset(self):
        """Leave the raw REPL and soft-reset, so boot.py and main.py run the new firmware."""
        self._t.exit_raw_repl()
        self._t.serial.write(b"\x04")

    def close(self):
        try:
            if self._t.in_raw_repl:
                self._t.exit_raw_repl()
        except Exception:  # closing a port that is already gone
            pass
        with contextlib.suppress(Exception):
            self._t.close()


def deploy(port, board, dry_run=False, reset=False, progress=None, timeout=10, build_dir=None, firmware_dir=None):
    """Install the firmware for `board` on the board at `port`; returns a DeployReport.

    progress(event, **info) is called with ("plan", files=N, bytes=B), ("file", dest=,
    size=), ("chunk", dest=, done=, size=) and ("verify",) so a caller can draw bars.
    """
    started = time.monotonic()
    progress = progress or (lambda event, **info: None)
    items = install_plan(board, build_dir=build_dir, firmware_dir=firmware_dir)
    target = Board(port, timeout=timeout)
    try:
        found, extra, free = target.survey([i.dest for i in items])
        planned = {i.dest for i in items}
        results, todo = [], []
        for item in items:
            have = found.get(item.dest)
            if have is None:
                action = "new"
            elif have[1] == item.sha256:
                action = "unchanged"
            elif have[0] == item.size:
                action = "replaced"  # same size, other bytes: corrupt on the board
            else:
                action = "updated"
            results.append(FileResult(item.dest, item.size, action))
            if action != "unchanged":
                todo.append(item)
        stale = sorted(p for p in extra if p not in planned)
        results += [FileResult(p, 0, "removed") for p in stale]
        need = sum(_blocks(i.size) - _blocks((found.get(i.dest) or (0,))[0] or 0) for i in todo)
        if free is not None and need > free:
            raise NotEnoughSpace(
                f"not enough space on the board: the firmware needs {need} more bytes, {free} are free; "
                "remove files from the board (mpremote fs rm) or erase it (carkey flash --erase)"
            )
        report = DeployReport(port, board, dry_run, results, free_bytes=free)
        if dry_run:
            report.seconds = time.monotonic() - started
            return report
        if stale:
            target.exec("import os\nfor p in %r:\n    os.remove(p)" % stale)
        dirs = sorted({d for i in todo for d in _parents(i.dest)})
        if dirs:
            target.exec("import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n        pass" % dirs)
        progress("plan", files=len(todo), bytes=sum(i.size for i in todo))
        for item in todo:
            progress("file", dest=item.dest, size=item.size)
            target.write_file(item.dest, item.data,
                              lambda done, size, d=item.dest: progress("chunk", dest=d, done=done, size=size))
            report.bytes_copied += item.size
        if todo:
            progress("verify")
            after, _, report.free_bytes = target.survey([i.dest for i in todo])
            bad = [i.dest for i in todo if after.get(i.dest) != (i.size, i.sha256)]
            if bad:
                raise HashMismatch(
                    f"{len(bad)} file(s) differ on the board after copying ({', '.join(bad[:5])}): the flash "
                    "may be failing or full; run the deploy again, or erase the board (carkey flash --erase)"
                )
        if reset:
            target.soft_reset()
        report.seconds = time.monotonic() - started
        return report
    finally:
        target.close()


def _parents(dest):
    parts = dest.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
