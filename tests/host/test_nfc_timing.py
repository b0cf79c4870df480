"""NFC timing model (carkey_host.nfc_timing) against hand-computed cases.

Air time counts 128/13.56 MHz per bit, 9 bits a byte, 2 bits of SOF/EOF per frame;
FDT 1172/fc after a reader frame, 6780/fc after a card frame. HSU 10 bits a byte at
115200, I2C 9 clocks a byte at 400 kHz.

Run: .venv/bin/pytest -q tests/host/test_nfc_timing.py
"""

import pytest

from carkey_host import nfc_timing as nt

FC = 13.56e6
NO_OVERHEAD = nt.Params(chip_ms=0, poll_ms=0)


def test_host_frame_sizes():
    assert nt.host_frame_bytes(2) == 9  # 00 00 FF LEN LCS D4 02 DCS 00
    assert nt.host_frame_bytes(255) == 262
    assert nt.host_frame_bytes(256) == 266  # extended: 00 00 FF FF FF LENM LENL LCS .. DCS 00
    with pytest.raises(ValueError):
        nt.host_frame_bytes(0)
    with pytest.raises(ValueError):
        nt.host_frame_bytes(266)


def test_one_short_apdu_over_hsu():
    est = nt.link_ms([(15, 25)], "hsu", NO_OVERHEAD, activation=False, ecp=False)
    host_ms = (25 + 6 + 35) * 10 / 115200 * 1000  # command frame, ACK, answer frame
    rf_ms = ((2 + 9 * 18) + (2 + 9 * 28)) * 128 / FC * 1000 + 1172 / FC * 1000
    assert est.breakdown["host_interface"] == pytest.approx(host_ms, abs=1e-3)
    assert est.breakdown["rf"] == pytest.approx(rf_ms, abs=1e-3)
    assert est.total_ms == pytest.approx(9.7613, abs=1e-3)


def test_answer_longer_than_fsd_is_chained_with_an_r_ack():
    # 100 bytes back with FSD 64: I-blocks of 61 and 39 bytes of INF, one R(ACK) between.
    bits = (2 + 9 * 14) + (2 + 9 * 64) + (2 + 9 * 3) + (2 + 9 * 42)
    clocks = bits * 128 + 2 * 1172 + 6780
    assert nt.rf_apdu_s(11, 100, nt.Params()) * 1000 == pytest.approx(clocks / FC * 1000, rel=1e-9)
    # With FSD 256 the same answer is one block.
    one = ((2 + 9 * 14) + (2 + 9 * 103)) * 128 + 1172
    assert nt.rf_apdu_s(11, 100, nt.Params(fsd=256)) * 1000 == pytest.approx(one / FC * 1000, rel=1e-9)


def test_command_longer_than_fsc_is_chained():
    # 300 bytes out with FSC 256: 253 + 47 bytes of INF; the card sends an R(ACK) between.
    bits = (2 + 9 * 256) + (2 + 9 * 3) + (2 + 9 * 50) + (2 + 9 * 5)
    clocks = bits * 128 + 2 * 1172 + 6780
    assert nt.rf_apdu_s(300, 2, nt.Params()) == pytest.approx(clocks / FC, rel=1e-9)


def test_i2c_reads_as_the_driver_does():
    i2c = nt.INTERFACES["i2c"]
    p = nt.Params()
    # Short answer (GetFirmwareVersion): write 1+9, ACK poll 3 + peek 24, answer poll 3 + peek 24.
    assert nt.host_command_s(2, 6, i2c, p) == pytest.approx(64 * 9 / 400e3)
    # A 35-byte answer frame does not fit the peek: NACK (1+6), poll 2, whole read 1+1+35.
    assert nt.host_command_s(18, 28, i2c, p) == pytest.approx((1 + 25 + 54 + 7 + 2 + 37) * 9 / 400e3)


def test_activation_air_time():
    est = nt.link_ms([(4, 2)], "spi", activation=True, ecp=False)
    bits = 9 + (2 + 18) + (2 + 18) + (2 + 45) + (2 + 81) + (2 + 27) + (2 + 36) + (2 + 63)
    clocks = bits * 128 + 4 * 1172 + 3 * 6780
    assert est.breakdown["activation_rf"] == pytest.approx(clocks / FC * 1000, abs=1e-3)


def test_breakdown_adds_up_and_counts_commands():
    est = nt.link_ms(nt.FAST_TRANSCRIPT, "hsu")
    assert est.total_ms == pytest.approx(sum(est.breakdown.values()), abs=0.01)
    commands = len(nt.FAST_TRANSCRIPT) + 2 + 1  # APDUs, ECP (WriteRegister + InCommunicateThru), InListPassiveTarget
    assert est.breakdown["chip"] == pytest.approx(commands * 1.0)
    assert est.breakdown["polling"] == pytest.approx(commands * 1.0)
    assert est.breakdown["ecp"] == pytest.approx((2 + 9 * 18) * 128 / FC * 1000 + 6.4, abs=1e-3)


def test_faster_interfaces_are_faster():
    fast = {name: nt.link_ms(nt.FAST_TRANSCRIPT, name).total_ms for name in ("hsu", "i2c", "spi")}
    assert fast["spi"] < fast["i2c"] < fast["hsu"]
    assert nt.link_ms(nt.FAST_TRANSCRIPT, nt.make_interface("hsu", 921600)).total_ms < fast["i2c"]
    assert nt.link_ms(nt.STANDARD_TRANSCRIPT, "spi").total_ms > fast["spi"]


def test_tap_estimate_and_bench_entries():
    link = nt.link_ms(nt.FAST_TRANSCRIPT, "i2c").total_ms
    assert nt.tap_estimate_ms(12.5, nt.FAST_TRANSCRIPT, "i2c") == pytest.approx(12.5 + link)
    entries = nt.bench_entries(12.5, 900.0, "i2c")
    assert set(entries) == {"nfc_fast_tap_est_ms", "nfc_std_tap_est_ms"}
    assert entries["nfc_fast_tap_est_ms"]["esp32_est_ms"] == pytest.approx(12.5 + link)
    assert entries["nfc_std_tap_est_ms"]["reader_ms"] == 900.0


@pytest.mark.parametrize("transcript", [[(3, 2)], [(4, 1)], [(263, 2)], [(4, 263)]])
def test_bad_transcripts_refused(transcript):
    with pytest.raises(ValueError):
        nt.link_ms(transcript)


def test_unknown_interface_refused():
    with pytest.raises(ValueError, match="interface is one of hsu, i2c, spi"):
        nt.link_ms(nt.FAST_TRANSCRIPT, "usb")
    with pytest.raises(ValueError):
        nt.make_interface("usb", 1e6)
