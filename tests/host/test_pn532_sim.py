"""The firmware PN532 driver (MicroPython, UART path) against the PN532 stand-in on a pty.

Each test opens a fresh `Pn532Sim`; the firmware side runs in one MicroPython process
through the bridge (tests/mpy/pn532_probe.py opens the pty with the virtual board's
PtyUART). Covers the firmware version, listing a target, APDUs, chaining of long APDUs
both ways, corrupted frames (NACK), a lost ACK, error frames, timeouts, removal
mid-transaction, hung-chip recovery, the ECP frame, the poll loop, and the virtual
board's PtyUART itself (pieces, timeout, write).

Run: .venv/bin/pytest -q tests/host/test_pn532_sim.py
"""

import os
import threading
import tty

import pytest

from carkey_host import paths
from carkey_host.runner import Firmware, MicroPythonError, environment
from carkey_host.pn532_sim import LOG_LIMIT, Pn532Sim

MPY_SUPPORT = paths.REPO_ROOT / "tests" / "mpy"
SELECT = bytes.fromhex("00A4040009A000000909ACCE550100")
ECP = bytes.fromhex("6a02cb0206000000") + bytes(range(1, 9))


class EchoCard:
    """A target that answers each C-APDU with its bytes reversed and 9000."""

    uid = bytes.fromhex("08a1b2c3")
    atqa = bytes.fromhex("0004")
    sak = 0x20
    ats = bytes.fromhex("0578807002")
    requires_ecp = False

    def __init__(self, answer_len=None):
        self.seen = []
        self.answer_len = answer_len

    def process(self, capdu):
        self.seen.append(capdu)
        if self.answer_len is not None:
            return bytes(i & 0xFF for i in range(self.answer_len)) + b"\x90\x00"
        return capdu[::-1] + b"\x90\x00"


@pytest.fixture(scope="module")
def mp():
    with Firmware(env=environment(extra_paths=[MPY_SUPPORT, paths.REPO_ROOT / "boards"])) as bridge:
        yield bridge


@pytest.fixture
def sim(mp):
    s = Pn532Sim()
    mp.call("pn532_probe", "attach", s.path)
    yield s
    mp.call("pn532_probe", "close")
    s.close()


def probe(mp, fn, *args):
    return mp.call("pn532_probe", fn, *args)


def started(mp, sim, target=None):
    probe(mp, "begin")
    if target is not None:
        sim.place(target)
        assert probe(mp, "list_target") is not None
    return target


# --- setup and targets ---------------------------------------------------------------


def test_firmware_version_after_wake_up(mp, sim):
    assert probe(mp, "begin") == [0x32, 0x01, 0x06, 0x07]
    assert sim.wakeups == 1
    assert list(sim.commands) == [
        (0x14, bytes.fromhex("011401")),
        (0x02, b""),
        (0x32, bytes.fromhex("05ff0101")),
        (0x32, bytes.fromhex("02000b07")),
    ]


def test_asleep_chip_ignores_frames_without_wake_up(mp, sim):
    with pytest.raises(MicroPythonError) as e:
        probe(mp, "call", 0x02, b"")
    assert e.value.type == "Pn532Timeout"
    assert list(sim.commands) == []


def test_empty_field(mp, sim):
    started(mp, sim)
    assert probe(mp, "list_target") is None
    assert sim.empty_polls == 1


def test_list_target(mp, sim):
    started(mp, sim)
    sim.place(EchoCard())
    t = probe(mp, "list_target")
    assert t == {"tg": 1, "atqa": bytes.fromhex("0004"), "sak": 0x20, "uid": bytes.fromhex("08a1b2c3"),
                 "ats": bytes.fromhex("0578807002"), "iso_dep": True}


# --- APDUs -------------------------------------------------------------------------


def test_apdu_round_trip(mp, sim):
    card = started(mp, sim, EchoCard())
    assert probe(mp, "transceive", SELECT) == SELECT[::-1] + b"\x90\x00"
    assert card.seen == [SELECT]
    assert list(sim.apdus) == [(SELECT, SELECT[::-1] + b"\x90\x00")]


