"""The virtual board: the ESP32 serial REPL protocol on a pty, and real mpremote against it.

Protocol tests talk to the pty with pyserial and check exact bytes (banner, raw REPL,
raw-paste flow control, Ctrl-C, soft reset); mpremote tests run the installed
`mpremote` unmodified (exec, run, fs cp/ls/cat, soft-reset, resume). One board serves
the module; tests that need boot.py/main.py remove them again.

Run: .venv/bin/pytest -q tests/host/test_vboard.py
"""

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from carkey_host import paths
from carkey_host.vboard import VirtualBoard, VirtualBoardError, continue_with_input

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
CARKEY = str(Path(sys.executable).with_name("carkey"))
TIMEOUT = 20
RAW = b"raw REPL; CTRL-B to exit\r\n"


@pytest.fixture(scope="module")
def vhw(tmp_path_factory):
    d = tmp_path_factory.mktemp("vhw")
    (d / "vhwprobe.py").write_text("WHERE = 'virtual hardware'\n")
    return d


@pytest.fixture(scope="module")
def board(tmp_path_factory, vhw):
    flash = tmp_path_factory.mktemp("flash")
    with VirtualBoard(flash, extra_path=[vhw]) as b:
        yield b
        assert b.error is None


@pytest.fixture
def clean_flash(board):
    yield board.flash_dir
    for name in ("boot.py", "main.py"):
        (board.flash_dir / name).unlink(missing_ok=True)


def alive(pid):
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def mpremote(port, *args, check=True):
    proc = subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


class Serial:
    """A pyserial client that waits for exact endings (no sleeps)."""

    def __init__(self, port):
        self.s = serial.Serial(port, timeout=0.2)

    def sync_friendly(self):
        """Ctrl-B from any idle state to the friendly REPL; older output is read and dropped."""
        token = os.urandom(6).hex().encode()
        self.s.write(b"\r\x03\x02'" + token + b"'\r")
        self.until(b"'" + token + b"'\r\n>>> ")

    def until(self, ending, timeout=TIMEOUT):
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(ending):
            if time.monotonic() > deadline:
                raise AssertionError(f"waited for {ending!r}, got {data[-300:]!r}")
            data += self.s.read(1)
        return data

    def read(self, n, timeout=TIMEOUT):
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < n and time.monotonic() < deadline:
            data += self.s.read(n - len(data))
        return data

    def send(self, data, ending):
        self.s.write(data)
        return self.until(ending)

    def close(self):
        self.s.close()


@pytest.fixture
def term(board):
    t = Serial(board.port)
    t.sync_friendly()
    yield t
    t.close()


def banner(board):
    return board._banner + b'\r\nType "help()" for more information.\r\n>>> '


# --- protocol, exact bytes -------------------------------------------------------------


def test_ctrl_b_prints_the_esp32_style_banner(board, term):
    data = term.send(b"\x02", b">>> ")
    assert data == b"\r\n" + banner(board)
    assert board._banner.startswith(b"MicroPython v") and b" on " in board._banner
    assert board._banner.endswith(b"; carkey virtual board with ESP32")


def test_friendly_repl_echoes_and_prints_expression_values(term):
    assert term.send(b"6*7\r", b">>> ") == b"6*7\r\n42\r\n>>> "


def test_friendly_repl_continues_a_compound_statement(term):
    term.send(b"for i in range(2):\r", b"... ")
    assert term.send(b" print(i)\r", b"... ") == b" print(i)\r\n... "
    assert term.send(b"\r", b">>> ") == b"\r\n0\r\n1\r\n>>> "


def test_paste_mode_runs_the_block_on_ctrl_d(term):
    assert term.send(b"\x05", b"=== ") == b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== "
    term.send(b"a = 2\r", b"=== ")
    assert term.send(b"print(a + 1)\x04", b">>> ") == b"print(a + 1)\r\n3\r\n>>> "


def test_raw_repl_answers_ok_output_eof_error_eof_prompt(term):
    assert term.send(b"\x01", b">") == b"\r\n" + RAW + b">"
    assert term.send(b"print('hi')\x04", b">") == b"OKhi\r\n\x04\x04>"


def test_raw_repl_error_goes_between_the_two_eofs(term):
    term.send(b"\x01", b">")
    data = term.send(b"1/0\x04", b"\x04>")
    assert data == (b'OK\x04Traceback (most recent call last):\r\n  File "<stdin>", line 1, in <module>\r\n'
                    b"ZeroDivisionError: divide by zero\r\n\x04>")


