"""NFC link time model: how long one transaction's APDUs take through a PN532 (docs/NFC.md §5).

The model adds, per APDU, the PN532 host-interface bytes (command frame, ACK, answer
frame), the ISO/IEC 14443 air time at 106 kbit/s (I-blocks with PCB and CRC_A, chaining
at FSC/FSD with R(ACK) blocks, frame delay times), the chip's own processing and the
driver's polling granularity; per tap it adds the ECP frame and the activation
(REQA, anticollision, SELECT, RATS/ATS) the poll loop needs before the first APDU.
The user device's own computing time is not part of the link (`device_ms` adds it).

    est = link_ms(FAST_TRANSCRIPT, "hsu")
    est.total_ms, est.breakdown        # {"host_interface": .., "rf": .., ...}
    tap_estimate_ms(reader_ms, FAST_TRANSCRIPT, "hsu")

STANDARD_TRANSCRIPT and FAST_TRANSCRIPT are (C-APDU length, R-APDU length) pairs recorded
from a real run (tests/host/test_pn532_e2e.py checks them against a fresh run).
"""

import math
from dataclasses import dataclass, field

FC_HZ = 13.56e6
ETU_S = 128 / FC_HZ  # one bit at 106 kbit/s: 9.44 us
RF_BITS_PER_BYTE = 9  # 8 data bits + odd parity
RF_FRAME_EXTRA_BITS = 2  # start of frame + end of frame
SHORT_FRAME_BITS = 9  # REQA/WUPA: SOF + 7 bits + EOF
FDT_PICC_S = 1172 / FC_HZ  # PCD frame end -> PICC answer (minimum, ISO/IEC 14443-3): 86.4 us
FDT_PCD_S = 6780 / FC_HZ  # PICC frame end -> next PCD frame (minimum): 500 us
CRC_A = 2
PCB = 1
R_BLOCK = PCB + CRC_A

# SELECT, AUTH0, AUTH1, EXCHANGE (carkey hello), EXCHANGE (result), CONTROL FLOW
STANDARD_TRANSCRIPT = [(15, 25), (135, 69), (75, 155), (32, 27), (35, 22), (11, 2)]
# SELECT, AUTH0 with cryptogram, EXCHANGE (hello), EXCHANGE (result), CONTROL FLOW
FAST_TRANSCRIPT = [(15, 25), (135, 135), (32, 27), (35, 22), (11, 2)]


@dataclass(frozen=True)
class Interface:
    """A PN532 host interface: seconds per byte on the wire and per-transaction costs."""

    name: str
    byte_s: float
    note: str


INTERFACES = {
    # HSU: 115200 baud, 8N1 = 10 bits a byte.
    "hsu": Interface("hsu", 10 / 115200, "UART 115200 8N1"),
    # I2C fast mode: 9 clocks a byte (8 + acknowledge); START, address and STOP cost
    # about one more byte per transaction.
    "i2c": Interface("i2c", 9 / 400e3, "I2C 400 kHz"),
    # SPI mode 0 at 5 MHz (the PN532's maximum): 8 clocks a byte; one prefix byte a transaction.
    "spi": Interface("spi", 8 / 5e6, "SPI 5 MHz"),
}

ACK_FRAME = 6


def make_interface(kind, rate):
    """An Interface for another speed: make_interface("spi", 1e6), make_interface("hsu", 921600)."""
    bits = {"hsu": 10, "i2c": 9, "spi": 8}
    if kind not in bits or rate <= 0:
        raise ValueError("interface kind is hsu, i2c or spi, with a positive rate")
    return Interface(kind, bits[kind] / rate, "%s at %g" % (kind, rate))


