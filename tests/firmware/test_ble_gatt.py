# carkey — tests for carkey.hw.ble_gatt on the virtual board's `bluetooth`, the test speaking for air and phone.
# SPDX-License-Identifier: MIT
#
# Covers GATT registration and discovery bytes, advertising payloads, the 20-byte
# default buffer and gatts_set_buffer, the MTU exchange, indications in MTU−3
# chunks one at a time, answer reassembly, per-chunk and per-exchange timeouts,
# bad frames, disconnects, the connection limit, re-advertising, slot
# reservation, the drop after an authentication failure, and the stand-in's
# scanning (RSSI for the proximity hint) and error behaviour.
# Run: pytest -q tests/firmware/test_ble_gatt.py, or
#   MICROPYPATH=.frozen:firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/mpy/mpy_runner.py tests/firmware/test_ble_gatt.py
# (tests/mpy/ble_hub.py puts boards/virtual_hw on the path, as the virtual board does).

import asyncio
import errno
import struct

import unittest
from ble_hub import ADV_STOP, ADVERTISE, DISCONNECT, DISCOVER, HELLO, TABLE, Hub  # puts the virtual board on the path
import bluetooth
from carkey.hw import ble_gatt
from carkey.hw.ble_frame import FrameError
from carkey.protocol.errors import AuthenticationFailed, LinkError, LinkTimeout

# Default heap: the virtual `bluetooth` is test infrastructure loaded from source
# (a board has it in C); the firmware side's heap is checked by the end-to-end
# budget test (tests/host/test_ble_e2e.py) and test_ble_frame.py at 64 KiB.

GROUP = bytes(range(0xA0, 0xB0))
NAME = "carkey-a0a1a2a3"
C1 = 0x0001
IND = 14  # indicate value handle: service 10, write decl 11 + value 12, indicate decl 13 + value 14, CCCD 15
WR = 12


def run(coro):
    return asyncio.run(coro)


async def until(cond, ms=2000):
    # Lets the stand-in's event task run until cond() holds (events come over a socket).
    for _ in range(ms):
        if cond():
            return
        await asyncio.sleep_ms(1)
    raise AssertionError("condition not reached in %d ms" % ms)


class BleCase(unittest.TestCase):
    def setUp(self):
        asyncio.new_event_loop()
        self.hub = Hub()
        self.ble = bluetooth.BLE()

    def tearDown(self):
        self.ble.active(False)
        self.hub.close()

    async def start(self, **kw):
        server = ble_gatt.BleServer(NAME, **kw)
        server.start()
        self.hub.accept()
        hello = await self.hub.expect(HELLO)
        self.assertEqual(len(hello), 8)
        self.assertEqual(hello[1], 0)  # peripheral
        self.adv = await self.hub.expect(ADVERTISE)
        return server

    async def phone(self, server, conn=C1, mtu=None):
        # Connect, optionally exchange the MTU, then say "ready" (the empty frame).
        more = server.free_slots() > 1
        task = asyncio.create_task(server.accept())
        self.hub.connect(conn)
        if more:
            await self.hub.expect(ADVERTISE)  # advertising again for the next phone
        if mtu:
            self.hub.att(conn, struct.pack("<BH", 0x02, mtu))
            self.assertEqual(await self.hub.expect_att(conn), struct.pack("<BH", 0x03, server.mtu))
        self.hub.att(conn, struct.pack("<BH", 0x12, WR) + b"\x00\x00")
        self.assertEqual(await self.hub.expect_att(conn), b"\x13")
        return await task

    async def confirm_all(self, conn, n):
        # Confirm n indications as the phone's stack does; their values joined.
        got = b""
        for _ in range(n):
            pdu = await self.hub.expect_att(conn)
            self.assertEqual(pdu[:3], struct.pack("<BH", 0x1D, IND))
            got += pdu[3:]
            self.hub.att(conn, b"\x1e")
        return got

    def answer(self, conn, frame, step):
        for i in range(0, len(frame), step):
            self.hub.att(conn, struct.pack("<BH", 0x12, WR) + frame[i : i + step])