def test_raw_paste_announces_a_128_byte_window_and_refills_it(term):
    term.send(b"\x01", b">")
    term.s.write(b"\x05A\x01")
    assert term.read(5) == b"R\x01\x80\x00\x01"
    code = b"x = '" + b"a" * 290 + b"'\nprint(len(x))"  # 310 bytes: two windows used up, a third begun
    assert len(code) == 310
    term.s.write(code[:128])
    assert term.until(b"\x01") == b"\x01"
    term.s.write(code[128:256])
    assert term.until(b"\x01") == b"\x01"
    term.s.write(code[256:] + b"\x04")
    assert term.until(b">") == b"\x04290\r\n\x04\x04>"


def test_raw_paste_with_an_unknown_subcommand_is_refused(term):
    term.send(b"\x01", b">")
    assert term.send(b"\x05B\x01", b">") == b"R\x00>"


def test_ctrl_c_interrupts_a_running_loop(term):
    term.send(b"\x01", b">")
    assert term.send(b"while True:\n    pass\x04", b"OK") == b"OK"
    term.s.write(b"\x03")
    data = term.until(b"\x04>")
    assert data.startswith(b"\x04Traceback (most recent call last):\r\n")
    assert data.endswith(b"KeyboardInterrupt: \r\n\x04>")
    assert term.send(b"print('alive')\x04", b">") == b"OKalive\r\n\x04\x04>"


def test_running_code_reads_what_the_port_sends(term):
    term.send(b"\x01", b">")
    term.send(b"import sys\nprint(sys.stdin.read(3))\x04", b"OK")
    term.s.write(b"xyz")
    assert term.until(b">") == b"xyz\r\n\x04\x04>"


def test_friendly_ctrl_d_soft_reboots_and_runs_boot_then_main(board, term, clean_flash):
    (clean_flash / "boot.py").write_text("print('boot ran')\n")
    (clean_flash / "main.py").write_text("print('main ran')\n")
    data = term.send(b"\x04", b">>> ")
    assert data == b"\r\nMPY: soft reboot\r\nboot ran\r\nmain ran\r\n" + banner(board)


def test_raw_soft_reset_runs_boot_but_not_main(board, term, clean_flash):
    (clean_flash / "boot.py").write_text("print('boot ran')\n")
    (clean_flash / "main.py").write_text("print('main ran')\n")
    term.send(b"\x01", b">")
    assert term.send(b"\x04", RAW + b">") == b"OK\r\nMPY: soft reboot\r\nboot ran\r\n" + RAW + b">"


def test_soft_reset_starts_a_fresh_interpreter(board, term):
    term.send(b"marker = 1\r", b">>> ")
    boots = board.boots
    term.send(b"\x04", b">>> ")
    assert board.boots == boots + 1
    assert term.send(b"'marker' in globals()\r", b">>> ").endswith(b"False\r\n>>> ")


def test_sys_exit_is_a_soft_reset_as_on_the_board(board, term):
    boots = board.boots
    assert term.send(b"import sys; sys.exit()\r", b">>> ").startswith(b"import sys; sys.exit()\r\nMPY: soft reboot\r\n")
    assert board.boots == boots + 1


def test_boot_error_skips_main(board, term, clean_flash):
    (clean_flash / "boot.py").write_text("raise ValueError('bad boot')\n")
    (clean_flash / "main.py").write_text("print('main ran')\n")
    data = term.send(b"\x04", b">>> ")
    assert b"ValueError: bad boot\r\n" in data
    assert b"main ran" not in data


# --- mpremote, unmodified ------------------------------------------------------------------


def test_mpremote_exec(board):
    assert mpremote(board.port, "exec", "print(6*7)").stdout == "42\n"


def test_mpremote_exec_error_is_reported(board):
    proc = mpremote(board.port, "exec", "import nosuchmodule", check=False)
    assert proc.returncode == 1
    assert "ImportError: no module named 'nosuchmodule'" in proc.stdout + proc.stderr


def test_mpremote_fs_cp_lands_in_the_flash_directory(board, tmp_path):
    src = tmp_path / "hello.bin"
    src.write_bytes(bytes(range(256)) * 5)
    mpremote(board.port, "fs", "cp", str(src), ":/hello.bin")
    assert (board.flash_dir / "hello.bin").read_bytes() == bytes(range(256)) * 5
    back = tmp_path / "back.bin"
    mpremote(board.port, "fs", "cp", ":hello.bin", str(back))
    assert back.read_bytes() == bytes(range(256)) * 5


def test_mpremote_fs_ls_lists_the_flash_directory(board):
    (board.flash_dir / "listed.txt").write_bytes(b"12345")
    out = mpremote(board.port, "fs", "ls", ":/").stdout
    assert "           5 listed.txt" in out.splitlines()


