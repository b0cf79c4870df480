# carkey — a firmware-style test module that checks where the harness loaded every module from.
# SPDX-License-Identifier: MIT
#
# Run by tests/host/test_harness.py through the runner exactly as tests/conftest.py runs
# firmware tests. A module path that names the checkout's absolute location, or a module
# compiled from source on the heap, would make heap-bounded tests depend on that location.

import sys

import unittest


class TestWhereLoaded(unittest.TestCase):
    def test_search_path_is_relative(self):
        absolute = [p for p in sys.path if p.startswith("/")]
        self.assertEqual(absolute, [])

    def test_harness_modules_are_precompiled_and_relative(self):
        this = __name__
        wrong = []
        for name, module in sys.modules.items():
            where = getattr(module, "__file__", None)
            if where is None or name == this:
                continue  # built-in, or this file (run from source by the harness test)
            if where.startswith("/") or not where.endswith(".mpy"):
                wrong.append(name + ": " + where)
        self.assertEqual(wrong, [])
        self.assertIn("mpy_runner", sys.modules)
        self.assertIn("unittest", sys.modules)
