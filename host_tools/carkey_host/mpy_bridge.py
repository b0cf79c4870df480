"""Call firmware functions running inside the MicroPython Unix port from CPython.

Tests and the benchmark use this to compare firmware results with CPython's
`cryptography`: arguments and results are bytes, ints (any size), str, bool,
None, lists and dicts; firmware exceptions come back as MicroPythonError.
"""

import json
import os
import subprocess
from pathlib import Path

from . import paths

SERVER = Path(__file__).resolve().parent / "mpy" / "bridge_server.py"


class MicroPythonError(Exception):
    """An exception raised by firmware code inside MicroPython."""

    def __init__(self, type_name, message, traceback=""):
        super().__init__(f"{type_name}: {message}")
        self.type = type_name
        self.message = message
        self.traceback = traceback


class BridgeError(RuntimeError):
    """The MicroPython process died or answered something unreadable."""


def micropython_env(extra_paths=(), firmware_dir=None):
    """Environment for running firmware in the Unix port: the firmware tree on MICROPYPATH."""
    env = dict(os.environ)
    firmware_dir = firmware_dir or paths.FIRMWARE_DIR
    env["MICROPYPATH"] = os.pathsep.join([".frozen", str(firmware_dir), *map(str, extra_paths)])
    return env


def micropython_command(*args, heapsize=None):
    """The Unix-port command line: `micropython [-X heapsize=N] args...`."""
    cmd = [paths.micropython_executable()]
    if heapsize:
        cmd += ["-X", f"heapsize={heapsize}"]
    return cmd + [str(a) for a in args]


def _encode(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot send a {type(value).__name__} to MicroPython")


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"b"}:
            return bytes.fromhex(value["b"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


class MicroPython:
    """A running MicroPython process that serves calls into the firmware package."""

    def __init__(self, heapsize=None, extra_paths=()):
        self.heapsize = heapsize
        self._proc = subprocess.Popen(
            micropython_command(SERVER, heapsize=heapsize),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=micropython_env(extra_paths),
            text=True,
            bufsize=1,
        )

    def _request(self, request):
        if self._proc.poll() is not None:
            raise BridgeError(f"MicroPython exited with {self._proc.returncode}: {self._proc.stderr.read()}")
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self._proc.wait(timeout=5)
            raise BridgeError(f"MicroPython exited with {self._proc.returncode}: {self._proc.stderr.read()}")
        try:
            reply = json.loads(line)
        except ValueError as e:
            raise BridgeError(f"unreadable reply from MicroPython: {line!r}") from e
        if "error" in reply:
            raise MicroPythonError(reply["error"], reply["message"], reply.get("traceback", ""))
        return _decode(reply["ok"])

    def call(self, module, fn, *args):
        """Call `module.fn(*args)` inside MicroPython and return its result."""
        return self._request({"op": "call", "module": module, "fn": fn, "args": _encode(list(args))})

    def heap(self):
        """(allocated, free) bytes of the MicroPython heap after a collection."""
        return tuple(self._request({"op": "heap"}))

    def close(self):
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc.stdout.close()
        self._proc.stderr.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