class TestAdvertising(BleCase):
    def test_payloads(self):
        self.assertEqual(ble_gatt.device_name(GROUP), NAME)
        self.assertEqual(ble_gatt.advertising_payload(NAME), b"\x02\x01\x06\x10\x09" + NAME.encode())
        self.assertEqual(ble_gatt.scan_response_payload(),
                         b"\x11\x07" + bytes(reversed(bytes.fromhex("7f1e00016c2b4b8e9f3a2d5c1ac0a201"))))

    def test_start_advertises_connectable_name_and_service(self):
        async def go():
            await self.start()
            adv = ble_gatt.advertising_payload(NAME)
            self.assertEqual(bytes(self.adv), bytes((ADVERTISE, 1, len(adv))) + adv + ble_gatt.scan_response_payload())
        run(go())

    def test_discovery_table(self):
        async def go():
            server = await self.start()
            self.assertEqual((server.write_handle, server.indicate_handle), (WR, IND))
            await self.phone(server)
            self.hub.send(DISCOVER, struct.pack(">H", C1))
            table = await self.hub.expect(TABLE)
            u = lambda s: bytes(bluetooth.UUID(s))
            self.assertEqual(bytes(table), bytes((TABLE,)) + struct.pack(">H", C1)
                             + struct.pack(">HHB", 10, 0, 16) + u(ble_gatt.SERVICE_UUID)
                             + struct.pack(">HHB", WR, 0x0008, 16) + u(ble_gatt.WRITE_UUID)
                             + struct.pack(">HHB", IND, 0x0020, 16) + u(ble_gatt.INDICATE_UUID))
        run(go())

    def test_readvertises_after_connect_while_slots_remain(self):
        async def go():
            server = await self.start(max_connections=2)
            first = await self.phone(server, 1)  # expects the ADVERTISE for the slot left
            await self.phone(server, 2)
            self.assertEqual(server.free_slots(), 0)
            self.assertFalse(server.advertising)
            self.hub.disconnect(1)
            task = asyncio.create_task(server.accept())
            await until(lambda: not first.connected)
            await first.close()  # the transaction lets go of its link
            await self.hub.expect(ADVERTISE)  # the freed slot is offered again
            self.assertEqual(server.free_slots(), 1)
            task.cancel()
        run(go())


