# carkey — virtual board supervisor: runs user code inside the Unix port for the vboard's serial bridge.
# SPDX-License-Identifier: MIT
#
# Started by carkey_host.vboard as
#     micropython vboard_shim.py CMD_FD EVT_FD FLASH_DIR FLASH_BYTES [EXTRA_DIR ...]
# The host bridge owns the pty and speaks the ESP32 REPL protocol; this side only
# executes what it is sent, in one __main__ namespace, the way pyexec does.
#
# Filesystem: the host root is unmounted and FLASH_DIR becomes "/" through _Flash, a
# VfsPosix with a root behind a thin Python VFS that keeps ".." from climbing above
# "/" and lists file sizes as littlefs does (mpremote's `fs ls` shows them). statvfs
# reports a FLASH_BYTES filesystem of 4 KiB blocks (0: the host disk's figures);
# writes beyond it are not refused. Each
# EXTRA_DIR is mounted read-only at /.vhwN and put on sys.path after "/lib".
# User code still has os.system and the like: a mapping, not a sandbox.
#
# Commands (CMD_FD): one kind byte, 4-byte big-endian length, payload (UTF-8):
#   r  source, raw REPL: output, 0x04, traceback, 0x04 (as pyexec with PRINT_EOF)
#   s  one friendly-REPL statement ("single" mode: expression values are printed)
#   f  friendly paste-mode block ("exec" mode)
#   p  path of a file to run if it exists (boot.py, main.py)
# and the single byte A, the acknowledgement of an E event (see below).
# Events (EVT_FD), one or two bytes each:
#   G        user code starts: from now on the bridge turns Ctrl-C into SIGINT
#   E        user code ended; the bridge stops sending SIGINT and answers A. E may
#            come twice (see below): the bridge answers the first one only
#   D<st>    the command's status, st = 0 ok, E exception, X SystemExit (soft reset),
#            N file absent (no code ran: no G, no E)
#   P        everything for this command is written to stdout: prompt may follow
#
# This Unix port raises KeyboardInterrupt asynchronously, from the signal handler: it
# can surface inside any call, also after a read or write has already moved its bytes.
# So between G and the A nothing here may depend on knowing whether an I/O call
# completed: E may be written again after an interrupt (the bridge ignores the second),
# and the A is waited for with poll, which consumes nothing; it is read once no SIGINT
# can come any more. A SIGINT the bridge sent before it saw E is the user code's
# KeyboardInterrupt even when the code had already returned: pyexec raises a pending
# interrupt after the code the same way (and drops it when the code raised).

import io
import sys
from micropython import const
import os
import vfs
import select

_CMD_FD = int(sys.argv[1])
_EVT_FD = int(sys.argv[2])
_FLASH = sys.argv[3]
_FLASH_BYTES = int(sys.argv[4])
_EXTRA = sys.argv[5:]
_BLOCK = const(4096)

_cmd = open(_CMD_FD, "rb")
_evt = open(_EVT_FD, "wb")
_out = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else sys.stdout
_in = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else sys.stdin
_poll = select.poll()
_poll.register(sys.stdin, select.POLLIN)
_ack = select.poll()
_ack.register(_CMD_FD, select.POLLIN)


class _Flash:
    def __init__(self, root):
        self._root = root.rstrip("/")
        self._v = vfs.VfsPosix(root)
        # VfsPosix with a root builds both rename paths in one buffer (the second
        # overwrites the first): rename goes through a root-less VfsPosix instead.
        self._host = vfs.VfsPosix()

    def _p(self, path):
        if not path.startswith("/"):
            path = self._v.getcwd() + "/" + path
        parts = []
        for part in path.split("/"):
            if part == "..":
                if parts:
                    parts.pop()
            elif part and part != ".":
                parts.append(part)
        return "/" + "/".join(parts)

    def mount(self, readonly, mkfs):
        self._v.mount(readonly, mkfs)

    def umount(self):
        self._v.umount()

    def ilistdir(self, path):
        base = self._p(path).rstrip("/") + "/"
        for e in self._v.ilistdir(self._p(path)):
            size = 0
            if e[1] == 0x8000:
                try:
                    size = self._v.stat(base + e[0])[6]
                except OSError:
                    pass
            yield (e[0], e[1], e[2], size)

    def open(self, path, mode):
        return self._v.open(self._p(path), mode)

    def stat(self, path):
        return self._v.stat(self._p(path))

    def statvfs(self, path):
        if not _FLASH_BYTES:
            return self._v.statvfs(self._p(path))
        total = _FLASH_BYTES // _BLOCK
        free = max(0, total - self._blocks("/"))
        return (_BLOCK, _BLOCK, total, free, free, 0, 0, 0, 0, 255)

    def _blocks(self, d):
        n = 1
        for e in self._v.ilistdir(d):
            p = d.rstrip("/") + "/" + e[0]
            if e[1] == 0x4000:
                n += self._blocks(p)
            else:
                n += (self._v.stat(p)[6] + _BLOCK - 1) // _BLOCK or 1
        return n

    def chdir(self, path):
        self._v.chdir(self._p(path))

    def getcwd(self):
        return self._v.getcwd() or "/"

    def mkdir(self, path):
        self._v.mkdir(self._p(path))

    def rmdir(self, path):
        self._v.rmdir(self._p(path))

    def remove(self, path):
        self._v.remove(self._p(path))

    def rename(self, old, new):
        self._host.rename(self._root + self._p(old), self._root + self._p(new))


