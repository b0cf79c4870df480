# carkey — reader test fakes: a scripted APDU link and an in-memory credential lookup.
# SPDX-License-Identifier: MIT
#
# FakeLink([(expected_capdu or None, answer), ...]): transceive() compares the
# command with the next expectation (None accepts any) and returns the answer,
# or raises it when it is an exception instance. Past the end of the script it
# raises LinkError, as a device that went away would. Every command is recorded
# in .sent for assertions on what the reader did after an error (the newest
# LOG_LIMIT commands; .count has them all).

from carkey.protocol.errors import LinkError

# As fakelog.LIMIT (test_fake_logs checks they agree). Not imported from there: this
# file is also compiled alone, beside the firmware, for the host's end-to-end runs.
LOG_LIMIT = 32


class ScriptMismatch(AssertionError):
    pass


class FakeLink:
    def __init__(self, script):
        self.script = list(script)
        self.sent = []
        self.timeouts = []
        self.count = 0

    async def transceive(self, capdu, timeout_ms):
        capdu = bytes(capdu)
        self.count += 1
        self.sent.append(capdu)
        self.timeouts.append(timeout_ms)
        if len(self.sent) > LOG_LIMIT:
            self.sent.pop(0)
            self.timeouts.pop(0)
        if not self.script:
            raise LinkError("script exhausted")
        expected, answer = self.script.pop(0)
        if expected is not None and capdu != expected:
            raise ScriptMismatch("command %d: sent %s, expected %s" % (self.count, capdu.hex(), expected.hex()))
        if isinstance(answer, Exception):
            raise answer
        return bytes(answer)


class Cred:
    # A stored credential as the reader sees it: public key, cached Kpersistent,
    # optional verification table.
    def __init__(self, pub, kpersistent=None, table=None):
        self.pub = pub
        self.kpersistent = kpersistent
        self.table = table


class FakeCredentials:
    # The credential lookup the ECU passes to Reader.transact, over a list.
    def __init__(self, creds=()):
        self.creds = list(creds)

    def lookup(self, pub):
        for c in self.creds:
            if c.pub == pub:
                return c
        return None

    def by_slot(self, slot):
        import hashlib

        for c in self.creds:
            if hashlib.sha1(c.pub).digest()[:8] == slot:
                return c
        return None

    def table(self, cred):
        return cred.table

    def fast_candidates(self):
        for c in self.creds:
            if c.kpersistent is not None:
                yield c