class TestStandIn(BleCase):
    # The virtual `bluetooth` keeps the limits firmware meets on a board.

    def register(self):
        self.ble.active(True)
        self.hub.accept()
        svc = (bluetooth.UUID(0x1234), ((bluetooth.UUID(0x1235), bluetooth.FLAG_WRITE), (bluetooth.UUID(0x1236), bluetooth.FLAG_INDICATE)))
        ((w, i),) = self.ble.gatts_register_services((svc,))
        events = []
        self.ble.irq(lambda e, d: events.append((e, tuple(bytes(x) if isinstance(x, memoryview) else x for x in d))))
        return w, i, events

    def test_inactive_radio_raises_eperm(self):
        with self.assertRaises(OSError) as cm:
            self.ble.gap_advertise(100000, b"")
        self.assertEqual(cm.exception.errno, errno.EPERM)

    def test_write_cut_to_default_20_byte_buffer(self):
        async def go():
            w, _, events = self.register()
            await self.hub.expect(HELLO)
            self.hub.connect(C1)
            self.hub.att(C1, struct.pack("<BH", 0x02, 100))
            await self.hub.expect_att(C1)
            self.hub.att(C1, struct.pack("<BH", 0x12, w) + bytes(range(30)))
            self.assertEqual(await self.hub.expect_att(C1), b"\x13")
            self.assertEqual(self.ble.gatts_read(w), bytes(range(20)))
            self.assertEqual(events[0], (1, (C1, 1, b"\x11\x22\x33\x44\x55\xc6")))
            self.assertEqual(events[-1], (3, (C1, w)))
            self.ble.gatts_set_buffer(w, 64)
            self.hub.att(C1, struct.pack("<BH", 0x12, w) + bytes(range(30)))
            await self.hub.expect_att(C1)
            self.assertEqual(self.ble.gatts_read(w), bytes(range(30)))
        run(go())

    def test_write_longer_than_mtu_refused(self):
        async def go():
            w, _, events = self.register()
            await self.hub.expect(HELLO)
            self.hub.connect(C1)
            self.hub.att(C1, struct.pack("<BH", 0x12, w) + bytes(21))  # 24-byte PDU at MTU 23
            self.assertEqual(await self.hub.expect_att(C1), struct.pack("<BBHB", 0x01, 0x12, w, 0x0D))
            self.assertEqual([e for e, _ in events], [1])
        run(go())

    def test_mtu_exchange_takes_the_smaller(self):
        async def go():
            _, _, events = self.register()
            self.ble.config(mtu=185)
            await self.hub.expect(HELLO)
            self.hub.connect(C1)
            self.hub.att(C1, struct.pack("<BH", 0x02, 247))
            self.assertEqual(await self.hub.expect_att(C1), b"\x03\xb9\x00")
            self.assertEqual(events[-1], (21, (C1, 185)))
        run(go())

    def test_mtu_config_out_of_range(self):
        with self.assertRaises(OSError) as cm:
            self.ble.config(mtu=22)
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_indications_one_at_a_time_and_cut_to_mtu(self):
        async def go():
            _, i, events = self.register()
            await self.hub.expect(HELLO)
            self.hub.connect(C1)
            await until(lambda: events)
            self.ble.gatts_indicate(C1, i, bytes(range(30)))
            self.assertEqual(await self.hub.expect_att(C1), struct.pack("<BH", 0x1D, i) + bytes(range(20)))
            with self.assertRaises(OSError) as cm:
                self.ble.gatts_indicate(C1, i, b"x")
            self.assertEqual(cm.exception.errno, errno.EALREADY)
            self.hub.att(C1, b"\x1e")
            await until(lambda: events[-1][0] == 20)
            self.assertEqual(events[-1], (20, (C1, i, 0)))
            self.ble.gatts_indicate(C1, i, b"y")  # free again
        run(go())

    def test_indicate_unknown_connection(self):
        _, i, _ = self.register()
        with self.assertRaises(OSError) as cm:
            self.ble.gatts_indicate(7, i, b"x")
        self.assertEqual(cm.exception.errno, errno.ENOTCONN)

    def test_connection_limit(self):
        async def go():
            _, _, events = self.register()
            self.ble.gap_advertise(100000, b"\x02\x01\x06")
            await self.hub.expect(HELLO)
            await self.hub.expect(ADVERTISE)
            for c in range(1, 5):
                self.hub.connect(c)
            await until(lambda: len(events) == 4)
            with self.assertRaises(OSError) as cm:
                self.ble.gap_advertise(100000)
            self.assertEqual(cm.exception.errno, errno.ENOMEM)
            self.hub.connect(5)  # a fifth the controller could not take
            self.assertEqual(bytes(await self.hub.expect(DISCONNECT)), bytes((DISCONNECT,)) + struct.pack(">HB", 5, 0x0D))
            self.ble.gap_advertise(100000, connectable=False)  # non-connectable still works
        run(go())