def _mount():
    os.chdir(_FLASH)
    vfs.umount("/")
    path = ["", ".frozen", "/lib"]  # an ESP32's sys.path
    for i, d in enumerate(_EXTRA):
        point = "/.vhw%d" % i
        vfs.mount(vfs.VfsPosix(d), point, readonly=True)
        path.append(point)
    vfs.mount(_Flash(_FLASH), "/")
    os.chdir("/")
    sys.path[:] = path
    sys.argv[:] = []


def _read_exact(n):
    buf = b""
    while len(buf) < n:
        chunk = _cmd.read(n - len(buf))
        if not chunk:
            sys.exit(0)  # the bridge is gone: nothing may outlive it
        buf += chunk
    return buf


def _drain_stdin():
    # Bytes typed while nothing was reading them (e.g. the "\r" before a Ctrl-C) are not
    # meant for the next program.
    while _poll.poll(0):
        if not _in.read(1):
            break


def _print_exception(e):
    # The traceback as pyexec prints it: without this supervisor's frame.
    buf = io.StringIO()
    sys.print_exception(e, buf)
    for line in buf.getvalue().split("\n"):
        if line and not (line.startswith('  File "') and "vboard_shim" in line):
            _out.write(line.encode() + b"\n")


def _compile(kind, payload):
    if kind == b"p":
        with open(payload) as f:
            return compile(f.read(), payload, "exec")
    return compile(payload, "<stdin>", "single" if kind == b"s" else "exec")


def _run(kind, payload, g):
    if kind == b"p":
        try:
            if os.stat(payload)[0] & 0x4000:
                raise OSError
        except OSError:
            _evt.write(b"DN")
            return
    err = None
    # 1 user code runs, 2 E to send, 3 waiting for the A, 4 quiet: no SIGINT can come.
    # Every step is inside the try, so an interrupt anywhere only repeats a step.
    step = 1
    while step < 4:
        try:
            if step == 1:
                _evt.write(b"G")
                exec(_compile(kind, payload), g)
                step = 2
            elif step == 2:
                _evt.write(b"E")
                step = 3
            else:
                _ack.poll(-1)  # the A is there: every SIGINT was sent before it
                for _ in range(8):
                    pass  # a deferred interrupt (a port without async ones) raises here
                step = 4
        except BaseException as e:  # noqa: B036 - the REPL reports everything, as pyexec does
            if step > 1 and not isinstance(e, KeyboardInterrupt):
                raise  # the bridge is gone (EPIPE)
            if err is None:
                err = e  # the code's own exception, or an interrupt that came as it returned
            if step == 1:
                step = 2
    _read_exact(1)  # the A
    status = b"0" if err is None else b"X" if isinstance(err, SystemExit) else b"E"
    _evt.write(b"D" + status)
    if kind == b"r":
        _out.write(b"\x04")
    if status == b"E":
        _print_exception(err)
    if kind == b"r":
        _out.write(b"\x04")


def main():
    _mount()
    g = {"__name__": "__main__"}
    while True:
        head = _read_exact(5)
        kind = head[:1]
        n = (head[1] << 24) | (head[2] << 16) | (head[3] << 8) | head[4]
        payload = _read_exact(n).decode() if n else ""
        _drain_stdin()
        _run(kind, payload, g)
        payload = None
        _evt.write(b"P")


main()
