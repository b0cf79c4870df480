"""The firmware test harness reports skips and broken modules as pytest would, never as INTERNALERROR.

Each test writes a tiny firmware test file into a copy of the checkout and runs pytest there,
as a developer would: a method that skips, a module that skips at import and a module that
raises at import must come out as a skip (with its reason and file) or a readable error.

Run: .venv/bin/pytest -q tests/host/test_harness_reports.py
"""

import textwrap

import pytest
from checkout_copy import copy_checkout, outcome_counts, run_pytest

FILES = {
    "test_gen_method_skip.py": """
        import unittest

        class TestRadio(unittest.TestCase):
            def test_runs(self):
                self.assertEqual(1 + 1, 2)

            def test_needs_radio(self):
                self.skipTest("no radio on this port")
    """,
    "test_gen_module_skip.py": """
        import unittest

        raise unittest.SkipTest("needs the esp32 module")

        class TestNever(unittest.TestCase):
            def test_never(self):
                pass
    """,
    "test_gen_import_error.py": """
        import unittest

        import carkey_no_such_module

        class TestNever(unittest.TestCase):
            def test_never(self):
                pass
    """,
}


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    root = copy_checkout(tmp_path_factory.mktemp("reports") / "carkey")
    for name, text in FILES.items():
        (root / "tests" / "firmware" / name).write_text(textwrap.dedent(text).lstrip())
    return root


def test_a_skipping_method_is_a_skip_at_its_line(checkout):
    proc = run_pytest(checkout, "tests/firmware/test_gen_method_skip.py")
    out = proc.stdout + proc.stderr
    assert "INTERNALERROR" not in out, out
    assert proc.returncode == 0, out
    assert outcome_counts(proc.stdout) == {"passed": 1, "skipped": 1}, out
    # The skip names the file, the line of the method and the reason the test gave.
    assert "SKIPPED [1] tests/firmware/test_gen_method_skip.py:7: no radio on this port" in out, out


def test_a_module_that_skips_at_import_is_skipped(checkout):
    proc = run_pytest(checkout, "tests/firmware/test_gen_module_skip.py")
    out = proc.stdout + proc.stderr
    assert "INTERNALERROR" not in out, out
    assert proc.returncode == 5, out  # pytest: no test ran (the only file was skipped)
    assert outcome_counts(proc.stdout) == {"skipped": 1}, out
    assert "test_gen_module_skip.py: needs the esp32 module" in out, out


def test_a_module_that_raises_at_import_is_a_readable_error(checkout):
    proc = run_pytest(checkout, "tests/firmware/test_gen_import_error.py")
    out = proc.stdout + proc.stderr
    assert "INTERNALERROR" not in out, out
    assert proc.returncode == 2, out  # pytest: interrupted by a collection error
    assert outcome_counts(proc.stdout) == {"error": 1}, out
    assert "MicroPython could not import test_gen_import_error.py" in out, out
    assert "ImportError: no module named 'carkey_no_such_module'" in out, out