class TestTransceive(BleCase):
    def test_command_in_mtu_minus_3_chunks_answer_reassembled(self):
        async def go():
            server = await self.start()
            link = await self.phone(server)
            capdu = bytes(range(40))
            task = asyncio.create_task(link.transceive(capdu, 1000))
            pdu = await self.hub.expect_att(C1)
            self.assertEqual(pdu, struct.pack("<BH", 0x1D, IND) + b"\x00\x28" + capdu[:18])
            for _ in range(5):
                await asyncio.sleep_ms(0)
            self.assertEqual(link.indications, 1)  # the next waits for the confirmation
            self.hub.att(C1, b"\x1e")
            rest = await self.confirm_all(C1, 2)
            self.assertEqual(rest, capdu[18:])
            answer = bytes(range(100, 145)) + b"\x90\x00"
            self.answer(C1, b"\x00\x2f" + answer, 20)
            self.assertEqual(await task, answer)
            self.assertEqual((link.indications, link.writes, link.bytes_out, link.bytes_in), (3, 4, 42, 51))  # writes include the ready frame
        run(go())

    def test_larger_mtu_one_chunk_each_way(self):
        async def go():
            server = await self.start()
            link = await self.phone(server, mtu=185)
            self.assertEqual(link.mtu, 185)
            task = asyncio.create_task(link.transceive(bytes(100), 1000))
            self.assertEqual(await self.confirm_all(C1, 1), b"\x00\x64" + bytes(100))
            self.answer(C1, b"\x00\x82" + bytes(128) + b"\x90\x00", 182)
            self.assertEqual(len(await task), 130)
            self.assertEqual(link.writes, 2)  # ready, then the answer in one chunk
        run(go())

    def expect_failure(self, exc_type, script, timeout_ms=1000, chunk_timeout_ms=1000, text=None):
        async def go():
            server = await self.start(chunk_timeout_ms=chunk_timeout_ms)
            link = await self.phone(server)
            task = asyncio.create_task(link.transceive(b"\x00\xa4\x04\x00", timeout_ms))
            await script(self)
            try:
                await task
            except exc_type as e:
                if text is not None:
                    self.assertIn(text, str(e))
            else:
                self.fail("no %s" % exc_type.__name__)
            self.assertFalse(link.connected)
            return server, link
        return run(go())

    def test_unconfirmed_indication_times_out_and_drops(self):
        async def script(t):
            await t.hub.expect_att(C1)  # never confirmed

        self.expect_failure(LinkTimeout, script, chunk_timeout_ms=80, text="not confirmed")

    def test_dropped_link_is_disconnected_on_air(self):
        async def go():
            server = await self.start(chunk_timeout_ms=80)
            link = await self.phone(server)
            task = asyncio.create_task(link.transceive(b"\x00\xa4\x04\x00", 1000))
            await self.hub.expect_att(C1)
            with self.assertRaises(LinkTimeout):
                await task
            self.assertEqual(bytes(await self.hub.expect(DISCONNECT)), bytes((DISCONNECT,)) + struct.pack(">HB", C1, 0x13))
        run(go())

    def test_no_answer_times_out(self):
        async def script(t):
            await t.confirm_all(C1, 1)

        self.expect_failure(LinkTimeout, script, timeout_ms=100, text="no answer within 100 ms")

    def test_stalled_answer_times_out_per_chunk(self):
        async def script(t):
            await t.confirm_all(C1, 1)
            t.answer(C1, b"\x00\x30" + bytes(18), 20)  # first of three chunks only

        self.expect_failure(LinkTimeout, script, timeout_ms=5000, chunk_timeout_ms=80, text="stalled at 20 of 50")

    def test_zero_length_frame_refused(self):
        async def script(t):
            await t.confirm_all(C1, 1)
            t.answer(C1, b"\x00\x00", 20)

        self.expect_failure(FrameError, script, text="frame length 0")

    def test_oversize_frame_refused(self):
        async def script(t):
            await t.confirm_all(C1, 1)
            t.answer(C1, b"\x02\x01" + bytes(18), 20)

        self.expect_failure(FrameError, script, text="frame length 513 outside 1..512")

    def test_bytes_past_frame_refused(self):
        async def script(t):
            await t.confirm_all(C1, 1)
            t.answer(C1, b"\x00\x02\x90\x00\xff", 20)

        self.expect_failure(FrameError, script, text="1 bytes past the end")

    def test_phone_walks_away_mid_exchange(self):
        async def script(t):
            await t.confirm_all(C1, 1)
            t.hub.disconnect(C1, 0x08)

        server, link = self.expect_failure(LinkError, script, text="disconnected")
        self.assertEqual(server.free_slots(), ble_gatt.MAX_CONNECTIONS - 1)  # held until closed
        run(link.close())
        self.assertEqual(server.free_slots(), ble_gatt.MAX_CONNECTIONS)

    def test_disconnect_while_indicating(self):
        async def script(t):
            await t.hub.expect_att(C1)
            t.hub.disconnect(C1, 0x08)

        self.expect_failure(LinkError, script)

    def test_write_outside_an_exchange_is_dropped(self):
        async def go():
            server = await self.start()
            link = await self.phone(server)
            self.answer(C1, b"\x00\x02\x90\x00", 20)
            await self.hub.expect_att(C1)  # write response
            self.assertEqual(link.stray_writes, 1)
            task = asyncio.create_task(link.transceive(b"\x00\xb0\x00\x00", 1000))
            await self.confirm_all(C1, 1)
            self.answer(C1, b"\x00\x02\x6a\x82", 20)
            self.assertEqual(await task, b"\x6a\x82")
        run(go())

    def test_closed_link_refuses(self):
        async def go():
            server = await self.start()
            link = await self.phone(server)
            await link.close()
            with self.assertRaises(LinkError):
                await link.transceive(b"\x00\xa4\x04\x00", 100)
        run(go())


