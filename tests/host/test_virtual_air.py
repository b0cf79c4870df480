"""The virtual air hub (carkey_host.virtual_air), byte for byte as docs/VIRTUAL-RADIO.md describes it.

Raw sockets play a peripheral and centrals: advertising and scan reports,
connection set-up and failure, ATT forwarding and its trace, disconnects both
ways, a node that vanishes (supervision timeout) and malformed messages.

Run: .venv/bin/pytest -q tests/host/test_virtual_air.py
"""

import socket
import struct
import time

import pytest

from carkey_host import virtual_air as va

P_ADDR = bytes.fromhex("c0ffee0000c1")
C_ADDR = bytes.fromhex("5eed00000042")


class Node:
    def __init__(self, air, role, addr):
        self.sock = socket.create_connection(air.address, timeout=3)
        self.buf = b""
        self.send(va.HELLO, bytes((role,)) + addr)

    def send(self, kind, payload=b""):
        self.sock.sendall(va.frame(kind, payload))

    def recv(self):
        while True:
            msgs, self.buf = va.parse_messages(self.buf)
            if msgs:
                first = msgs[0]
                self.buf = b"".join(va.frame(m[0], m[1:]) for m in msgs[1:]) + self.buf
                return first
            data = self.sock.recv(4096)
            if not data:
                return None
            self.buf += data

    def close(self):
        self.sock.close()


@pytest.fixture
def air():
    with va.VirtualAir(rssi=lambda p, c: -61) as hub:
        yield hub


def advertise(node, adv=b"\x02\x01\x06", resp=b"", connectable=1):
    node.send(va.ADVERTISE, bytes((connectable, len(adv))) + adv + resp)


def connected_pair(air):
    p = Node(air, va.PERIPHERAL, P_ADDR)
    advertise(p)
    c = Node(air, va.CENTRAL, C_ADDR)
    assert air.wait_for(lambda: air.advertisers() == [P_ADDR])
    c.send(va.CONNECT, P_ADDR)
    return p, c, p.recv(), c.recv()


def test_frame_format():
    assert va.frame(va.SCAN) == b"\x00\x01\x04"
    assert va.frame(va.ATT, b"\x00\x01\x1e") == b"\x00\x04\x10\x00\x01\x1e"
    assert va.parse_messages(b"\x00\x01\x04\x00\x02\x10") == ([b"\x04"], b"\x00\x02\x10")


def test_scan_reports_advertisers_with_rssi(air):
    p = Node(air, va.PERIPHERAL, P_ADDR)
    advertise(p, b"\x02\x01\x06", b"\x03\x03\xaa\xfe")
    c = Node(air, va.CENTRAL, C_ADDR)
    assert air.wait_for(lambda: air.advertisers() == [P_ADDR])
    c.send(va.SCAN)
    assert c.recv() == bytes((va.ADV_REPORT, 1)) + P_ADDR + bytes((0xC3, 1, 3)) + b"\x02\x01\x06\x03\x03\xaa\xfe"
    assert c.recv() == bytes((va.SCAN_DONE,))


def test_connect_to_silent_peripheral_fails(air):
    Node(air, va.PERIPHERAL, P_ADDR)
    c = Node(air, va.CENTRAL, C_ADDR)
    c.send(va.CONNECT, P_ADDR)
    assert c.recv() == bytes((va.CONNECT_FAILED,)) + P_ADDR + b"\x3e"


def test_connect_tells_both_and_stops_advertising(air):
    p, c, to_p, to_c = connected_pair(air)  # keep both nodes: a closed socket leaves the air
    assert to_p == bytes((va.CONNECTED,)) + b"\x00\x01\x01" + C_ADDR
    assert to_c == bytes((va.CONNECTED,)) + b"\x00\x01\x01" + P_ADDR
    assert air.advertisers() == []
    assert air.connections() == {1: (P_ADDR, C_ADDR)}
    p.close()
    c.close()


def test_att_forwarded_and_traced(air):
    p, c, _, _ = connected_pair(air)
    c.send(va.ATT, b"\x00\x01" + b"\x02\xf7\x00")
    assert p.recv() == bytes((va.ATT,)) + b"\x00\x01\x02\xf7\x00"
    p.send(va.ATT, b"\x00\x01" + b"\x03\xb9\x00")
    assert c.recv() == bytes((va.ATT,)) + b"\x00\x01\x03\xb9\x00"
    assert [(r.conn, r.sender, r.pdu) for r in air.att_trace()] == [
        (1, va.CENTRAL, b"\x02\xf7\x00"), (1, va.PERIPHERAL, b"\x03\xb9\x00")]


def test_att_on_someone_elses_connection_is_lost(air):
    p, c, _, _ = connected_pair(air)
    other = Node(air, va.CENTRAL, bytes(6))
    other.send(va.ATT, b"\x00\x01\x12\x0c\x00\x01")
    c.send(va.ATT, b"\x00\x01\x1e")
    assert p.recv() == bytes((va.ATT,)) + b"\x00\x01\x1e"  # the intruder's write never arrived


def test_disconnect_tells_both_with_reasons(air):
    p, c, _, _ = connected_pair(air)
    c.send(va.DISCONNECT, b"\x00\x01\x13")
    assert p.recv() == bytes((va.DISCONNECTED,)) + b"\x00\x01\x13"
    assert c.recv() == bytes((va.DISCONNECTED,)) + b"\x00\x01\x16"
    assert air.connections() == {}