def test_board_root_is_the_flash_directory_not_the_host_root(board):
    out = mpremote(board.port, "exec",
                   "import os\nopen('/written.txt','w').write('w')\nprint(os.getcwd())\n"
                   "try:\n    os.stat('/etc/passwd')\n    print('host visible')\nexcept OSError:\n    print('confined')").stdout
    assert out == "/\nconfined\n"
    assert (board.flash_dir / "written.txt").read_text() == "w"


def test_rename_and_relative_paths_stay_on_the_board(board):
    out = mpremote(board.port, "exec",
                   "import os\ntry:\n    os.mkdir('/rn')\nexcept OSError:\n    pass\nos.chdir('/rn')\n"
                   "open('a.t', 'w').write('x')\nos.rename('a.t', 'a.ok')\nos.rename('/rn/a.ok', '../moved.ok')\n"
                   "print(os.getcwd(), os.listdir('.'), open('/moved.ok').read())\nos.chdir('/')").stdout
    assert out == "/rn [] x\n"
    assert (board.flash_dir / "moved.ok").read_text() == "x"


def test_mpremote_run_executes_a_host_script(board, tmp_path):
    script = tmp_path / "job.py"
    script.write_text("for i in range(3):\n    print('line', i)\n")
    assert mpremote(board.port, "run", str(script)).stdout == "line 0\nline 1\nline 2\n"


def test_mpremote_soft_reset_clears_state_and_resume_keeps_it(board):
    mpremote(board.port, "exec", "kept = 5")
    assert mpremote(board.port, "resume", "exec", "print(kept)").stdout == "5\n"
    mpremote(board.port, "soft-reset")
    proc = mpremote(board.port, "resume", "exec", "print(kept)", check=False)
    assert "NameError: name 'kept' isn't defined" in proc.stdout + proc.stderr


def test_mpremote_interrupts_a_main_py_that_never_ends(board, clean_flash):
    (clean_flash / "main.py").write_text("while True:\n    pass\n")
    t = Serial(board.port)
    try:
        t.s.write(b"\r\x03\x02\x04")  # friendly soft reset: main.py starts looping
        t.until(b"MPY: soft reboot\r\n")
    finally:
        t.close()
    assert mpremote(board.port, "exec", "print('in control')").stdout == "in control\n"


def _read_events(child, events, done):
    deadline = time.monotonic() + TIMEOUT
    while not done(events) and time.monotonic() < deadline:
        if select.select([child.evt_r], [], [], 0.5)[0]:
            events += os.read(child.evt_r, 64)
    return events


def test_sigint_racing_the_end_of_user_code_is_its_keyboard_interrupt(tmp_path):
    # The Unix port raises KeyboardInterrupt from the signal handler, inside whatever call
    # is running, also after a read or write has moved its bytes. A SIGINT the bridge sends
    # just as the code returns must neither be lost nor hit the supervisor's own protocol
    # I/O (a lost A or a doubled event left the board silent for good).
    from carkey_host.vboard import _Child

    (tmp_path / "boot.py").write_text("x = 1\n")
    for attempt in range(40):
        child = _Child(tmp_path, [], None, 0, {})
        try:
            child.send_all(b"p", b"boot.py")
            events = _read_events(child, b"", lambda ev: b"E" in ev or b"D" in ev)
            spin = time.perf_counter() + (attempt % 20) * 50e-6  # from at once to 1 ms later
            while time.perf_counter() < spin:
                pass
            child.interrupt()
            child.ack()
            events = _read_events(child, events, lambda ev: ev.endswith(b"P"))
            assert events in (b"GEDEP", b"GEEDEP"), events  # a second E is answered once, not twice
            output = b""
            while select.select([child.out_fd], [], [], 0)[0]:
                chunk = os.read(child.out_fd, 4096)
                if not chunk:
                    break
                output += chunk
            assert output == b"Traceback (most recent call last):\nKeyboardInterrupt: \n"
        finally:
            child.close()


APP_MAIN = """\
import asyncio, select, socket

async def serve():
    a, b = socket.socket(), socket.socket()
    a.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
    a.listen(1)
    a.setblocking(False)
    p = select.poll()
    p.register(a, select.POLLIN)
    n = 0
    while True:
        p.poll(0)
        n += 1
        if n % 50 == 0:
            print("tick", n)
        await asyncio.sleep_ms(2)

asyncio.run(serve())
"""


@pytest.mark.parametrize("attempt", range(20))
def test_ctrl_c_right_after_a_soft_reset_stops_the_boot_and_main_stays_off(board, term, clean_flash, attempt):
    # mpremote's enter_raw_repl right after a friendly soft reset: its Ctrl-C is held until
    # boot.py starts, and boot.py ends at once. The interrupt must still count (pyexec raises
    # a KeyboardInterrupt that is pending when the code ends), so main.py, skipped after a
    # failed boot.py, cannot start and keep the REPL away.
    (clean_flash / "boot.py").write_text("x = 1\n")
    (clean_flash / "main.py").write_text(APP_MAIN)
    data = term.send(b"\x04\r\x03\r\x01", RAW + b">")
    assert data.startswith(b"\r\nMPY: soft reboot\r\nTraceback (most recent call last):\r\n")
    assert b"KeyboardInterrupt: \r\n" in data and b"tick" not in data
    assert term.send(b"print('in control')\x04", b"\x04>") == b"OKin control\r\n\x04\x04>"
    term.send(b"\x02", b">>> ")


