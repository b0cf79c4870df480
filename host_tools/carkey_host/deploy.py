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
shadow the new .mpy).

Nothing is written over a good file until its replacement is known good: every file
is copied to DEST.tmp, a second round re-hashes the copies, and only when all of them
match does one exec rename them into place (a rename replaces a file in one step on
littlefs). A Ctrl-C or a lost cable while copying leaves the old firmware whole and
at most some .tmp files, which the next deploy overwrites or removes.

Reaching the raw REPL interrupts the board's application; when the deploy ends (done,
dry run, refused or interrupted) the board is soft-reset so main.py runs again,
unless the caller asks for restart=False.

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

from . import firmware_set, paths
from .build import BuildError, compile_firmware
from .errors import EXIT_INTERRUPTED, CarkeyError
from .serialport import BUSY_GRACE_S, EXIT_HASH_MISMATCH, EXIT_NO_SPACE, NoAnswer, check_port

BOARDS = ("esp32_devkitc", "esp32_s3", "esp32_c3_fob", "virtual", "virtual_fob")
BOARDS_DIR = paths.REPO_ROOT / "boards"
PACKAGE_DIR = "/lib/carkey"
# Modules only the benchmark imports: not installed (`carkey bench --port` copies them).
BENCH_ONLY = ("bench.mpy", "bench_reader.mpy")
CHUNK = 512  # bytes per write exec; raw-paste flow control keeps the board's buffer safe
# littlefs allocates whole blocks; count a file as at least this much when checking space.
BLOCK = 4096
STAGED = ".tmp"  # a copy is written to DEST + STAGED, verified, then renamed to DEST


class NotEnoughSpace(CarkeyError):
    exit_code = EXIT_NO_SPACE


class HashMismatch(CarkeyError):
    exit_code = EXIT_HASH_MISMATCH


