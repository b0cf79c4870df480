# carkey — fuzz surface "documents": owner documents and admin requests, damaged, through the USB entry and the parsers.
# SPDX-License-Identifier: MIT
#
# Seeds are genuine owner-signed share, revocation and admin documents (a fixed
# owner key, RFC 6979 signatures: the same bytes every run) with serials far above
# the owner's floor, so a damaged copy gets past the cheap checks to the signature.
# Each case damages one seed (or a corpus entry) and feeds it to
# carkey.ecu.admin.submit (the owner's USB entry point, which commits), the strict
# parsers documents.parse_share/parse_revocation/parse_admin and, wrapped in a
# carkey envelope, envelope.parse. Every 64 cases a fresh genuine document is
# submitted and must be accepted, so the accept path stays covered too.
# Checked: only the documented errors (AdminError, DocumentError, EnvelopeError,
# TlvError); nothing is accepted that the owner did not sign byte for byte; a
# refused document changes nothing on flash (key store authority, owner floors).

from carkey import storage
from carkey.ecu import admin, codes, documents, envelope
from carkey.ecu.car import IDENTITY_RECORD
from carkey.protocol import tlv
from carkey.protocol.identity import ReaderIdentity

import campaign_rig
from fuzzlib import mutate
from surf_apdu import _keypair, authority

_HIGH = 0x7FFFFF00


class World:
    def __init__(self, dir, rng):
        self.dir = dir
        ident = ReaderIdentity.from_private(rng.bytes(32), rng.bytes(16), rng.bytes(16))
        storage.save(dir, IDENTITY_RECORD, ident.to_bytes())
        self.group = ident.group_id
        self.owner = _keypair(rng)
        self.friend = _keypair(rng)[1]
        campaign_rig.provision(dir, self.owner[1])
        self.now = campaign_rig.NOW
        self.serial = 99
        self.signed = set()
        # Admin requests run in a session the car opens (docs/PROTOCOL.md §9): the seeds and
        # the genuine requests are signed over its challenge.
        self.challenge = bytes.fromhex(admin.challenge(dir)["challenge"])
        g = self.group
        slot = _slot(self.friend)
        bodies = (
            (documents.SHARE_TAG, documents.share_body(g, self.friend, codes.ROLE_DRIVER, 0x7F, 0, 0, b"", 0, _HIGH)),
            (documents.SHARE_TAG, documents.share_body(g, self.friend, codes.ROLE_GUEST, 0x03, self.now - 10,
                                                       self.now + 86400, b"\x7f\x00\x00\x05\xa0", 5, _HIGH + 1)),
            (documents.REVOCATION_TAG, documents.revocation_body(g, slot, _HIGH + 2, codes.ACTION_REVOKE)),
            (documents.REVOCATION_TAG, documents.revocation_body(g, slot, _HIGH + 3, codes.ACTION_SUSPEND)),
            (documents.ADMIN_TAG, documents.admin_body(g, _HIGH + 4, codes.ADMIN_SET_CLOCK,
                                                       (self.now + 60).to_bytes(4, "big"), self.challenge)),
            (documents.ADMIN_TAG, documents.admin_body(g, _HIGH + 5, codes.ADMIN_LIST_KEYS, bytes(1),
                                                       self.challenge)),
            (documents.ADMIN_TAG, documents.admin_body(g, _HIGH + 6, codes.ADMIN_EXPORT_LOG, bytes(4),
                                                       self.challenge)),
        )
        self.seeds = [self.sign(tag, body) for tag, body in bodies]
        self.authority = authority(dir)

    def sign(self, tag, body):
        doc = documents.sign(tag, body, self.owner[0], self.owner[1])
        self.signed.add(doc)
        return doc

    def genuine(self, rng):
        self.serial += 1
        g = self.group
        # A cycle every owner tool could send: (re)share, suspend, list, resume.
        which = self.serial % 4
        if which == 0:
            body = documents.share_body(g, self.friend, codes.ROLE_DRIVER, 0x7F, 0, 0, b"", 0, self.serial)
            return self.sign(documents.SHARE_TAG, body)
        if which in (1, 3):
            action = codes.ACTION_SUSPEND if which == 1 else codes.ACTION_RESUME
            return self.sign(documents.REVOCATION_TAG, documents.revocation_body(g, _slot(self.friend), self.serial,
                                                                                 action))
        # Numbered above every seed's, so a genuine request always follows the session's last.
        return self.sign(documents.ADMIN_TAG, documents.admin_body(g, _HIGH + 16 + self.serial, codes.ADMIN_LIST_KEYS,
                                                                   bytes(1), self.challenge))


def _slot(pub):
    import hashlib

    return hashlib.sha1(pub).digest()[:8]


_PARSERS = (documents.parse_share, documents.parse_revocation, documents.parse_admin)


def run_case(world, rng, report, case, entry=None):
    genuine = entry is None and case % 64 == 63
    if genuine:
        doc = world.genuine(rng)
    elif entry is not None:
        doc = entry
    else:
        seed = rng.choice(world.pool) if world.pool and rng.chance(1, 4) else rng.choice(world.seeds)
        doc = mutate(rng, seed)
        if doc in world.signed:
            doc = seed + b"\x00"
    # The parsers: DocumentError only.
    parsed = []
    for parse in _PARSERS:
        try:
            parse(doc)
            parsed.append(parse.__name__)
        except documents.DocumentError:
            pass
        except Exception as e:
            report.violation(case, "%s raised %r" % (parse.__name__, e), doc)
    # The same bytes as the share of a device message: EnvelopeError or TlvError only.
    if len(doc) < 250:
        inner = b"\xc3" + bytes((len(doc),)) + doc if len(doc) < 128 else b"\xc3\x81" + bytes((len(doc),)) + doc
        try:
            envelope.parse(tlv.encode(envelope.ENVELOPE, inner))
        except (envelope.EnvelopeError, tlv.TlvError):
            pass
        except Exception as e:
            report.violation(case, "envelope.parse raised %r" % e, doc)
    # The owner's USB entry point: AdminError only; OK only for what the owner signed.
    try:
        out = admin.submit(world.dir, doc, world.now)
        result = out["result"]
    except admin.AdminError as e:
        result = "AdminError:" + _reason(str(e))
    except Exception as e:
        report.violation(case, "admin.submit raised %r" % e, doc)
        result = "raised"
    if result == codes.OK and doc not in world.signed:
        report.violation(case, "accepted a document the owner did not sign", doc)
    if genuine and result != codes.OK:
        report.violation(case, "a genuine owner document was refused: %r" % (result,), doc)
    now = authority(world.dir)
    if now != world.authority:
        if result != codes.OK:
            report.violation(case, "a refused document changed the key store", doc)
        world.authority = now
    tag = "%02x" % doc[0] if doc and doc[0] in (0xE2, 0xE3, 0xE4) else "other"
    report.outcome("%s|%s|parsed:%s|%s" % ("genuine" if genuine else "damaged", tag, ",".join(parsed) or "-",
                                          result), None if genuine else doc)


def _reason(message):
    # The message without its numbers and quoted bytes: one outcome class per reason.
    out = []
    for ch in message.split(" (")[0]:
        if ch in "0123456789":
            break
        out.append(ch)
    return "".join(out)[:60]


def final_check(world, report):
    out = admin.submit(world.dir, world.genuine(_Fixed()), world.now)
    if out["result"] != codes.OK:
        report.violation(-1, "genuine document refused after the campaign: %r" % out)


class _Fixed:
    def below(self, n):
        return 0

    def choice(self, seq):
        return seq[0]
