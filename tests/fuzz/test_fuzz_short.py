"""The short fuzz campaign inside `make test`: every surface, a few hundred cases, corpus replayed.

The long campaign is `make fuzz` (tests/fuzz/run.py, 100,000 cases per surface).
Each surface must hold its properties (no violations) and must still reach the
outcome classes that show the harness drives the firmware where it should: a
harness that stopped reaching the reader's later steps, the signature check or
the boot would pass silently otherwise.

Run: .venv/bin/pytest -q tests/fuzz/test_fuzz_short.py
"""

import importlib.util
import re
from pathlib import Path

import pytest

# The runner is a script, not a package module: load it under a name of its own.
_spec = importlib.util.spec_from_file_location("carkey_fuzz_run", Path(__file__).with_name("run.py"))
_runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_runner)
run_batch = _runner.run_batch

SHORT = {"apdu": 400, "ble": 800, "pn532": 1000, "documents": 800, "state": 300, "usb": 600}


def _reached(outcomes, pattern):
    return sum(n for key, n in outcomes.items() if re.search(pattern, key))


@pytest.fixture(scope="module")
def results():
    return {}


def short(surface, results):
    summary, _ = run_batch(surface, SHORT[surface], seed=20260101)
    results[surface] = summary
    assert summary["violations"] == 0, summary["examples"]
    assert summary["cases"] >= SHORT[surface]
    return summary["outcomes"]


def test_apdu(results):
    out = short("apdu", results)
    assert _reached(out, r"^owner-std\|.*\|standard\|granted")  # a whole standard tap with damage that does not matter
    assert _reached(out, r"^owner-fast\|.*\|fast\|granted")
    assert _reached(out, r"\|err80$")  # authentication failed (AUTH1 or EXCHANGE answer)
    assert _reached(out, r"\|err81$")  # protocol error
    assert _reached(out, r"\|err82$")  # link lost
    assert _reached(out, r"^stranger-share\|.*\|0b")  # the stranger's document judged and refused
    assert _reached(out, r"^owner-multi\|step8\|standard\|granted\|00,00,00,00")  # four commands in one tap


def test_ble(results):
    out = short("ble", results)
    assert _reached(out, r"^clean\|mtu23\|ok\|answer")
    assert _reached(out, r"\|past end\|frame")
    assert _reached(out, r"\|length\|frame")
    assert _reached(out, r"\|stall\|timeout")
    assert _reached(out, r"\|indication\|link")


def test_pn532(results):
    out = short("pn532", results)
    for cmd in ("02", "40", "4a", "52"):
        assert _reached(out, rf"^{cmd}\|clean\|ok")
    assert _reached(out, r"\|FrameError")
    assert _reached(out, r"\|Pn532Timeout")
    assert _reached(out, r"^40\|payload\|other result")  # a valid frame with a damaged answer inside


def test_documents(results):
    out = short("documents", results)
    for tag in ("e2", "e3", "e4"):
        assert _reached(out, rf"^genuine\|{tag}\|.*\|0$")  # accepted
        assert _reached(out, rf"^damaged\|{tag}\|parsed:parse_\w+\|11$")  # parsed, signature refused
        assert _reached(out, rf"^damaged\|{tag}\|parsed:-\|AdminError:malformed")


def test_state(results):
    out = short("state", results)
    for record in ("identity", "keys", "lockout", "clock", "audit"):
        assert _reached(out, rf"^{record}\|"), record
    assert _reached(out, r"\|boot ok, 4 keys\|stranger refused")
    assert _reached(out, r"\|boot refused: StorageError")
    assert _reached(out, r"^keys\|A/B swapped\|boot ok")
    assert _reached(out, r"^keys\|re-sealed\|boot refused: KeyStoreError")  # the parser meets the damage


def test_usb(results):
    out = short("usb", results)
    for kind in ("share", "suspend", "resume", "list", "log", "clock"):
        assert _reached(out, rf"^genuine-{kind}\|"), kind  # a genuine owner request in the mix (served: no violation)
    assert _reached(out, r"^challenge\|challenge\|")
    assert _reached(out, r"^stale-maintenance\|r0b\|")  # signed by the owner for an ended session: refused
    assert _reached(out, r"^stranger-maintenance\|r0b\|")
    assert _reached(out, r"^(stranger-share|revoke-owner|unsigned-share)\|r0b\|")
    assert _reached(out, r"/doc\|E:AdminError: malformed document")  # damage reached the parser
    assert _reached(out, r"/doc\|r0b\|")  # ... and the signature check
    assert _reached(out, r"\|E:AdminError: (unknown console request|document is not hex)\|")
    assert _reached(out, r"^garbage\|-\|none$")  # REPL bytes, Python, oversized lines: no request, no answer
    assert out.get("(whole application runs)", 0) >= 2  # app.run in installed mode: reset, never the REPL