class TestReady(BleCase):
    def test_phone_not_ready_in_time_is_dropped(self):
        async def go():
            server = await self.start(ready_timeout_ms=100)
            task = asyncio.create_task(server.accept())
            self.hub.connect(C1)
            await self.hub.expect(ADVERTISE)
            self.assertEqual(bytes(await self.hub.expect(DISCONNECT)), bytes((DISCONNECT,)) + struct.pack(">HB", C1, 0x13))
            self.hub.disconnect(C1, 0x16)
            await self.hub.expect(ADVERTISE)  # the slot is offered again
            self.assertEqual(server.free_slots(), ble_gatt.MAX_CONNECTIONS)
            self.assertFalse(task.done())  # nothing was handed out
            task.cancel()
            link = await self.phone(server, 2)  # the next phone is served
            self.assertEqual(link.conn, 2)
        run(go())

    def test_writes_before_ready_are_not_commands(self):
        async def go():
            server = await self.start()
            task = asyncio.create_task(server.accept())
            self.hub.connect(C1)
            await self.hub.expect(ADVERTISE)
            self.hub.att(C1, struct.pack("<BH", 0x12, WR) + b"\x00\x02\x90\x00")
            self.assertEqual(await self.hub.expect_att(C1), b"\x13")
            self.assertFalse(task.done())
            self.hub.att(C1, struct.pack("<BH", 0x12, WR) + b"\x00\x00")
            await self.hub.expect_att(C1)
            link = await task
            self.assertEqual((link.ready, link.stray_writes), (True, 1))
        run(go())


class TestSlotReservation(BleCase):
    def test_slot_of_a_held_link_is_not_reused(self):
        async def go():
            server = await self.start(max_connections=1)
            link = await self.phone(server, 1)
            self.hub.disconnect(1)  # walked away; the transaction still holds the link
            await until(lambda: not link.connected)
            self.hub.connect(2)  # the controller had room: the car must not hand it this slot
            self.assertEqual(bytes(await self.hub.expect(DISCONNECT)), bytes((DISCONNECT,)) + struct.pack(">HB", 2, 0x13))
            self.assertEqual(server.refused, 1)
            with self.assertRaises(LinkError):
                await link.transceive(b"\x80\x3c\x00\x00", 100)  # the old transaction's late command
            task = asyncio.create_task(server.accept())
            await link.close()
            await self.hub.expect(ADVERTISE)  # now the slot is offered again
            task.cancel()
        run(go())


class _FailingReader:
    async def transact(self, link, credentials, fast=None, **kw):
        raise AuthenticationFailed("device signature does not verify")


class TestAuthenticationFailure(BleCase):
    def test_authentication_failure_drops_the_phone(self):
        async def go():
            server = await self.start()
            link = await self.phone(server)
            with self.assertRaises(AuthenticationFailed):
                await ble_gatt.transact(_FailingReader(), link, None)
            self.assertEqual(bytes(await self.hub.expect(DISCONNECT)), bytes((DISCONNECT,)) + struct.pack(">HB", C1, 0x13))
            self.assertFalse(link.connected)
        run(go())

    def test_stop_stops_advertising_and_disconnects(self):
        async def go():
            server = await self.start()
            await self.phone(server)
            server.stop()
            await self.hub.expect(ADV_STOP)
            await self.hub.expect(DISCONNECT)
        run(go())


