"""The virtual air: a local hub that virtual BLE peripherals and centrals join.

The car's firmware, running in the MicroPython Unix port with the virtual board's
`bluetooth` module (boards/virtual_hw/bluetooth.py), joins as a peripheral;
simulated phones (carkey_host.ble_phone.AirCentral) join as centrals. The hub
carries advertising, connections and ATT PDUs between them, and keeps a trace of
every ATT PDU for measurements. Wire format: docs/VIRTUAL-RADIO.md.

A node that leaves (its socket closes: a phone walking out of range, a board
losing power) loses its connections; the peer hears of it after the supervision
timeout, as a real link layer reports a lost link.
"""

import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

# Node -> hub
HELLO = 0x01  # role (0 peripheral, 1 central) | address (6)
ADVERTISE = 0x02  # connectable (1) | adv length (1) | adv data | scan response data
ADV_STOP = 0x03
SCAN = 0x04  # answered by ADV_REPORT for each advertiser, then SCAN_DONE
CONNECT = 0x05  # peripheral address (6) | optional wait in ms (2): how long to wait for it to advertise
DISCONNECT = 0x06  # conn (2) | HCI reason (1)
DISCOVER = 0x07  # conn (2): forwarded to the peripheral
TABLE = 0x08  # conn (2) | entries: forwarded to the central
ATT = 0x10  # conn (2) | ATT PDU: forwarded to the other end of the connection
# Hub -> node
CONNECTED = 0x81  # conn (2) | peer address type (1) | peer address (6)
DISCONNECTED = 0x82  # conn (2) | HCI reason (1)
CONNECT_FAILED = 0x83  # address (6) | HCI reason (1)
ADV_REPORT = 0x84  # address type (1) | address (6) | rssi (1, signed) | connectable (1) | adv length (1) | adv | resp
SCAN_DONE = 0x85

PERIPHERAL, CENTRAL = 0, 1
REASON_REMOTE_USER = 0x13
REASON_LOCAL_HOST = 0x16
REASON_SUPERVISION_TIMEOUT = 0x08
REASON_CONNECTION_FAILED = 0x3E
ADDR_RANDOM = 1
MAX_MESSAGE = 0xFFFF


def frame(kind, payload=b""):
    """One wire message: length (2, big-endian) | type | payload."""
    body = bytes((kind,)) + payload
    if len(body) > MAX_MESSAGE:
        raise ValueError("virtual air message too long")
    return struct.pack(">H", len(body)) + body


class WireError(Exception):
    """Bytes from a node that do not follow the wire format."""


def parse_messages(buf):
    """Split complete messages off the front of `buf`: (messages, rest)."""
    out = []
    while len(buf) >= 2:
        n = (buf[0] << 8) | buf[1]
        if n == 0:
            raise WireError("empty message")
        if len(buf) < 2 + n:
            break
        out.append(bytes(buf[2 : 2 + n]))
        buf = buf[2 + n :]
    return out, buf


@dataclass
class AttRecord:
    """One ATT PDU carried over the air."""

    time: float
    conn: int
    sender: int  # PERIPHERAL or CENTRAL
    pdu: bytes


@dataclass
class _Node:
    sock: socket.socket
    role: int | None = None
    addr: bytes = b""
    buf: bytes = b""
    advertising: bool = False
    connectable: bool = False
    adv: bytes = b""
    resp: bytes = b""
    conns: set = field(default_factory=set)