class DeployInterrupted(CarkeyError):
    """Ctrl-C during a deploy; the message says what the board holds now and what to run."""

    exit_code = EXIT_INTERRUPTED


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
    restarted: bool = False  # the board was soft-reset afterwards, so its application runs

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
            "restarted": self.restarted,
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
        # The whole tree, as the virtual board and the benchmark compile it, so the
        # bytecode installed is byte for byte the bytecode measured.
        compiled = compile_firmware(build_dir / "firmware", root=firmware_dir)
    except BuildError as e:
        raise CarkeyError(str(e)) from None
    items = []
    runs = firmware_set.wanted(board_file, package)  # the car's modules, or the fob's
    for mpy in compiled:
        rel = mpy.relative_to(build_dir / "firmware").as_posix()
        if not rel.startswith("carkey/"):
            continue  # main.py and boot.py are installed as source below
        rel = rel[len("carkey/"):]
        if rel in BENCH_ONLY or not runs(rel[: -len(".mpy")] + ".py"):
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
        # The port was free a moment ago, but a lock can come back for a moment (the
        # virtual board forks at a soft reset; a board on native USB re-enumerates after
        # a reset): a failed open is tried again for as long as check_port waits.
        deadline = time.monotonic() + BUSY_GRACE_S
        while True:
            try:
                with contextlib.redirect_stdout(self._log):
                    # A read timeout matters on a pty: mpremote then reads without checking
                    # inWaiting(), and a silent port would block it for ever.
                    self._t = SerialTransport(port, baudrate=115200, timeout=timeout)
                break
            except TransportError as e:
                if time.monotonic() > deadline:
                    raise NoAnswer(f"cannot open {port}: {e}") from None
                time.sleep(0.05)
        try:
            with contextlib.redirect_stdout(self._log):
                self._t.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
        except KeyboardInterrupt:
            self.drop()
            raise
        except TransportError:
            self.close()
            raise NoAnswer(
                f"no MicroPython REPL answered on {port} within {timeout} s. A provisioned car keeps its "
                f"REPL closed (installed mode): open it with `carkey maintenance --port {port} --keys OWNERDIR` "
                "or hold the safe-boot button while the board starts. Otherwise: is MicroPython flashed "
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

    def drop(self):
        """Close the port without a word to the board (it may be in the middle of a command)."""
        with contextlib.suppress(Exception):
            self._t.close()

    def close(self):
        try:
            if self._t.in_raw_repl:
                self._t.exit_raw_repl()
        except Exception:  # closing a port that is already gone
            pass
        with contextlib.suppress(Exception):
            self._t.close()


def deploy(port, board, dry_run=False, restart=True, progress=None, timeout=10, build_dir=None,
           firmware_dir=None):
    """Install the firmware for `board` on the board at `port`; returns a DeployReport.

    restart: soft-reset the board at the end so its application runs again (also after
    a dry run, a refusal or a Ctrl-C); False leaves it at the REPL, application stopped.
    progress(event, **info) is called with ("plan", files=N, bytes=B), ("file", dest=,
    size=), ("chunk", dest=, done=, size=) and ("verify",) so a caller can draw bars.
    Ctrl-C raises DeployInterrupted, whose message says what the board holds.
    """
    started = time.monotonic()
    progress = progress or (lambda event, **info: None)
    items = install_plan(board, build_dir=build_dir, firmware_dir=firmware_dir)
    where = {"stage": "survey", "dest": None, "done": 0, "todo": 0, "staged": []}
    try:
        target = Board(port, timeout=timeout)
    except KeyboardInterrupt:
        # Reaching the REPL had begun: the board's application may be stopped already.
        raise _interrupted(port, board, timeout, restart, where) from None
    try:
        report = _install(target, port, board, items, dry_run, progress, where)
    except KeyboardInterrupt:
        target.drop()
        raise _interrupted(port, board, timeout, restart, where) from None
    except NoAnswer:
        target.drop()
        raise
    except BaseException:
        with contextlib.suppress(CarkeyError, OSError):
            _finish(target, restart)  # the error that stopped the deploy is the one to report
        raise
    report.restarted = _finish(target, restart)
    report.seconds = time.monotonic() - started
    return report


def _finish(target, restart):
    """Hand the board back: soft-reset into its application, or leave it at the REPL."""
    try:
        if restart:
            target.soft_reset()
        return restart
    finally:
        target.close()


def _install(target, port, board, items, dry_run, progress, where):
    # Copies an interrupted deploy left outside the package directory (the survey lists
    # what is inside it) are looked for by name.
    leftovers = [i.dest + STAGED for i in items if not i.dest.startswith(PACKAGE_DIR + "/")]
    found, extra, free = target.survey([i.dest for i in items] + leftovers)
    extra += [p for p in leftovers if found.get(p)]
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
    results += [FileResult(p, 0, "removed") for p in stale if not p.endswith(STAGED)]
    # The staged copies sit beside the files they replace until the last step.
    need = sum(_blocks(i.size) for i in todo)
    if free is not None and need > free:
        raise NotEnoughSpace(
            f"not enough space on the board: the firmware needs {need} more bytes, {free} are free; "
            "remove files from the board (mpremote fs rm) or erase it (carkey flash --erase)"
        )
    report = DeployReport(port, board, dry_run, results, free_bytes=free)
    if dry_run:
        return report
    if stale:
        target.exec("import os\nfor p in %r:\n    os.remove(p)" % stale)
    dirs = sorted({d for i in todo for d in _parents(i.dest)})
    if dirs:
        target.exec("import os\nfor d in %r:\n    try:\n        os.mkdir(d)\n    except OSError:\n        pass" % dirs)
    progress("plan", files=len(todo), bytes=sum(i.size for i in todo))
    where.update(stage="copy", todo=len(todo))
    for item in todo:
        staged = item.dest + STAGED
        where.update(dest=item.dest)
        where["staged"].append(staged)
        progress("file", dest=item.dest, size=item.size)
        target.write_file(staged, item.data,
                          lambda done, size, d=item.dest: progress("chunk", dest=d, done=done, size=size))
        report.bytes_copied += item.size
        where["done"] += 1
    if not todo:
        return report
    progress("verify")
    where.update(stage="verify", dest=None)
    copies, _, _ = target.survey(where["staged"])
    bad = [i.dest for i in todo if copies.get(i.dest + STAGED) != (i.size, i.sha256)]
    if bad:
        _remove(target, where["staged"])
        raise HashMismatch(
            f"{len(bad)} file(s) differ on the board after copying ({', '.join(bad[:5])}): the flash "
            "may be failing or full; the board keeps its previous files. Run the deploy again, or erase "
            "the board (carkey flash --erase)"
        )
    where.update(stage="rename")
    # littlefs replaces DEST in one step; a FAT build refuses to, so there DEST goes first.
    target.exec("import os\nfor d in %r:\n    try:\n        os.rename(d+%r,d)\n    except OSError:\n"
                "        os.remove(d)\n        os.rename(d+%r,d)" % ([i.dest for i in todo], STAGED, STAGED))
    where.update(stage="done", staged=[])
    after, _, report.free_bytes = target.survey([i.dest for i in todo])
    bad = [i.dest for i in todo if after.get(i.dest) != (i.size, i.sha256)]
    if bad:
        raise HashMismatch(
            f"{len(bad)} file(s) differ on the board after putting them in place ({', '.join(bad[:5])}): "
            "the flash may be failing; run the deploy again, or erase the board (carkey flash --erase)"
        )
    return report


def _remove(target, paths_on_board):
    target.exec("import os\nfor p in %r:\n    try:\n        os.remove(p)\n    except OSError:\n        pass"
                % list(paths_on_board))


def _interrupted(port, board, timeout, restart, where):
    """After a Ctrl-C: reconnect, drop the staged copies, restart the application, and
    say what the board holds now."""
    again = f"`carkey deploy --port {port} --board {board}`"
    stage = where["stage"]
    if stage == "survey":
        what = "before anything was copied: the board is unchanged"
    elif stage in ("copy", "verify"):
        doing = f"while copying {where['dest']} " if stage == "copy" else "while checking the copies "
        what = (f"{doing}({where['done']} of {where['todo']} files copied): nothing was put in place, "
                "the board keeps its previous firmware")
    elif stage == "rename":
        what = ("while putting the checked files in place: some modules may be new and some old (none is "
                "truncated)")
    else:
        what = "after every file was installed and checked: the new firmware is in place"
    try:
        target = Board(port, timeout=timeout)
        try:
            if where["staged"]:
                _remove(target, where["staged"])
        finally:
            _finish(target, restart)
        after = "its application was started again" if restart else "it waits at its REPL (application stopped)"
    except CarkeyError as e:
        after = f"then the board did not answer ({e}); press its reset button"
    if stage == "done":
        return DeployInterrupted(f"deploy interrupted (Ctrl-C) {what}; {after}. Nothing to redo.")
    return DeployInterrupted(f"deploy interrupted (Ctrl-C) {what}; {after}. To install the new firmware, "
                             f"run {again} again.")


def _parents(dest):
    parts = dest.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
