"""The TCP link of docs/PROTOCOL.md §2, user-device side: framing `raw` or `lp`.

The user device listens and answers; the reader connects once per transaction and
sends every command APDU. `raw` carries one APDU per write in strict lock-step; `lp`
prefixes each APDU with its length as 2 bytes big-endian.
"""

import socket
import struct

from .errors import CarkeyError, UsageError

FRAMINGS = ("raw", "lp")
MAX_APDU = 65535 + 9


class LinkClosed(Exception):
    """The peer closed the connection."""


class FramingError(Exception):
    """Bytes on the link that do not follow the framing."""


def parse_endpoint(text):
    """'HOST:PORT' -> (host, port) with a clear error."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--tcp wants HOST:PORT, got {text!r}")
    try:
        port_number = int(port)
    except ValueError:
        raise UsageError(f"--tcp port is not a number: {port!r}") from None
    if not 0 <= port_number <= 65535:
        raise UsageError(f"--tcp port out of range: {port_number}")
    return host.strip("[]"), port_number


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if buf:
                raise FramingError(f"connection closed inside a frame ({len(buf)} of {n} bytes)")
            raise LinkClosed()
        buf.extend(chunk)
    return bytes(buf)


class FramedSocket:
    """One connection, reading and writing whole APDUs."""

    def __init__(self, sock, framing):
        if framing not in FRAMINGS:
            raise UsageError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
        self.sock = sock
        self.framing = framing

    def receive(self):
        if self.framing == "lp":
            (length,) = struct.unpack(">H", _recv_exact(self.sock, 2))
            if length == 0:
                raise FramingError("zero-length frame")
            return _recv_exact(self.sock, length)
        data = self.sock.recv(MAX_APDU)
        if not data:
            raise LinkClosed()
        return data

    def send(self, apdu):
        if self.framing == "lp":
            if not 0 < len(apdu) <= 0xFFFF:
                raise FramingError(f"APDU of {len(apdu)} bytes does not fit an lp frame")
            self.sock.sendall(struct.pack(">H", len(apdu)) + apdu)
        else:
            self.sock.sendall(apdu)


def listen(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind((host, port))
    except OSError as e:
        server.close()
        raise CarkeyError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    server.listen(1)
    return server


class ThreadedServer:
    """A user device's TCP side in a background thread: accepts readers one after
    another on a local port and hands each connection, framed, to
    `handle(link: FramedSocket, number)`. `count` bounds the connections served;
    close() stops accepting (and wakes a thread blocked in accept)."""

    def __init__(self, handle, framing="lp", host="127.0.0.1", port=0, count=None):
        import threading

        self.handle = handle
        self.framing = framing
        self.count = count
        self._sock = listen(host, port)
        self.port = self._sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        n = 0
        while self.count is None or n < self.count:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            n += 1
            with conn:
                self.handle(FramedSocket(conn, self.framing), n)

    def join(self, timeout=30):
        self._thread.join(timeout)

    def close(self):
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=5)
