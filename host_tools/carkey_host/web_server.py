"""`carkey phone web`: serves the phone key page (web/) and, for development, a WebSocket to the virtual air.

The page needs a secure context for Web Bluetooth and WebCrypto: http://localhost (or
127.0.0.1) counts as one, any other host needs HTTPS (README "Use your phone").
With `air` set, GET /air upgrades to a WebSocket whose binary messages are tunnelled
byte for byte to the virtual air hub (docs/VIRTUAL-RADIO.md), so the page's
stand-in for navigator.bluetooth (web/lib/air_bluetooth.js) reaches a virtual car.
The WebSocket server is the small part of RFC 6455 a browser needs: the handshake,
masked client frames (text, binary, continuation, ping, close), unmasked server frames.
"""

import base64
import hashlib
import socket
import struct
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from . import paths
from .errors import CarkeyError

WEB_DIR = paths.REPO_ROOT / "web"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_WS_MESSAGE = 1 << 20
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketClosed(Exception):
    pass


def accept_key(client_key: str) -> str:
    return base64.b64encode(hashlib.sha1(client_key.encode() + WS_GUID).digest()).decode()


def _recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise WebSocketClosed("peer closed")
        buf += part
    return bytes(buf)


def ws_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unmasked server frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack(">BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack(">BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack(">BBQ", 0x80 | opcode, 127, n)
    return head + payload


def ws_read_message(sock, on_ping):
    """The next whole data message from a client (masked frames); WebSocketClosed on close."""
    parts, opcode = [], None
    while True:
        b0, b1 = _recv_exact(sock, 2)
        fin, op, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        if not masked:
            raise WebSocketClosed("client frame not masked")
        if n == 126:
            n = struct.unpack(">H", _recv_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack(">Q", _recv_exact(sock, 8))[0]
        if n > MAX_WS_MESSAGE:
            raise WebSocketClosed("message too long")
        mask = _recv_exact(sock, 4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(_recv_exact(sock, n)))
        if op == OP_CLOSE:
            raise WebSocketClosed("client closed")
        if op == OP_PING:
            on_ping(data)
            continue
        if op == OP_PONG:
            continue
        if op != OP_CONT:
            opcode = op
        parts.append(data)
        if fin:
            if opcode not in (OP_TEXT, OP_BINARY):
                raise WebSocketClosed("unexpected continuation")
            return b"".join(parts)


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # RFC 6455 upgrades an HTTP/1.1 request; static files keep the connection
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".mjs": "text/javascript", ".webmanifest": "application/manifest+json",
                      ".svg": "image/svg+xml", ".json": "application/json"}

    def __init__(self, *args, air=None, quiet=True, **kw):
        self.air = air
        self.quiet = quiet
        super().__init__(*args, **kw)

    def log_message(self, fmt, *args):
        if not self.quiet:
            super().log_message(fmt, *args)

    def end_headers(self):
        # The service worker keeps the offline copy; the server always offers the newest.
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def do_GET(self):
        if self.path.split("?")[0] == "/air":
            return self._air()
        if self.path.split("?")[0] == "/air-config.json":
            body = (b'{"air": true}' if self.air else b'{"air": false}')
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        return super().do_GET()

    def _air(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if self.air is None or key is None or "websocket" not in self.headers.get("Upgrade", "").lower():
            self.send_error(404, "no virtual air here (carkey phone web --air HOST:PORT)")
            return
        try:
            upstream = socket.create_connection(self.air, timeout=5)
        except OSError as e:
            self.send_error(502, f"virtual air unreachable: {e}")
            return
        upstream.settimeout(None)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept_key(key))
        super().end_headers()
        self.wfile.flush()
        client = self.connection
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_lock = threading.Lock()

        def to_client(frame):
            with send_lock:
                client.sendall(frame)

        def upstream_to_client():
            try:
                while True:
                    data = upstream.recv(65536)
                    if not data:
                        break
                    to_client(ws_frame(OP_BINARY, data))
            except OSError:
                pass
            finally:
                try:
                    to_client(ws_frame(OP_CLOSE, struct.pack(">H", 1000)))
                except OSError:
                    pass
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        pump = threading.Thread(target=upstream_to_client, daemon=True)
        pump.start()
        try:
            while True:
                upstream.sendall(ws_read_message(client, lambda d: to_client(ws_frame(OP_PONG, d))))
        except (WebSocketClosed, OSError):
            pass
        finally:
            try:
                upstream.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            upstream.close()
            pump.join(5)
        self.close_connection = True


class WebServer(ThreadingHTTPServer):
    daemon_threads = True


def make_server(host: str, port: int, air=None, directory=WEB_DIR, quiet=True) -> WebServer:
    """The page's server at host:port (port 0: any free one); `air` = (host, port) of a virtual air hub."""
    if not (directory / "index.html").exists():
        raise CarkeyError(f"{directory}: the phone key page is missing")
    handler = partial(Handler, directory=str(directory), air=air, quiet=quiet)
    try:
        return WebServer((host, port), handler)
    except OSError as e:
        raise CarkeyError(f"cannot listen on {host}:{port}: {e.strerror}") from None


class RunningWebServer:
    """make_server in a background thread, as a context manager; `.url` is its address."""

    def __init__(self, host="127.0.0.1", port=0, air=None, directory=WEB_DIR):
        self.server = make_server(host, port, air, directory)
        h, p = self.server.server_address[:2]
        self.url = f"http://{h}:{p}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