@dataclass
class Params:
    """Model parameters; the defaults are carkey's PN532 set-up (docs/NFC.md §5)."""

    fsc: int = 256  # the card's frame size (phone ATS FSCI 8)
    fsd: int = 64  # the reader's frame size (assumed: the PN532's RATS FSDI is not published)
    chip_ms: float = 1.0  # PN532 firmware time per command (assumed; no public figure)
    poll_ms: float = 1.0  # the driver looks at the bus every poll_ms: half of it lost per wait
    device_ms: float = 0.0  # the user device's compute per APDU (not the reader's link)
    i2c_peek: int = 24  # the driver's first I2C read (ready byte + 23)
    ecp_wait_ms: float = 6.4  # InCommunicateThru waits its retry timeout (RFConfiguration 02: 07)
    uid_len: int = 4
    ats_len: int = 5


def host_frame_bytes(payload):
    """Bytes of one PN532 frame around `payload` (TFI + command + data): normal or extended."""
    if payload < 1 or payload > 265:
        raise ValueError("PN532 frame payload is 1..265 bytes")
    return payload + (7 if payload <= 255 else 10)


def rf_frame_s(nbytes):
    """Air time of one standard ISO 14443-A frame of `nbytes` (CRC included)."""
    return (RF_FRAME_EXTRA_BITS + RF_BITS_PER_BYTE * nbytes) * ETU_S


def _blocks(n, frame_size):
    inf = frame_size - PCB - CRC_A
    count = max(1, math.ceil(n / inf))
    sizes = [inf] * (count - 1) + [n - inf * (count - 1)]
    return sizes


def rf_apdu_s(c, r, p):
    """Air time of one APDU exchange with ISO-DEP chaining both ways."""
    t = 0.0
    out = _blocks(c, p.fsc)
    for i, size in enumerate(out):
        t += rf_frame_s(PCB + size + CRC_A) + FDT_PICC_S
        if i < len(out) - 1:  # the card acknowledges each chained block
            t += rf_frame_s(R_BLOCK) + FDT_PCD_S
    back = _blocks(r, p.fsd)
    for i, size in enumerate(back):
        t += rf_frame_s(PCB + size + CRC_A)
        if i < len(back) - 1:  # the reader acknowledges each chained block
            t += FDT_PCD_S + rf_frame_s(R_BLOCK) + FDT_PICC_S
    return t


def activation_s(p=None):
    """Air time of REQA -> ATQA, ANTICOLLISION -> UID+BCC, SELECT -> SAK, RATS -> ATS (one cascade level)."""
    p = p or Params()
    uid_bcc = 5  # 4 UID bytes + BCC, or CT + 3 bytes + BCC on the first level of a longer UID
    return (
        SHORT_FRAME_BITS * ETU_S + FDT_PICC_S + rf_frame_s(2) + FDT_PCD_S  # REQA -> ATQA
        + rf_frame_s(2) + FDT_PICC_S + rf_frame_s(uid_bcc) + FDT_PCD_S  # ANTICOLLISION -> UID BCC
        + rf_frame_s(2 + 5 + CRC_A) + FDT_PICC_S + rf_frame_s(1 + CRC_A) + FDT_PCD_S  # SELECT -> SAK
        + rf_frame_s(2 + CRC_A) + FDT_PICC_S + rf_frame_s(p.ats_len + CRC_A)  # RATS -> ATS
    )


def host_command_s(cmd_payload, answer_payload, iface, p):
    """Host-interface time of one command: frame out, ACK back, answer back, as carkey's driver reads them."""
    out = host_frame_bytes(cmd_payload)
    back = host_frame_bytes(answer_payload)
    if iface.name == "hsu":
        nbytes = out + ACK_FRAME + back
    elif iface.name == "spi":
        # DW + frame; per answer an SR poll (2 bytes) and DR + frame, for the ACK and the answer.
        nbytes = 1 + out + (2 + 1 + ACK_FRAME) + (2 + 1 + back)
    elif iface.name == "i2c":
        # Write (address + frame); ACK: ready poll (address + 1) and a peek read; answer: ready
        # poll and a peek read, and when longer a NACK and a whole read.
        nbytes = (1 + out) + (2 + 1 + p.i2c_peek) + (2 + 1 + p.i2c_peek)
        if back + 1 > p.i2c_peek:
            nbytes += (1 + ACK_FRAME) + 2 + (1 + 1 + back)
    else:
        raise ValueError("unknown interface %r" % iface.name)
    return nbytes * iface.byte_s


