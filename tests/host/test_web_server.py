"""`carkey phone web`: the page's static server and its WebSocket tunnel to the virtual air.

Run: .venv/bin/pytest -q tests/host/test_web_server.py
"""

import base64
import os
import socket
import struct
import urllib.error
import urllib.request

import pytest

from carkey_host import virtual_air as air
from carkey_host.cli import main
from carkey_host.web_server import RunningWebServer, accept_key, ws_frame


def test_serves_the_page_and_its_modules():
    with RunningWebServer() as web:
        page = urllib.request.urlopen(web.url + "/").read().decode()
        assert '<script type="module" src="app.js">' in page
        js = urllib.request.urlopen(web.url + "/lib/user_device.js")
        assert js.headers["Content-Type"] == "text/javascript"
        manifest = urllib.request.urlopen(web.url + "/manifest.webmanifest")
        assert manifest.headers["Content-Type"] == "application/manifest+json"
        assert urllib.request.urlopen(web.url + "/air-config.json").read() == b'{"air": false}'
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(web.url + "/air")
        assert e.value.code == 404


def test_bad_listen_address(capsys):
    assert main(["phone", "web", "--listen", "nowhere"]) == 1
    assert "--listen/--air wants HOST:PORT" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["phone", "web", "--listen", "127.0.0.1:%d" % busy.getsockname()[1]]) == 1
    assert "cannot listen on 127.0.0.1:" in capsys.readouterr().err


def _client_frame(payload, opcode=2, fin=True):
    mask = os.urandom(4)
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    head += bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_frame(sock):
    b0, b1 = sock.recv(1)[0], sock.recv(1)[0]
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", sock.recv(2))[0]
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))
    return b0 & 0x0F, data


def test_websocket_tunnels_bytes_to_the_virtual_air():
    with air.VirtualAir(port=0) as hub, RunningWebServer(air=hub.address) as web:
        host, port = web.server.server_address[:2]
        sock = socket.create_connection((host, port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /air HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101") and accept_key(key).encode() in head
        hello = air.frame(air.HELLO, bytes([air.CENTRAL]) + bytes.fromhex("c0ffee000001"))
        # A message split over two WebSocket fragments, then a ping: the hub sees one byte stream.
        scan = air.frame(air.SCAN)
        sock.sendall(_client_frame(hello[:3], fin=False) + _client_frame(hello[3:] + scan, opcode=0))
        sock.sendall(_client_frame(b"hi", opcode=9))
        got, frames = b"", []
        while air.frame(air.SCAN_DONE) not in got or 0xA not in frames:
            opcode, data = _read_frame(sock)
            frames.append(opcode)
            if opcode == 2:
                got += data
        assert frames.count(0xA) == 1  # the pong
        sock.sendall(_client_frame(b"", opcode=8))
        sock.close()
    assert ws_frame(2, b"x" * 300)[:4] == bytes([0x82, 126, 1, 44])