class TestStandInRobustness(BleCase):
    def test_handler_exception_printed_and_events_go_on(self):
        async def go():
            self.ble.active(True)
            self.hub.accept()
            seen = []

            def handler(event, data):
                seen.append(event)
                if len(seen) == 1:
                    raise ValueError("bug in a handler")

            self.ble.irq(handler)
            await self.hub.expect(HELLO)
            self.hub.connect(1)
            self.hub.connect(2)
            await until(lambda: len(seen) == 2)
            self.assertEqual(seen, [1, 1])
        run(go())

    def test_malformed_air_message_changes_nothing(self):
        async def go():
            self.ble.active(True)
            self.hub.accept()
            await self.hub.expect(HELLO)
            self.hub.send(0x81, b"\x00")  # CONNECTED cut short
            self.hub.connect(3)
            await until(lambda: 3 in self.ble._conns)
            self.assertEqual((self.ble.bad_messages, list(self.ble._conns)), (1, [3]))
        run(go())


class TestScan(BleCase):
    # The observer role: RSSI of advertisers (a phone's beacon) for the proximity hint.

    def test_scan_reports_rssi_then_done(self):
        async def go():
            self.ble.active(True)
            self.hub.accept()
            events = []
            self.ble.irq(lambda e, d: events.append((e, tuple(bytes(x) if isinstance(x, memoryview) else x for x in d))))
            await self.hub.expect(HELLO)
            self.ble.gap_scan(250, 100000, 50000, True)
            self.assertEqual(bytes(await self.hub.expect(0x04)), b"\x04")
            phone = b"\x5e\xed\x00\x00\x00\x42"
            self.hub.send(0x84, b"\x01" + phone + b"\xc3\x00\x03\x02\x01\x06\x03\x03\xaa\xfe")
            self.hub.send(0x85)
            rounds = 1
            while not any(e == 6 for e, _ in events):
                msg = await self.hub.recv(20)
                if msg is not None and msg[0] == 0x04:
                    rounds += 1
                    self.hub.send(0x85)  # nobody else advertising
            self.assertEqual(events[0], (5, (1, phone, 3, -61, b"\x02\x01\x06")))
            self.assertEqual(events[1], (5, (1, phone, 4, -61, b"\x03\x03\xaa\xfe")))  # active scan: the response too
            self.assertEqual(events[2:], [(6, ())])
            self.assertIn(rounds, (2, 3, 4))  # one round per 100 ms interval over 250 ms
        run(go())

    def test_scan_stopped_reports_done(self):
        async def go():
            self.ble.active(True)
            self.hub.accept()
            events = []
            self.ble.irq(lambda e, d: events.append(e))
            await self.hub.expect(HELLO)
            self.ble.gap_scan(0)
            await self.hub.expect(0x04)
            self.ble.gap_scan(None)
            await until(lambda: events)
            self.assertEqual(events, [6])
        run(go())

    def test_scan_arguments_checked(self):
        self.ble.active(True)
        self.hub.accept()
        with self.assertRaises(OSError) as cm:
            self.ble.gap_scan(100, 10000, 20000)  # window longer than interval
        self.assertEqual(cm.exception.errno, errno.EINVAL)


class TestProximityWatch(BleCase):
    def test_only_the_watched_phone_feeds_proximity(self):
        from carkey.ecu.proximity import PassiveEntry, Proximity
        from carkey.hw.ble_watch import ProximityWatch

        server = ble_gatt.BleServer(NAME)
        watch = ProximityWatch(server, PassiveEntry(Proximity(weight=1), enabled=True))
        self.assertIs(server.scan_listener, watch)
        phone, other = b"\x01\x02\x03\x04\x05\xc6", b"\x0a\x0b\x0c\x0d\x0e\xcf"
        server._irq(5, (1, memoryview(phone), 3, -40, memoryview(b"")))  # not watched yet
        self.assertFalse(watch._fresh)
        watch.watch(phone)
        server._irq(5, (1, memoryview(other), 3, -30, memoryview(b"")))
        self.assertFalse(watch._fresh)
        server._irq(5, (1, memoryview(phone), 3, -42, memoryview(b"")))
        self.assertEqual((watch._fresh, watch._rssi), (True, -42))