@dataclass
class LinkEstimate:
    total_ms: float
    breakdown: dict = field(default_factory=dict)
    interface: str = "hsu"


def _exchange_payloads(c, r):
    # InDataExchange: D4 40 Tg + C-APDU; answer D5 41 Status + R-APDU (one frame each up to
    # 262 bytes of data; the transcripts here never need the driver's MI chaining).
    if c > 262 or r > 262:
        raise ValueError("APDU longer than one InDataExchange (262 bytes)")
    return 3 + c, 3 + r


def link_ms(transcript, interface="hsu", params=None, activation=True, ecp=True):
    """Estimated link time (ms) of one transaction: [(C-APDU length, R-APDU length), ...]."""
    p = params or Params()
    if isinstance(interface, Interface):
        iface = interface
    else:
        try:
            iface = INTERFACES[interface]
        except KeyError:
            raise ValueError("interface is one of %s" % ", ".join(sorted(INTERFACES))) from None
    host = rf = chip = polling = device = act = ecp_s = 0.0
    commands = 0
    for c, r in transcript:
        if c < 4 or r < 2:
            raise ValueError("a C-APDU has at least 4 bytes and an R-APDU at least 2")
        cmd, ans = _exchange_payloads(c, r)
        host += host_command_s(cmd, ans, iface, p)
        rf += rf_apdu_s(c, r, p)
        device += p.device_ms / 1000
        commands += 1
    if ecp:
        # WriteRegister (CRC on) and InCommunicateThru with the 16-byte ECP frame, unanswered.
        host += host_command_s(2 + 6, 2, iface, p) + host_command_s(2 + 16, 3, iface, p)
        ecp_s = rf_frame_s(16 + CRC_A) + p.ecp_wait_ms / 1000
        commands += 2
    if activation:
        # InListPassiveTarget: D4 4A 01 00 -> D5 4B NbTg Tg ATQA(2) SAK UIDlen UID ATS
        host += host_command_s(4, 2 + 1 + 1 + 2 + 1 + 1 + p.uid_len + p.ats_len, iface, p)
        act = activation_s(p)
        commands += 1
    chip = commands * p.chip_ms / 1000
    polling = commands * p.poll_ms / 1000  # two waits a command, half a period each
    parts = {
        "host_interface": host,
        "rf": rf,
        "activation_rf": act,
        "ecp": ecp_s,
        "chip": chip,
        "polling": polling,
        "device": device,
    }
    breakdown = {k: round(v * 1000, 3) for k, v in parts.items()}
    return LinkEstimate(round(sum(parts.values()) * 1000, 3), breakdown, iface.name)


def tap_estimate_ms(reader_ms, transcript, interface="hsu", params=None):
    """Tap-to-unlock estimate: the reader's compute (ESP32 estimate) plus the link time."""
    return round(reader_ms + link_ms(transcript, interface, params).total_ms, 3)


def bench_entries(reader_fast_ms, reader_std_ms, interface="hsu"):
    """The two `make bench` entries: nfc_fast_tap_est_ms and nfc_std_tap_est_ms, with breakdowns."""
    fast = link_ms(FAST_TRANSCRIPT, interface)
    std = link_ms(STANDARD_TRANSCRIPT, interface)
    return {
        "nfc_fast_tap_est_ms": {"esp32_est_ms": round(reader_fast_ms + fast.total_ms, 3), "reader_ms": reader_fast_ms,
                                "link_ms": fast.total_ms, "interface": interface, "breakdown": fast.breakdown},
        "nfc_std_tap_est_ms": {"esp32_est_ms": round(reader_std_ms + std.total_ms, 3), "reader_ms": reader_std_ms,
                               "link_ms": std.total_ms, "interface": interface, "breakdown": std.breakdown},
    }