def test_vanished_central_is_a_supervision_timeout(air):
    air.supervision_timeout_ms = 150
    p, c, _, _ = connected_pair(air)
    start = time.monotonic()
    c.close()
    assert p.recv() == bytes((va.DISCONNECTED,)) + b"\x00\x01\x08"
    assert time.monotonic() - start >= 0.15


@pytest.mark.parametrize("raw, error", [
    (va.frame(va.ADVERTISE, b"\x01\x00"), "first message must be HELLO"),
    (va.frame(va.HELLO, b"\x02" + bytes(6)), "HELLO wants role"),
    (b"\x00\x00", "empty message"),
])
def test_malformed_messages_drop_the_node(air, raw, error):
    s = socket.create_connection(air.address, timeout=3)
    s.sendall(raw)
    assert s.recv(16) == b""  # the hub hung up
    assert air.wait_for(lambda: air.errors)
    assert error in air.errors[0]


def test_unknown_type_drops_the_node(air):
    n = Node(air, va.CENTRAL, C_ADDR)
    n.send(0x7F)
    assert n.recv() is None
    assert "unknown message type 0x7f" in air.errors[0]


def test_connect_waits_for_the_advertiser(air):
    p = Node(air, va.PERIPHERAL, P_ADDR)
    c = Node(air, va.CENTRAL, C_ADDR)
    c.send(va.CONNECT, P_ADDR + struct.pack(">H", 3000))
    assert air.wait_for(lambda: air._pending)
    advertise(p)  # e.g. the car re-advertising after another phone took its slot
    assert p.recv() == bytes((va.CONNECTED,)) + b"\x00\x01\x01" + C_ADDR
    assert c.recv() == bytes((va.CONNECTED,)) + b"\x00\x01\x01" + P_ADDR


def test_connect_wait_expires(air):
    Node(air, va.PERIPHERAL, P_ADDR)
    c = Node(air, va.CENTRAL, C_ADDR)
    start = time.monotonic()
    c.send(va.CONNECT, P_ADDR + struct.pack(">H", 100))
    assert c.recv() == bytes((va.CONNECT_FAILED,)) + P_ADDR + b"\x3e"
    assert time.monotonic() - start >= 0.1


def test_docs_example_ready_write_bytes(air):
    """docs/VIRTUAL-RADIO.md's example, byte for byte through the hub."""
    p, c, _, _ = connected_pair(air)
    c.sock.sendall(bytes.fromhex("0008100001120C000000"))
    assert p.recv() == bytes.fromhex("100001120C000000")
    p.sock.sendall(bytes.fromhex("000410000113"))
    assert c.recv() == bytes.fromhex("10000113")


def test_phone_beacon_seen_with_its_rssi():
    with va.VirtualAir(rssi=lambda adv, scanner: -40 if adv == C_ADDR else -90) as hub:
        car = Node(hub, va.PERIPHERAL, P_ADDR)
        phone = Node(hub, va.CENTRAL, C_ADDR)
        phone.send(va.ADVERTISE, b"\x00\x03\x02\x01\x06")  # non-connectable beacon
        assert hub.wait_for(lambda: hub.advertisers() == [C_ADDR])
        car.send(va.SCAN)
        assert car.recv() == bytes((va.ADV_REPORT, 1)) + C_ADDR + b"\xd8\x00\x03\x02\x01\x06"
        assert car.recv() == bytes((va.SCAN_DONE,))


def test_central_cannot_advertise_connectable(air):
    phone = Node(air, va.CENTRAL, C_ADDR)
    phone.send(va.ADVERTISE, b"\x01\x00")
    assert phone.recv() is None
    assert "non-connectable" in air.errors[0]


def test_air_central_beacon_and_scan(air):
    from carkey_host.ble_phone import AirCentral

    phone, car_side = AirCentral(air.address), AirCentral(air.address)
    try:
        phone.beacon(b"\x02\x01\x06")
        assert air.wait_for(lambda: air.advertisers() == [phone.addr])
        (ad,) = car_side.scan()
        assert (ad.addr, ad.rssi, ad.connectable, ad.adv, ad.resp) == (phone.addr, -61, False, b"\x02\x01\x06", b"")
        phone.stop_beacon()
        assert air.wait_for(lambda: air.advertisers() == [])
    finally:
        phone.close()
        car_side.close()


def test_phone_hangs_up_on_a_garbled_command_frame(air):
    """A car that indicates a zero-length frame: the phone names the error and disconnects."""
    import threading

    from carkey_host import ble_phone as bp

    car = Node(air, va.PERIPHERAL, P_ADDR)
    advertise(car)
    assert air.wait_for(lambda: air.advertisers() == [P_ADDR])
    central = bp.AirCentral(air.address)
    result = {}

    def phone():
        central.connect(P_ADDR)
        result["log"] = bp.serve_air(central, 12, lambda capdu: b"\x90\x00", idle_timeout=3)

    t = threading.Thread(target=phone)
    t.start()
    assert car.recv()[0] == va.CONNECTED
    car.send(va.ATT, b"\x00\x01\x1d\x0e\x00\x00\x00")  # indication of the frame 00 00
    assert car.recv() == bytes((va.ATT,)) + b"\x00\x01\x1e"  # the stack confirms it
    assert car.recv() == bytes((va.DISCONNECTED,)) + b"\x00\x01\x13"
    t.join(5)
    central.close()
    assert result["log"].error == "frame length 0 outside 1..261"
