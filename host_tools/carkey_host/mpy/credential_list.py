# carkey — the credentials a test car or a recording reader knows: a list answering the Reader's lookups.
# SPDX-License-Identifier: MIT
#
# carkey.protocol.reader.Reader asks its credentials what the ECU's key store answers
# on a car (carkey.ecu.keystore); the BLE test car and the fob benchmark's recorder
# keep theirs in a list.

import hashlib


class Cred:
    # A credential the car knows: public key, cached Kpersistent (fast transactions).
    def __init__(self, pub, kpersistent=None):
        self.pub = pub
        self.kpersistent = kpersistent


class Credentials:
    def __init__(self, creds):
        self.creds = creds

    def lookup(self, pub):
        for c in self.creds:
            if c.pub == pub:
                return c
        return None

    def by_slot(self, slot):
        for c in self.creds:
            if hashlib.sha1(c.pub).digest()[:8] == slot:
                return c
        return None

    def table(self, cred):
        return None  # no precomputed verification tables: the reader computes

    def fast_candidates(self):
        for c in self.creds:
            if c.kpersistent is not None:
                yield c
