# carkey — the application's USB console: owner requests answered while the car runs (PROTOCOL.md §9).
# SPDX-License-Identifier: MIT
#
# Run: .venv/bin/pytest -q tests/firmware/test_console.py

import io
import json
import unittest

from carkey.crypto import p256
from carkey.ecu import admin, console, documents
from scratch import remove_tree, scratch_dir

NOW = 1_750_000_000


def _parse(reply, token):
    head = console.MARK + token + " "
    assert reply.startswith(head) and reply.endswith("\r\n"), reply
    return json.loads(reply[len(head):])


def _answer(dir, line, now):
    out = io.StringIO()
    if not console.answer(dir, line, now, out):
        return None
    return out.getvalue()


class ConsoleTest(unittest.TestCase):
    def setUp(self):
        self.dir = scratch_dir()
        self.priv, self.pub = p256.generate_keypair()
        self.group = bytes.fromhex(admin.provision(self.dir, self.pub, NOW)["group_id"])

    def tearDown(self):
        remove_tree(self.dir)

    def request(self, challenge, number, op=0x03, arg=b""):
        body = documents.admin_body(self.group, number, op, arg, challenge)
        return documents.sign(documents.ADMIN_TAG, body, self.priv, self.pub)

    def test_session_over_the_console(self):
        first = _parse(_answer(self.dir, b"#carkey t1 challenge", NOW), "t1")
        self.assertTrue(first["ok"])
        challenge = bytes.fromhex(first["result"]["challenge"])
        self.assertEqual(first["result"]["group_id"], self.group.hex())
        line = b"#carkey t2 submit " + self.request(challenge, 1).hex().encode()
        self.assertFalse(console.changes_keys(line))
        out = _parse(_answer(self.dir, line, NOW), "t2")
        self.assertEqual((out["ok"], out["result"]["result"], len(out["result"]["keys"])), (True, 0, 1))
        again = _parse(_answer(self.dir, line.replace(b"t2", b"t3"), NOW), "t3")
        self.assertEqual(again["result"]["result"], 0x0E)  # the same request never runs twice

    def test_strangers_ring_is_exported_to_the_owner(self):
        from carkey.ecu.auditlog import StrangerLog

        log = StrangerLog(self.dir)
        for i in range(20):  # 20 intervals, one reason each: more than one page
            log.note(NOW + 600 * i, 2, 0, 0, 0x80)
        log.note(NOW + 600 * 20, 1, 0, 0, 0x81)
        log.flush()
        challenge = bytes.fromhex(_parse(_answer(self.dir, b"#carkey t challenge", NOW), "t")["result"]["challenge"])
        line = b"#carkey t submit " + self.request(challenge, 1, 0x05, bytes(4)).hex().encode()
        first = _parse(_answer(self.dir, line, NOW), "t")["result"]
        self.assertEqual((first["result"], len(first["records"]), first["more"]), (0, 16, True))
        self.assertEqual((first["records"][0]["result"], first["records"][0]["count"]), (0x80, 1))
        line = b"#carkey t submit " + self.request(challenge, 2, 0x05, first["records"][-1]["seq"].to_bytes(4, "big")).hex().encode()
        rest = _parse(_answer(self.dir, line, NOW), "t")["result"]
        self.assertEqual((len(rest["records"]), rest["more"], rest["records"][-1]["result"]), (5, False, 0x81))

    def test_other_lines_are_not_answered(self):
        for line in (b"print(1)", b"#carkey", b"# carkey t challenge", b"#carkey " + b"x" * 17 + b" challenge"):
            self.assertIsNone(_answer(self.dir, line, NOW))

    def test_a_token_that_is_not_utf8_is_not_a_request(self):
        # Found by the usb fuzz surface: the token's decode raised UnicodeError out of
        # answer(), which killed the console task (the supervisor restarts it; five in a
        # minute and the watchdog resets the car).
        for line in (b"#carkey \xc3 challenge", b"#carkey t\xff submit e400", b"#carkey \x80\x80"):
            self.assertIsNone(_answer(self.dir, line, NOW))
        self.assertTrue(_parse(_answer(self.dir, b"#carkey ok challenge", NOW), "ok")["ok"])

    def test_bad_requests_get_an_error_answer(self):
        out = _parse(_answer(self.dir, b"#carkey t bogus", NOW), "t")
        self.assertEqual((out["ok"], out["error"]), (False, "AdminError: unknown console request"))
        out = _parse(_answer(self.dir, b"#carkey t submit zz", NOW), "t")
        self.assertEqual((out["ok"], out["error"]), (False, "AdminError: document is not hex"))
        out = _parse(_answer(self.dir, b"#carkey t submit e400", NOW), "t")
        self.assertFalse(out["ok"])
        self.assertTrue(out["error"].startswith("AdminError: malformed document"))

    def test_changes_keys(self):
        self.assertTrue(console.changes_keys(b"#carkey t submit e281fd00"))
        self.assertTrue(console.changes_keys(b"#carkey t submit e381ad00"))
        self.assertFalse(console.changes_keys(b"#carkey t submit e4"))
        self.assertFalse(console.changes_keys(b"#carkey t challenge"))


if __name__ == "__main__":
    unittest.main()