@pytest.mark.parametrize("attempt", range(10))
def test_mpremote_interrupts_an_asyncio_main_py_after_a_boot_py(board, clean_flash, attempt):
    (clean_flash / "boot.py").write_text("x = 1\n")
    (clean_flash / "main.py").write_text(APP_MAIN)
    t = Serial(board.port)
    try:
        t.s.write(b"\r\x03\x02\x04")  # friendly soft reset: boot.py, then main.py runs for ever
        t.until(b"MPY: soft reboot\r\n")
    finally:
        t.close()
    assert mpremote(board.port, "exec", "print('in control')").stdout == "in control\n"


def test_virtual_hardware_directory_is_on_the_module_path(board):
    assert mpremote(board.port, "exec", "import vhwprobe; print(vhwprobe.WHERE)").stdout == "virtual hardware\n"


def test_default_path_is_lib_then_virtual_hardware_then_boards_and_env_reaches_the_board(tmp_path):
    with VirtualBoard(tmp_path / "flash", env={"CARKEY_PN532": "/tmp/pn532-link"}) as b:
        out = mpremote(b.port, "exec", "import sys, os, virtual\nprint(sys.path)\nprint(virtual.BOARD)\n"
                                       "print(os.getenv('CARKEY_PN532'))").stdout
    assert out.splitlines() == ["['', '.frozen', '/lib', '/.vhw0', '/.vhw1']", "virtual", "/tmp/pn532-link"]


# --- lifecycle and errors -----------------------------------------------------------------------


def test_link_path_that_exists_is_refused(tmp_path):
    link = tmp_path / "taken"
    link.write_text("")
    with pytest.raises(VirtualBoardError, match="already exists"):
        VirtualBoard(tmp_path / "flash", link_path=link).start()


def test_missing_micropython_is_a_clear_error(tmp_path, monkeypatch):
    def missing():
        raise FileNotFoundError("micropython not found: run `make setup`")

    monkeypatch.setattr(paths, "micropython_executable", missing)
    with pytest.raises(VirtualBoardError, match="micropython not found"):
        VirtualBoard(tmp_path / "flash").start()


def test_interpreter_that_cannot_start_is_a_clear_error(tmp_path):
    link = tmp_path / "board"
    with pytest.raises(VirtualBoardError, match="MicroPython exited before the board came up: Invalid command line arguments"):
        VirtualBoard(tmp_path / "flash", link_path=link, heapsize="lots").start()
    assert not link.is_symlink()


def test_stop_leaves_no_process_and_no_link(tmp_path):
    link = tmp_path / "board"
    b = VirtualBoard(tmp_path / "flash", link_path=link, heapsize="64k").start()
    pid = b.pid
    assert os.readlink(link) == b.port
    b.stop()
    assert not link.exists() and not link.is_symlink()
    assert not alive(pid)


def test_killed_host_process_takes_the_interpreter_with_it(tmp_path):
    script = ("import sys, time\nfrom carkey_host.vboard import VirtualBoard\n"
              f"b = VirtualBoard({str(tmp_path / 'flash')!r}).start()\nprint(b.pid, flush=True)\ntime.sleep(60)\n")
    host = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pid = int(host.stdout.readline())
    assert alive(pid)
    host.kill()
    host.wait()
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)  # the kernel delivers the parent-death signal; nothing to await here
    assert not alive(pid)


def test_cli_serves_on_the_link_until_sigterm(tmp_path):
    link = tmp_path / "board"
    proc = subprocess.Popen([CARKEY, "vboard", "--dir", str(tmp_path / "flash"), "--link", str(link)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("virtual board on /dev/pts/") and first.rstrip().endswith(f"(link {link})")
        assert mpremote(str(link), "exec", "print('via link')").stdout == "via link\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert "virtual board stopped" in out
    assert not link.is_symlink()


@pytest.mark.parametrize(
    "text, more",
    [("1+1", False), ("if x:", True), ("def f(a,", True), ("s = '''abc", True), ("x = 1 \\", True),
     ("for i in r:\n    pass\n", False), ("for i in r:\n    pass", True), ("print('a:')", False), ("", False)],
)
def test_continue_with_input_follows_the_micropython_rules(text, more):
    assert continue_with_input(text) is more