class VirtualAir:
    """The hub: `with VirtualAir() as air: ... air.address` (host, port).

    rssi: function (peripheral address, central address) -> dBm for scan reports
    (default -50). supervision_timeout_ms: how long after a node vanishes its peers
    hear of the lost link.
    """

    def __init__(self, host="127.0.0.1", port=0, supervision_timeout_ms=0, rssi=None):
        self._listener = socket.create_server((host, port))
        self._listener.setblocking(False)
        self.address = self._listener.getsockname()[:2]
        self.supervision_timeout_ms = supervision_timeout_ms
        self.rssi = rssi or (lambda peripheral, central: -50)
        self.trace: list[AttRecord] = []
        self.errors: list[str] = []
        self.scans: list[int] = []  # the role of each node that asked for a SCAN
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._nodes: dict[socket.socket, _Node] = {}
        self._conns: dict[int, tuple[_Node, _Node]] = {}  # conn -> (peripheral, central)
        self._next_conn = 1
        self._timers: list[tuple[float, _Node, bytes]] = []
        self._pending: list[tuple[float, _Node, bytes]] = []  # (deadline, central, address) awaiting an advertiser
        self._lock = threading.Lock()
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._run, name="virtual-air", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for node in list(self._nodes.values()):
            node.sock.close()
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        self._sel.close()

    # --- state, for tests and measurements ---------------------------------------------

    def connections(self):
        with self._lock:
            return {c: (p.addr, ce.addr) for c, (p, ce) in self._conns.items()}

    def advertisers(self):
        with self._lock:
            return [n.addr for n in self._nodes.values() if n.advertising]

    def att_trace(self, conn=None):
        with self._lock:
            return [r for r in self.trace if conn is None or r.conn == conn]

    def wait_for(self, predicate, timeout=5.0):
        """Poll the hub's state until predicate() holds (state changes come from other processes)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return True
            time.sleep(0.005)
        return predicate()

    # --- the loop -----------------------------------------------------------------------

    def _run(self):
        while not self._stop:
            timeout = None
            deadlines = [t for t, _, _ in self._timers] + [t for t, _, _ in self._pending]
            if deadlines:
                timeout = max(0.0, min(deadlines) - time.monotonic())
            for key, _ in self._sel.select(timeout):
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                elif sock is self._wake_r:
                    sock.recv(64)
                else:
                    self._read(self._nodes.get(sock))
            self._fire_timers()

    def _accept(self):
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        node = _Node(sock)
        with self._lock:
            self._nodes[sock] = node
        self._sel.register(sock, selectors.EVENT_READ)

    def _fire_timers(self):
        now = time.monotonic()
        due = [t for t in self._timers if t[0] <= now]
        self._timers = [t for t in self._timers if t[0] > now]
        for _, node, msg in due:
            self._send(node, msg)
        expired = [p for p in self._pending if p[0] <= now]
        self._pending = [p for p in self._pending if p[0] > now]
        for _, central, addr in expired:
            self._send(central, frame(CONNECT_FAILED, addr + bytes((REASON_CONNECTION_FAILED,))))

    def _serve_pending(self, peripheral):
        # An advertiser appeared: the first central waiting for it connects.
        for i, (_, central, addr) in enumerate(self._pending):
            if addr == peripheral.addr and central.sock.fileno() >= 0:
                del self._pending[i]
                self._connect(central, addr, 0)
                return

    def _send(self, node, msg):
        if node.sock.fileno() < 0:
            return
        try:
            node.sock.sendall(msg)
        except OSError:
            pass  # that node is leaving: its own read sees it

    def _read(self, node):
        if node is None:
            return
        try:
            data = node.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._leave(node)
            return
        try:
            messages, node.buf = parse_messages(node.buf + data)
        except WireError as e:
            self.errors.append(f"{node.addr.hex()}: {e}")
            self._leave(node)
            return
        for msg in messages:
            try:
                self._handle(node, msg)
            except (IndexError, struct.error, WireError) as e:
                self.errors.append(f"{node.addr.hex()}: bad message {msg.hex()}: {e}")
                self._leave(node)
                return

    def _leave(self, node):
        # A vanished node: its peers hear of the lost link after the supervision timeout.
        self._pending = [p for p in self._pending if p[1] is not node]
        self._sel.unregister(node.sock)
        node.sock.close()
        with self._lock:
            self._nodes.pop(node.sock, None)
            for conn in list(node.conns):
                peripheral, central = self._conns.pop(conn)
                peer = central if peripheral is node else peripheral
                peer.conns.discard(conn)
                msg = frame(DISCONNECTED, struct.pack(">HB", conn, REASON_SUPERVISION_TIMEOUT))
                self._timers.append((time.monotonic() + self.supervision_timeout_ms / 1000, peer, msg))

    def _handle(self, node, msg):
        kind, body = msg[0], msg[1:]
        if kind == HELLO:
            if len(body) != 7 or body[0] not in (PERIPHERAL, CENTRAL):
                raise WireError("HELLO wants role and a 6-byte address")
            node.role, node.addr = body[0], bytes(body[1:7])
            return
        if node.role is None:
            raise WireError("first message must be HELLO")
        if kind == ADVERTISE:
            if len(body) < 2 or 2 + body[1] > len(body) or (node.role == CENTRAL and body[0]):
                raise WireError("bad ADVERTISE (a central advertises only non-connectable beacons)")
            with self._lock:
                node.connectable = bool(body[0])
                node.adv = bytes(body[2 : 2 + body[1]])
                node.resp = bytes(body[2 + body[1] :])
                node.advertising = True
            if node.connectable:
                self._serve_pending(node)
        elif kind == ADV_STOP:
            node.advertising = False
        elif kind == SCAN:
            self.scans.append(node.role)
            for other in list(self._nodes.values()):
                if other is not node and other.advertising:
                    rssi = max(-127, min(20, int(self.rssi(other.addr, node.addr))))
                    self._send(node, frame(ADV_REPORT, bytes((ADDR_RANDOM,)) + other.addr
                                           + struct.pack(">bBB", rssi, other.connectable, len(other.adv))
                                           + other.adv + other.resp))
            self._send(node, frame(SCAN_DONE))
        elif kind == CONNECT:
            if len(body) not in (6, 8):
                raise WireError("CONNECT wants an address and an optional wait")
            wait_ms = struct.unpack(">H", body[6:8])[0] if len(body) == 8 else 0
            self._connect(node, bytes(body[:6]), wait_ms)
        elif kind == DISCONNECT:
            conn, reason = struct.unpack(">HB", body[:3])
            self._disconnect(node, conn, reason)
        elif kind in (DISCOVER, TABLE, ATT):
            conn = struct.unpack(">H", body[:2])[0]
            with self._lock:
                ends = self._conns.get(conn)
                if ends is None or node not in ends:
                    return  # the link is already gone: the PDU is lost, as on air
                peer = ends[1] if ends[0] is node else ends[0]
                if kind == ATT:
                    self.trace.append(AttRecord(time.monotonic(), conn, node.role, bytes(body[2:])))
            self._send(peer, frame(kind, body))
        else:
            raise WireError(f"unknown message type {kind:#04x}")

    def _connect(self, central, addr, wait_ms):
        if central.role != CENTRAL:
            raise WireError("only a central connects")
        with self._lock:
            target = next((n for n in self._nodes.values() if n.role == PERIPHERAL and n.addr == addr), None)
            if target is None or not target.advertising or not target.connectable:
                failed = True
            else:
                failed = False
                conn = self._next_conn
                self._next_conn = self._next_conn % 0xEFFF + 1
                target.advertising = False  # a connection ends advertising
                self._conns[conn] = (target, central)
                target.conns.add(conn)
                central.conns.add(conn)
        if failed:
            if wait_ms:
                # As a real initiator does: keep listening for the advertiser until the wait ends.
                self._pending.append((time.monotonic() + wait_ms / 1000, central, addr))
            else:
                self._send(central, frame(CONNECT_FAILED, addr + bytes((REASON_CONNECTION_FAILED,))))
            return
        self._send(target, frame(CONNECTED, struct.pack(">HB", conn, ADDR_RANDOM) + central.addr))
        self._send(central, frame(CONNECTED, struct.pack(">HB", conn, ADDR_RANDOM) + target.addr))

    def _disconnect(self, node, conn, reason):
        with self._lock:
            ends = self._conns.get(conn)
            if ends is None or node not in ends:
                return
            del self._conns[conn]
            for end in ends:
                end.conns.discard(conn)
        peer = ends[1] if ends[0] is node else ends[0]
        self._send(peer, frame(DISCONNECTED, struct.pack(">HB", conn, reason)))
        self._send(node, frame(DISCONNECTED, struct.pack(">HB", conn, REASON_LOCAL_HOST)))
