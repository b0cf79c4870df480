# carkey — a machine.UART stand-in for the Unix port: a serial tty (pty) in raw, non-blocking mode.
# SPDX-License-Identifier: MIT
#
# The Unix port's `machine` has no UART. PtyUART(path) opens a tty (a path, or a
# descriptor the host opened: virtual_hw/host.py) the way the virtual board's PN532
# stand-in offers it (carkey_host.pn532_sim) and behaves
# like the ESP32 UART: read(n)/readinto(buf) return what has arrived (bytes come
# in pieces), waiting at most `timeout` ms for the first byte and then returning
# None when nothing came; any() says whether a read would find something.
# termios sets raw 8N1 with VMIN = VTIME = 0, so a read never blocks.

import select
import termios

_VTIME = 5  # c_cc indices on Linux
_VMIN = 6
_BAUD = {9600: termios.B9600, 57600: termios.B57600, 115200: termios.B115200, 230400: termios.B230400,
         460800: termios.B460800, 921600: termios.B921600}


class PtyUART:
    def __init__(self, path, baudrate=115200, timeout=0):
        if baudrate not in _BAUD:
            raise ValueError("unsupported baud rate %d" % baudrate)
        self._f = open(path, "r+b")
        fd = self._f.fileno()
        termios.setraw(fd)
        attr = termios.tcgetattr(fd)
        attr[4] = attr[5] = _BAUD[baudrate]
        attr[6][_VMIN] = 0
        attr[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attr)
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self.baudrate = baudrate
        self.timeout = timeout

    def init(self, baudrate=None, timeout=None):
        if timeout is not None:
            self.timeout = timeout
        if baudrate is not None and baudrate != self.baudrate:
            raise ValueError("baud rate is fixed once opened")

    def _wait(self, ms):
        for _, ev in self._poll.poll(ms):
            if ev & (select.POLLHUP | select.POLLERR) and not ev & select.POLLIN:
                raise OSError("tty hung up")
            return True
        return False

    def any(self):
        return 1 if self._wait(0) else 0

    def readinto(self, buf, nbytes=None):
        if not self._wait(self.timeout):
            return None
        mv = memoryview(buf)
        if nbytes is not None:
            mv = mv[:nbytes]
        n = self._f.readinto(mv)
        return n or None

    def read(self, nbytes=None):
        buf = bytearray(nbytes if nbytes is not None else 256)
        n = self.readinto(buf)
        return None if n is None else bytes(buf[:n])

    def write(self, buf):
        return self._f.write(buf)

    def flush(self):
        pass

    def deinit(self):
        if self._f is not None:
            self._poll.unregister(self._f)
            self._f.close()
            self._f = None

    close = deinit
