"""Runs firmware in the MicroPython Unix port from the host: the one place that knows how.

Every host module that runs firmware goes through here. `environment()` puts a firmware
tree on MICROPYPATH (the source tree, or the compiled .mpy tree boards run), the
virtual board (boards/, boards/virtual_hw) and any further folders; `launch()` and
`run()` start the interpreter on a program of the caller's (`-m module`, `-c code`, a
script) with an optional `-X heapsize`. `Firmware` starts the firmware-side server
(carkey_host/mpy/serve.py, compiled to .mpy as the firmware is) and speaks its one
wire protocol: a JSON request per line, streamed {"event": ...} lines, one {"ok": ...}
or {"error": ...} reply. What a role serves is a handler module the server loads
(boards/virtual_hw/vcar.py, vfob.py, carkey_host/mpy/ble_reader.py); its built-in
`call` reaches any firmware function, which tests use to compare firmware with
CPython's `cryptography` and the benchmarks use to record their fixtures."""

import collections
import contextlib
import json
import os
import queue
import subprocess
import threading
from pathlib import Path

from . import paths

SERVER_SOURCES = paths.PACKAGE_DIR / "mpy"  # serve.py and the handlers shipped with the host
SERVER_COMPILED = paths.BUILD_DIR / "runner-mpy"
BOARDS_DIR = paths.REPO_ROOT / "boards"
VIRTUAL_HW = BOARDS_DIR / "virtual_hw"
COMPILED = paths.BUILD_DIR / "mpy"  # the firmware as boards run it: .mpy, rebuilt where sources changed


class RunnerError(RuntimeError):
    """The MicroPython process could not start, died, or answered something unreadable."""


class MicroPythonError(Exception):
    """An exception raised by firmware inside MicroPython, as the server reported it.

    `expected`: one of the handler's own errors (bad input, a refusal); `refused`: the
    firmware judged a request and said no."""

    def __init__(self, type_name, message, traceback="", expected=False, refused=False):
        super().__init__(f"{type_name}: {message}")
        self.type = type_name
        self.message = message
        self.traceback = traceback
        self.expected = expected
        self.refused = refused


def interpreter():
    """The Unix-port `micropython` this host runs ($CARKEY_MICROPYTHON, else the pinned one)."""
    return paths.micropython_executable()


def compiled_firmware():
    """The firmware as .mpy (build/mpy), rebuilt where sources changed."""
    from .build import BuildError, compile_firmware
    from .errors import CarkeyError

    try:
        compile_firmware(COMPILED)
    except (BuildError, FileNotFoundError) as e:
        raise CarkeyError(f"cannot build the firmware: {e}") from None
    return COMPILED


def compiled_server():
    """serve.py and the handlers beside it as .mpy: loaded without compiling on the heap
    the firmware under test is measured in."""
    from .build import BuildError, compile_firmware
    from .errors import CarkeyError

    try:
        compile_firmware(SERVER_COMPILED, root=SERVER_SOURCES)
    except (BuildError, FileNotFoundError) as e:
        raise CarkeyError(f"cannot build the firmware-side server: {e}") from None
    return SERVER_COMPILED


def environment(firmware="source", extra_paths=(), virtual_board=False, relative_to=None):
    """os.environ with MICROPYPATH set: .frozen, the firmware tree, then the virtual board
    (boards/ and boards/virtual_hw) if asked, then `extra_paths`.

    firmware: "source" (firmware/, or $CARKEY_FIRMWARE), "compiled" (build/mpy, built
    now), a folder of its own, or None for no firmware tree.
    relative_to: the folder the process will run in; folders below it are named
    relative to it, so the names the interpreter keeps (every module's __file__) do not
    grow with the checkout's path, which matters to a run in a tight heap."""
    if firmware == "source":
        firmware = paths.FIRMWARE_DIR
    elif firmware == "compiled":
        firmware = compiled_firmware()
    folders = [".frozen"] + ([firmware] if firmware is not None else [])
    folders += [BOARDS_DIR, VIRTUAL_HW] if virtual_board else []
    folders = [Path(f) for f in folders + list(extra_paths)]
    if relative_to is not None:
        base = Path(relative_to).resolve()
        folders = [f.resolve().relative_to(base) if f.is_absolute() and f.resolve().is_relative_to(base) else f
                   for f in folders]
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join(map(str, folders))
    return env


def command(*args, heapsize=None):
    """The command line: `micropython [-X heapsize=N] args...`."""
    cmd = [interpreter()]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    return cmd + [str(a) for a in args]


def launch(*args, heapsize=None, env=None, **popen):
    """Start `micropython args...` (subprocess.Popen keywords pass through); env defaults
    to environment(): the firmware source tree."""
    try:
        return subprocess.Popen(command(*args, heapsize=heapsize), env=environment() if env is None else env, **popen)
    except OSError as e:
        raise RunnerError(f"cannot start MicroPython: {e}") from None


def run(*args, heapsize=None, env=None, input=None, timeout=None, **kw):
    """Run `micropython args...` to its end; its subprocess.CompletedProcess (text output captured)."""
    try:
        return subprocess.run(command(*args, heapsize=heapsize), env=environment() if env is None else env,
                              input=input, capture_output=True, text=True, timeout=timeout, **kw)
    except OSError as e:
        raise RunnerError(f"cannot start MicroPython: {e}") from None


