# carkey — runs firmware test modules inside MicroPython and reports each test.
# SPDX-License-Identifier: MIT
#
# Usage: micropython tests/mpy/mpy_runner.py [--list|--json] tests/firmware/test_x.py [Class.method ...]
# With --json every result is one JSON line on stdout (read by tests/conftest.py).
# tests/conftest.py runs it as `micropython -m mpy_runner` from the repository root with
# relative MICROPYPATH entries, so nothing it keeps on the heap depends on the checkout path.
# A module that raises unittest.SkipTest at import is listed as one "#skip REASON" line.

import gc
import io
import json
import sys

import unittest


def test_ids(module):
    ids = []
    for name in sorted(dir(module)):
        cls = getattr(module, name)
        if not isinstance(cls, type) or cls is unittest.TestCase:
            continue
        if not issubclass(cls, unittest.TestCase):
            continue
        for attr in sorted(dir(cls)):
            if attr.startswith("test") and callable(getattr(cls, attr)):
                ids.append(name + "." + attr)
    return ids


def _traceback(exc):
    buf = io.StringIO()
    sys.print_exception(exc, buf)
    return buf.getvalue()


def _run_one(cls, method):
    case = cls()
    try:
        case.setUp()
    except unittest.SkipTest as e:
        return "skipped", str(e), ""
    except Exception as e:
        return "error", "setUp: " + repr(e), _traceback(e)
    outcome = ("passed", "", "")
    try:
        getattr(case, method)()
    except unittest.SkipTest as e:
        outcome = ("skipped", str(e), "")
    except AssertionError as e:
        outcome = ("failed", str(e), _traceback(e))
    except Exception as e:
        outcome = ("error", repr(e), _traceback(e))
    try:
        case.tearDown()
    except Exception as e:
        if outcome[0] == "passed":
            outcome = ("error", "tearDown: " + repr(e), _traceback(e))
    return outcome


def run_module(module, selected, report):
    failures = 0
    by_class = {}
    for test_id in test_ids(module):
        if selected is None or test_id in selected:
            cls_name, method = test_id.split(".")
            by_class.setdefault(cls_name, []).append(method)
    for cls_name in sorted(by_class):
        cls = getattr(module, cls_name)
        methods = by_class[cls_name]
        try:
            cls.setUpClass()
        except Exception as e:
            for method in methods:
                report(cls_name + "." + method, "error", "setUpClass: " + repr(e), _traceback(e))
                failures += 1
            continue
        for method in methods:
            outcome, message, tb = _run_one(cls, method)
            if outcome in ("failed", "error"):
                failures += 1
            report(cls_name + "." + method, outcome, message, tb)
            gc.collect()
        try:
            cls.tearDownClass()
        except Exception as e:
            report(cls_name + ".tearDownClass", "error", repr(e), _traceback(e))
            failures += 1
    return failures


def print_plain(test_id, outcome, message, tb):
    print("%-60s %s" % (test_id, outcome.upper()))
    if tb:
        print(tb)
    elif message and outcome != "passed":
        print("   ", message)


def print_json(test_id, outcome, message, tb):
    print(json.dumps({"id": test_id, "outcome": outcome, "message": message, "traceback": tb}))


def _load(path):
    # Import by module name from the file's directory so tracebacks name the real file.
    slash = path.rfind("/")
    directory, filename = (path[:slash], path[slash + 1 :]) if slash >= 0 else (".", path)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    return __import__(filename[:-3] if filename.endswith(".py") else filename)


def main(argv):
    mode = "plain"
    if argv and argv[0] in ("--list", "--json"):
        mode = argv.pop(0)[2:]
    if not argv:
        print("usage: mpy_runner.py [--list|--json] TEST_FILE [Class.method ...]")
        return 2
    try:
        module = _load(argv[0])
    except unittest.SkipTest as e:
        if mode == "json":
            for test_id in argv[1:]:
                print_json(test_id, "skipped", str(e), "")
        else:
            print("#skip " + str(e))
        return 0
    if mode == "list":
        for test_id in test_ids(module):
            print(test_id)
        return 0
    selected = set(argv[1:]) if len(argv) > 1 else None
    report = print_json if mode == "json" else print_plain
    failures = run_module(module, selected, report)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
