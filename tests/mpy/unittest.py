# carkey — the unittest subset firmware tests are written against (MicroPython side).
# SPDX-License-Identifier: MIT
#
# CPython runs the same test files with its own unittest; this module only exists
# on the MicroPython path (tests/mpy is on MICROPYPATH), so keep to the API both share.


class SkipTest(Exception):
    pass


def _short(value):
    text = repr(value)
    if len(text) > 400:
        text = text[:400] + "..."
    return text


class _RaisesContext:
    def __init__(self, expected):
        self.expected = expected
        self.exception = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, tb):
        if exc_type is None:
            raise AssertionError("%s not raised" % _name(self.expected))
        if not issubclass(exc_type, self.expected):
            return False
        self.exception = exc_value
        return True


def _name(expected):
    if isinstance(expected, tuple):
        return " or ".join(e.__name__ for e in expected)
    return expected.__name__


class TestCase:
    def setUp(self):
        pass

    def tearDown(self):
        pass

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def skipTest(self, reason):
        raise SkipTest(reason)

    def fail(self, msg=None):
        raise AssertionError(msg or "failed")

    # Messages are built only on failure: a repr of a long value costs heap that a
    # 64 KiB test cannot spare on every passing assertion.
    def _fail(self, default, msg):
        raise AssertionError(default if msg is None else "%s : %s" % (default, msg))

    def assertEqual(self, first, second, msg=None):
        if not first == second:
            self._fail("%s != %s" % (_short(first), _short(second)), msg)

    def assertNotEqual(self, first, second, msg=None):
        if not first != second:
            self._fail("%s == %s" % (_short(first), _short(second)), msg)

    def assertTrue(self, expr, msg=None):
        if not expr:
            self._fail("%s is not true" % _short(expr), msg)

    def assertFalse(self, expr, msg=None):
        if expr:
            self._fail("%s is not false" % _short(expr), msg)

    def assertIs(self, first, second, msg=None):
        if first is not second:
            self._fail("%s is not %s" % (_short(first), _short(second)), msg)

    def assertIsNone(self, obj, msg=None):
        if obj is not None:
            self._fail("%s is not None" % _short(obj), msg)

    def assertIsNotNone(self, obj, msg=None):
        if obj is None:
            self._fail("unexpectedly None", msg)

    def assertIn(self, member, container, msg=None):
        if member not in container:
            self._fail("%s not found in %s" % (_short(member), _short(container)), msg)

    def assertNotIn(self, member, container, msg=None):
        if member in container:
            self._fail("%s unexpectedly in %s" % (_short(member), _short(container)), msg)

    def assertIsInstance(self, obj, cls, msg=None):
        if not isinstance(obj, cls):
            self._fail("%s is not an instance of %s" % (_short(obj), cls), msg)

    def assertLess(self, a, b, msg=None):
        if not a < b:
            self._fail("%s not less than %s" % (_short(a), _short(b)), msg)

    def assertLessEqual(self, a, b, msg=None):
        if not a <= b:
            self._fail("%s not less than or equal to %s" % (_short(a), _short(b)), msg)

    def assertGreater(self, a, b, msg=None):
        if not a > b:
            self._fail("%s not greater than %s" % (_short(a), _short(b)), msg)

    def assertGreaterEqual(self, a, b, msg=None):
        if not a >= b:
            self._fail("%s not greater than or equal to %s" % (_short(a), _short(b)), msg)

    def assertAlmostEqual(self, a, b, places=7, msg=None):
        if round(abs(a - b), places) != 0:
            self._fail("%s != %s within %d places" % (a, b, places), msg)

    def assertRaises(self, expected, func=None, *args, **kwargs):
        ctx = _RaisesContext(expected)
        if func is None:
            return ctx
        with ctx:
            func(*args, **kwargs)
        return None


def skip(reason):
    def decorator(func):
        def skipped(*args, **kwargs):
            raise SkipTest(reason)

        return skipped

    return decorator


def skipIf(condition, reason):
    if condition:
        return skip(reason)
    return lambda func: func


def skipUnless(condition, reason):
    return skipIf(not condition, reason)


def main():
    # Direct runs (`micropython tests/firmware/test_x.py`) print a plain summary;
    # pytest goes through tests/mpy/mpy_runner.py instead. MicroPython keeps no
    # __main__ in sys.modules, so the script is imported again under its own name.
    import sys
    import mpy_runner

    sys.exit(mpy_runner.main([sys.argv[0]]))