def test_longest_apdus_use_extended_frames(mp, sim):
    card = started(mp, sim, EchoCard(answer_len=256))
    capdu = bytes.fromhex("80c90000ff") + bytes(range(255)) + b"\x00"  # 261 bytes
    assert probe(mp, "transceive", capdu) == bytes(range(256)) + b"\x90\x00"
    assert card.seen == [capdu]


def test_host_side_chaining_both_ways(mp, sim):
    card = started(mp, sim, EchoCard(answer_len=598))
    data = bytes(i & 0xFF for i in range(600))
    answer = probe(mp, "exchange_raw", data)
    assert answer == bytes(i & 0xFF for i in range(598)) + b"\x90\x00"
    assert card.seen == [data]
    exchanges = [p for c, p in sim.commands if c == 0x40]
    assert [p[0] for p in exchanges] == [0x41, 0x41, 0x01, 0x01, 0x01]  # MI, MI, last, fetch, fetch
    assert [len(p) - 1 for p in exchanges] == [262, 262, 76, 0, 0]


# --- faults --------------------------------------------------------------------------


def test_corrupted_answer_is_nacked_and_resent(mp, sim):
    started(mp, sim, EchoCard())
    sim.corrupt_next_answer()
    assert probe(mp, "transceive", SELECT) == SELECT[::-1] + b"\x90\x00"
    assert sim.nacks == 1
    assert len(sim.apdus) == 1  # the APDU reached the card once


def test_answer_corrupted_every_time_fails_the_link(mp, sim):
    started(mp, sim, EchoCard())
    sim.corrupt_next_answer(times=3)
    with pytest.raises(MicroPythonError) as e:
        probe(mp, "transceive", SELECT)
    assert e.value.type == "LinkError"
    assert "bad data checksum" in e.value.message
    assert sim.nacks == 2


def test_lost_ack(mp, sim):
    started(mp, sim, EchoCard())
    sim.drop_next_ack()
    assert probe(mp, "transceive", SELECT) == SELECT[::-1] + b"\x90\x00"


def test_error_frame(mp, sim):
    started(mp, sim)
    sim.send_error_frame_next()
    with pytest.raises(MicroPythonError) as e:
        probe(mp, "call", 0x02, b"")
    assert (e.value.type, e.value.message) == ("Pn532Error", "PN532 reported a syntax error")


def test_late_answer_times_out_and_the_command_is_aborted(mp, sim):
    started(mp, sim, EchoCard())
    sim.delay_next_answer(2.0)
    with pytest.raises(MicroPythonError) as e:
        probe(mp, "transceive", SELECT, 100)
    assert e.value.type == "LinkTimeout"
    sim.wait_for(lambda s: s.aborts == 1)
    # The aborted answer never arrives; the chip serves the next command.
    assert probe(mp, "list_target")["uid"] == EchoCard.uid
    assert probe(mp, "transceive", b"\x00\xb0\x00\x00\x02") == b"\x02\x00\x00\xb0\x00\x90\x00"


def test_removal_mid_transaction(mp, sim):
    started(mp, sim, EchoCard())
    sim.remove_after(1)
    assert probe(mp, "transceive", SELECT) == SELECT[::-1] + b"\x90\x00"
    with pytest.raises(MicroPythonError) as e:
        probe(mp, "transceive", b"\x80\x80\x00\x00\x01\x00\x00")
    assert e.value.type == "LinkError"
    assert e.value.message == "target lost (status 01)"
    # The link stays failed; the field is empty now.
    with pytest.raises(MicroPythonError):
        probe(mp, "transceive", SELECT)
    assert probe(mp, "list_target") is None


def test_hung_chip_recovers(mp, sim):
    started(mp, sim)
    sim.hang()
    with pytest.raises(MicroPythonError) as e:
        probe(mp, "list_target")
    assert (e.value.type, e.value.message) == ("Pn532Timeout", "no ACK for command 4A")
    assert probe(mp, "recover") == [0x32, 0x01, 0x06, 0x07]
    assert sim.wakeups == 2
    sim.place(EchoCard())
    assert probe(mp, "list_target")["uid"] == EchoCard.uid


# --- ECP and polling -----------------------------------------------------------------


