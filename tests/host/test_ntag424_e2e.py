"""The firmware's card authentication (MicroPython, compiled .mpy, 96 KiB heap, no collection during a tap) against emulated cards.

A TCP server hands each connection to the next carkey_host.ntag424.EmulatedCard of a
list (lp framing, docs/PROTOCOL.md §2) and tests/mpy/card_client.py runs
`carkey.protocol.ntag424.authenticate_card` once per card in one MicroPython
process, printing one JSON line per tap. The taps run once per module; each test
checks one of them: a provisioned card, a clone presenting a copied UID, keys
copied onto another card, a wrong master key, a factory card, a replayed
transaction, and the heap and time a tap takes.

Run: .venv/bin/pytest -q tests/host/test_ntag424_e2e.py
"""

import json
import subprocess

import pytest

from carkey_host import ntag424 as n
from carkey_host import paths
from carkey_host.build import compile_firmware
from carkey_host import runner
from carkey_host.tcp_link import FramingError, LinkClosed, ThreadedServer

CLIENT = paths.REPO_ROOT / "tests" / "mpy" / "card_client.py"
MASTER = bytes.fromhex("8f1e2d3c4b5a69788796a5b4c3d2e1f0")
UID_A = bytes.fromhex("04112233445566")
UID_B = bytes.fromhex("04998877665544")


def provisioned(uid, master=MASTER, **options):
    card = n.EmulatedCard(uid, **options)
    n.provision(n.CardLink(card), master, card.real_uid)
    card.transcript.clear()
    return card


class CardServer(ThreadedServer):
    """Serves one emulated card per connection, in order; a new connection is a new activation."""

    def __init__(self, cards):
        self.cards = list(cards)
        super().__init__(self._one, "lp", count=len(self.cards))

    def _one(self, link, n):
        card = self.cards[n - 1]
        card.reset()
        while True:
            try:
                capdu = link.receive()
            except (LinkClosed, FramingError, OSError):
                break
            link.send(card.process(capdu))


def _recorded_transaction():
    # A genuine tap recorded off the air, to be played back without the key.
    card = provisioned(UID_A)
    n.verify_card(n.CardLink(card), MASTER, UID_A)
    return list(card.transcript)


# name -> (card, anticollision UID, master key the reader holds)
TAPS = {
    "genuine": lambda: (provisioned(UID_A), UID_A, MASTER),
    "genuine_b": lambda: (provisioned(UID_B), UID_B, MASTER),
    # Holds the key for A (extracted or relayed) but its authenticated UID is B.
    "clone": lambda: (_clone(), UID_A, MASTER),
    # Card A's keys written onto card B, which reports its own UID B.
    "copied_keys": lambda: (_copied_keys(), UID_B, MASTER),
    "wrong_master": lambda: (provisioned(UID_A), UID_A, bytes(16)),
    "factory": lambda: (n.EmulatedCard(UID_A), UID_A, MASTER),
    "replay": lambda: (n.EmulatedCard(UID_A, replay=_recorded_transaction()), UID_A, MASTER),
}


def _clone():
    card = n.EmulatedCard(UID_A, real_uid=UID_B)
    card.keys = list(provisioned(UID_A).keys)
    return card


def _copied_keys():
    card = n.EmulatedCard(UID_B)
    card.keys = list(provisioned(UID_A).keys)
    return card


@pytest.fixture(scope="module")
def taps(tmp_path_factory):
    build = tmp_path_factory.mktemp("mpy")
    compile_firmware(build)
    built = {name: make() for name, make in TAPS.items()}
    # One process per master key (the client holds one, as a reader does); the
    # server hands out the cards in the order those processes tap.
    runs = [(m, [name for name in TAPS if built[name][2] == m]) for m in (MASTER, bytes(16))]
    server = CardServer(built[name][0] for _, names in runs for name in names)
    results = {}
    try:
        for master, names in runs:
            spec = {"master_key": master.hex(), "uids": [built[name][1].hex() for name in names], "timeout_ms": 2000}
            proc = subprocess.run(
                runner.command(CLIENT, "127.0.0.1", server.port, heapsize="96k"),
                input=json.dumps(spec),
                capture_output=True,
                text=True,
                env=runner.environment(build),
                cwd=paths.REPO_ROOT,
                timeout=60,
            )
            lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
            assert proc.returncode == 0 and len(lines) == len(names), proc.stdout + proc.stderr
            results.update(zip(names, lines))
    finally:
        server.close()
    return results


def test_provisioned_card_returns_its_uid(taps):
    assert taps["genuine"] == {**taps["genuine"], "uid": UID_A.hex()}
    assert "error" not in taps["genuine"]


def test_each_card_has_its_own_key(taps):
    assert taps["genuine_b"]["uid"] == UID_B.hex()


def test_clone_with_copied_uid_refused(taps):
    assert taps["clone"]["error"] == "CardUidMismatch"
    assert UID_B.hex() in taps["clone"]["message"] and UID_A.hex() in taps["clone"]["message"]


def test_keys_copied_to_another_card_refused(taps):
    assert taps["copied_keys"]["error"] == "CardAuthError"
    assert "does not hold this key" in taps["copied_keys"]["message"]


def test_wrong_master_key_refused(taps):
    assert taps["wrong_master"]["error"] == "CardAuthError"


def test_factory_card_refused(taps):
    assert taps["factory"]["error"] == "CardAuthError"


def test_replayed_transaction_refused(taps):
    assert taps["replay"] == {**taps["replay"], "error": "CardAuthError", "message": "card did not return our challenge (RndA' mismatch)"}


def test_tap_fits_the_heap_and_time(taps):
    # Run with a 96 KiB heap and no collection during the tap; "allocated" is
    # everything the card code allocates (garbage included), the TCP stand-in for
    # the radio counted apart.
    tap = taps["genuine"]
    assert 0 < tap["allocated"] < 24 * 1024, tap
    assert tap["link_allocated"] > 0, tap
    assert tap["ms"] < 500, tap