def stop(proc, timeout=10):
    """End a process launch() started: terminate, wait up to `timeout` s, then kill.
    Its pipes are left to whoever reads them."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def encode(value):
    """A value as JSON sends it to the firmware: bytes as {"b": hex}, tuples as lists."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot send a {type(value).__name__} to MicroPython")


def decode(value):
    if isinstance(value, dict):
        if set(value) == {"b"}:
            return bytes.fromhex(value["b"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


class Firmware:
    """A MicroPython process running the firmware-side server, with `handler` (a module
    name on its path) serving the ops beyond the built-in `call` and `heap`.

    request(op, **args) sends one request and returns its reply's value, handing each
    event to on_event; send() and receive() do the same in steps, for a caller that
    does other work (a phone on the air) while the op runs. A context manager."""

    def __init__(self, handler=None, heapsize=None, env=None, cwd=None):
        self.heapsize = heapsize
        env = dict(environment() if env is None else env)
        server = compiled_server()
        if cwd is not None and server.is_relative_to(Path(cwd).resolve()):
            server = server.relative_to(Path(cwd).resolve())  # see environment(relative_to=)
        env["MICROPYPATH"] = os.pathsep.join([env["MICROPYPATH"], str(server)])
        self.proc = launch("-m", "serve", *([handler] if handler else []), heapsize=heapsize, env=env, cwd=cwd,
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           bufsize=1)
        self._messages = queue.Queue()
        self._stderr = collections.deque(maxlen=200)
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        self._stderr_pump = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_pump.start()

    def _pump_stdout(self):
        with self.proc.stdout:
            for line in self.proc.stdout:
                if line.startswith("{"):
                    try:
                        self._messages.put(json.loads(line))
                    except ValueError:
                        pass  # a firmware print that happens to start with a brace
        self._messages.put(None)

    def _pump_stderr(self):
        with self.proc.stderr:
            for line in self.proc.stderr:
                self._stderr.append(line)

    def stderr(self) -> str:
        """What the process wrote to stderr (its last 200 lines), once it has exited."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self._stderr_pump.join(5)
        return "".join(self._stderr)

    def send(self, op, **args):
        """Send one request; its events and reply come from receive()."""
        try:
            self.proc.stdin.write(json.dumps(encode(dict(args, op=op))) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the process is gone: receive() says why

    def receive(self, timeout=None) -> dict:
        """The next message: {"event": value} or the reply ({"ok": value} / {"error": ...}),
        decoded. RunnerError when the process ended or said nothing for `timeout` s."""
        try:
            message = self._messages.get(timeout=timeout)
        except queue.Empty:
            raise RunnerError(f"MicroPython said nothing for {timeout} s") from None
        if message is None:
            self._messages.put(None)  # every later receive() sees the end too
            tail = self.stderr().strip()
            raise RunnerError(f"MicroPython exited with {self.proc.returncode}: {tail[-3000:] or 'no output'}")
        if not isinstance(message, dict):
            raise RunnerError(f"unreadable message from MicroPython: {message!r}")
        return decode(message)

    def result(self, on_event=None, timeout=None):
        """Events (to on_event) until the reply; its value, or MicroPythonError."""
        while True:
            message = self.receive(timeout)
            if "event" in message:
                if on_event is not None:
                    on_event(message["event"])
            elif "ok" in message:
                return message["ok"]
            elif "error" in message:
                raise MicroPythonError(message["error"], message.get("message", ""), message.get("traceback", ""),
                                       message.get("expected", False), message.get("refused", False))
            else:
                raise RunnerError(f"unreadable message from MicroPython: {message!r}")

    def request(self, op, on_event=None, timeout=None, **args):
        self.send(op, **args)
        return self.result(on_event, timeout)

    def call(self, module, fn, *args):
        """Call `module.fn(*args)` inside MicroPython and return its result."""
        return self.request("call", module=module, fn=fn, args=list(args))

    def heap(self):
        """(allocated, free) bytes of the MicroPython heap after a collection."""
        return tuple(self.request("heap"))

    def close(self, timeout=5):
        """End the server (stdin closes) and wait up to `timeout` s for it to exit; past
        that it is killed and close() returns False."""
        with contextlib.suppress(OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return False
        return True

    def serve_one(self, what, timeout_s, on_event=None, **request):
        """One request, then the end of this server (within `timeout_s`): the way the
        virtual car and fob run a command. Failures come back in the user's terms:
        Refused for a request the firmware judged and refused, CarkeyError otherwise,
        naming `what` ("the virtual car") when it crashed or overran."""
        from .errors import CarkeyError, Refused

        try:
            return self.request(on_event=on_event, **request)
        except MicroPythonError as e:
            if e.refused:
                raise Refused(e.message) from None  # the firmware judged the request and said no (exit 3)
            raise CarkeyError(e.message if e.expected else f"{e.type}: {e.message}") from None
        except RunnerError:
            tail = self.stderr().strip()
            raise CarkeyError(f"{what} crashed: {tail.splitlines()[-1] if tail else 'no answer'}") from None
        except BaseException:
            self.kill()  # interrupted (Ctrl-C): the firmware stops with its caller
            raise
        finally:
            if not self.close(timeout_s):
                raise CarkeyError(f"{what} did not finish within {timeout_s} s")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