def test_express_target_answers_only_after_ecp(mp, sim):
    started(mp, sim)
    card = EchoCard()
    card.requires_ecp = True
    sim.place(card)
    assert probe(mp, "list_target") is None
    probe(mp, "send_ecp", ECP)
    assert list(sim.ecp_frames) == [ECP]
    assert sim.commands[-2] == (0x08, bytes.fromhex("630280630380"))  # CRC_A on for the raw frame
    assert probe(mp, "list_target")["uid"] == EchoCard.uid


def test_poll_loop_serves_one_tap_per_presentation(mp, sim):
    card = EchoCard()
    card.requires_ecp = True
    sim.place(card)

    def present_again():
        sim.wait_for(lambda s: len(s.apdus) == 1)
        sim.wait_for(lambda s: sum(1 for c, _ in s.commands if c == 0x4A) >= 4)  # still there: ignored
        sim.remove()
        polls = sim.empty_polls
        sim.wait_for(lambda s: s.empty_polls > polls)
        sim.place(card)

    helper = threading.Thread(target=present_again)
    helper.start()
    result = probe(mp, "poll", 2, SELECT, ECP)
    helper.join(timeout=10)
    assert [s["rapdu"] for s in result["seen"]] == [SELECT[::-1] + b"\x90\x00"] * 2
    assert result["taps"] == 2 and result["errors"] == 0
    assert result["skipped"] >= 1
    assert card.seen == [SELECT, SELECT]
    assert all(f == ECP for f in sim.ecp_frames)



def _frame(payload):
    n = len(payload)
    return bytes([0, 0, 0xFF, n, (-n) & 0xFF]) + payload + bytes([(-sum(payload)) & 0xFF, 0])


def test_records_keep_the_newest_entries_on_a_long_run():
    # `carkey nfc-sim` serves a polling board for hours: its records must not grow forever.
    n = LOG_LIMIT + 100
    with Pn532Sim(awake=True) as sim:
        fd = os.open(sim.path, os.O_RDWR | os.O_NOCTTY)
        try:
            for i in range(n):  # GetFirmwareVersion, numbered by two extra parameter bytes
                os.write(fd, _frame(bytes([0xD4, 0x02, i & 0xFF, i >> 8])))
            last = (0x02, bytes([(n - 1) & 0xFF, (n - 1) >> 8]))
            sim.wait_for(lambda s: len(s.commands) > 0 and s.commands[-1] == last)
            assert len(sim.commands) == LOG_LIMIT
            assert sim.commands[0] == (0x02, bytes([100, 0]))  # the oldest kept: the first 100 went
        finally:
            os.close(fd)

# --- the virtual board's UART ---------------------------------------------------------


@pytest.fixture
def pty(mp):
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    mp.call("pn532_probe", "close")
    os.close(master)
    os.close(slave)


def test_pty_uart_returns_what_arrived(mp, pty):
    master, path = pty
    probe(mp, "uart_open", path)
    assert probe(mp, "uart", "any") == 0
    assert probe(mp, "uart", "readinto", 8) == [None, 0]
    os.write(master, b"\x00\x00\xff\x00\xff\x00abcdef")
    assert probe(mp, "uart", "any") == 1
    assert probe(mp, "uart", "readinto", 8)[0] == b"\x00\x00\xff\x00\xff\x00ab"  # at most the buffer
    assert probe(mp, "uart", "read", 16) == b"cdef"
    assert probe(mp, "uart", "read", 16) is None


def test_pty_uart_write_and_timeout(mp, pty):
    master, path = pty
    probe(mp, "uart_open", path, 115200, 40)
    data, waited_ms = probe(mp, "uart", "readinto", 4)
    assert data is None and 40 <= waited_ms < 1000  # waited for the first byte, then gave up
    assert probe(mp, "uart", "write", b"\x55\x55\x00") == 3
    assert os.read(master, 16) == b"\x55\x55\x00"


def test_pty_uart_refuses_an_unknown_baud_rate(mp, pty):
    with pytest.raises(MicroPythonError) as e:
        probe(mp, "uart_open", pty[1], 12345)
    assert (e.value.type, e.value.message) == ("ValueError", "unsupported baud rate 12345")
