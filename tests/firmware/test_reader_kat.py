# carkey — the firmware reader against the Aliro known-answer transcripts, in a 64 KiB heap.
# SPDX-License-Identifier: MIT
#
# With the KAT's reader key, ids, ephemeral keys and transaction ids injected
# (and RFC 6979 reader signatures), the reader's C-APDUs must equal the
# transcript byte for byte while a scripted link plays the user device's
# R-APDUs. Also: the key schedule values, and what the reader does with
# tampered, truncated or refused answers.
#
# Run: .venv/bin/pytest -q tests/firmware/test_reader_kat.py
#  or: MICROPYPATH=firmware:tests/mpy:tests/firmware .venv/bin/micropython tests/firmware/test_reader_kat.py

import asyncio
import gc
import json

import unittest

# Not 64 KiB: the compiled reader with the crypto it uses needs ~110 KiB for a tap
# (tests/host/test_reader_e2e.py::test_heap_budget measures and guards it); this
# module's own bytecode and the KAT values add ~35 KiB on top.
MPY_HEAPSIZE = "176k"

# Relative to the repository root, where the harness runs MicroPython (tests/vectors/README.md
# says where the values come from). A missing file fails the import: it never skips.
KAT_PATH = "tests/vectors/aliro-expedited-kat.json"


def _scalars(path):
    # (slash path, raw value text) for every scalar of a JSON file written one
    # value per line (the KAT is): parsing it whole would fill most of a 64 KiB heap.
    levels = []  # [key, is_array, next index]
    n = 0
    with open(path) as f:
        for line in f:
            n += 1
            if not n & 31:
                gc.collect()  # the line strings are garbage; keep the heap from filling with them
            s = line.strip()
            if s.endswith(","):
                s = s[:-1]
            if not s:
                continue
            if s == "}" or s == "]":
                levels.pop()
                continue
            if levels and levels[-1][1]:
                key = str(levels[-1][2])
                levels[-1][2] += 1
                rest = s
            elif s[0] == '"':
                key, rest = s.split('": ', 1)
                key = key[1:]
            else:
                key, rest = "", s
            if rest == "{" or rest == "[":
                levels.append([key, rest == "[", 0])
                continue
            yield "/".join([lv[0] for lv in levels[1:]] + [key]), rest


_STD = "transactions/0/"
_FAST = "transactions/1/"
_KEYS_V = ("SKReader", "SKDevice", "StepUpSK", "BleSK", "URSK")
_KEYS_F = ("CryptogramSK", "SKReader", "SKDevice", "BleSK", "URSK")


def _wanted():
    # KAT path -> (transaction or None, name[, index]) for the values used here.
    w = {
        "common/reader_long_term_private_key": (None, "reader_priv"),
        "common/reader_long_term_public_key": (None, "reader_pub"),
        "common/reader_group_identifier": (None, "group"),
        "common/reader_group_sub_identifier": (None, "sub"),
        "common/credential_long_term_public_key": (None, "cred_pub"),
        "common/credential_key_slot_sha1_first8": (None, "slot"),
    }
    for t, name in ((_STD, "std"), (_FAST, "fast")):
        w[t + "inputs/transaction_identifier"] = (name, "txid")
        w[t + "inputs/reader_ephemeral_private_key"] = (name, "eph_priv")
        w[t + "inputs/reader_ephemeral_public_key"] = (name, "eph_pub")
        w[t + "inputs/ud_ephemeral_public_key"] = (name, "ud_pub")
        w[t + "exchange_command_encryption/plaintext"] = (name, "exchange_pt")
    for key, name in (
        ("ecdh/shared_x", "z"),
        ("kdh_x963/kdh", "kdh"),
        ("hkdf_volatile/salt", "salt_v"),
        ("hkdf_persistent/salt", "salt_p"),
        ("hkdf_persistent/keys/Kpersistent", "kp"),
        ("reader_signature/signed_data", "signed_r"),
        ("ud_signature/signed_data", "signed_d"),
        ("reader_signature/signature_r_s", "sig_r"),
        ("ud_signature/signature_r_s", "sig_d"),
    ):
        w[_STD + key] = ("std", name)
    for i, k in enumerate(_KEYS_V):
        w[_STD + "hkdf_volatile/keys/" + k] = ("std", "keys", i)
    for i, k in enumerate(_KEYS_F):
        w[_FAST + "hkdf_volatile_fast/keys/" + k] = ("fast", "keys", i)
    w[_FAST + "hkdf_volatile_fast/salt"] = ("fast", "salt_f")
    return w


def _load():
    wanted = _wanted()
    out = {"std": {"apdus": [], "keys": [None] * 5}, "fast": {"apdus": [], "keys": [None] * 5}}
    for path, text in _scalars(KAT_PATH):
        where = wanted.get(path)
        if where is None:
            if "/apdus/" in path and path.endswith("_apdu"):
                # c_apdu comes before r_apdu in every step
                apdus = out["std" if path.startswith(_STD) else "fast"]["apdus"]
                value = bytes.fromhex(json.loads(text))
                if path.endswith("/c_apdu"):
                    apdus.append((value, None))
                else:
                    apdus[-1] = (apdus[-1][0], value)
            continue
        value = bytes.fromhex(json.loads(text))
        target = out if where[0] is None else out[where[0]]
        if len(where) == 3:
            target[where[1]][where[2]] = value
        else:
            target[where[1]] = value
    return out


KAT = _load()
gc.collect()

from carkey.crypto import aes, p256  # noqa: E402
from carkey.protocol import aliro_keys, apdu  # noqa: E402
from carkey.protocol.errors import AuthenticationFailed, LinkError, ProtocolError  # noqa: E402
from carkey.protocol.reader import KEY_SLOT_MODE, PrecomputePool, Reader, ReaderIdentity  # noqa: E402
from fakelink import Cred, FakeCredentials, FakeLink  # noqa: E402

CF_GRANTED = bytes.fromhex("803c000006410101420100")
CF_REFUSED = bytes.fromhex("803c000006410100420100")
OK = b"\x90\x00"


def run(coro):
    return asyncio.run(coro)


class _KatCase(unittest.TestCase):
    def setUp(self):
        gc.collect()

    def identity(self):
        return ReaderIdentity(KAT["reader_priv"], KAT["reader_pub"], KAT["group"], KAT["sub"])

    def reader(self, txn):
        pool = PrecomputePool(ephemerals=0, nonces=0)
        t = KAT[txn]
        pool.add_ephemeral(t["eph_priv"], t["eph_pub"], t["txid"])
        return Reader(self.identity(), pool, policy=0x02, deterministic_signatures=True)

    def enrolled(self, kpersistent=None):
        return FakeCredentials([Cred(KAT["cred_pub"], kpersistent)])

    def transcript(self, txn, flag):
        t = KAT[txn]
        tr = aliro_keys.Transcript(KAT["reader_pub"], KAT["group"] + KAT["sub"], t["eph_pub"], t["txid"], flag)
        tr.set_device_ephemeral(t["ud_pub"])
        return tr


class TestStandardTranscript(_KatCase):
    def test_capdus_match_kat_byte_for_byte(self):
        t = KAT["std"]
        link = FakeLink(t["apdus"] + [(CF_GRANTED, OK)])
        session = run(self.reader("std").transact(link, self.enrolled()))
        self.assertEqual(session.kind, "standard")
        self.assertTrue(session.known)
        self.assertEqual(session.credential_pub, KAT["cred_pub"])
        self.assertEqual(session.kpersistent, t["kp"])
        self.assertEqual(session.signaling_bitmap, b"\x1c\x30")
        self.assertEqual(run(session.exchange(t["exchange_pt"])), b"")
        run(session.end(True))
        self.assertEqual(link.script, [])
        self.assertEqual(link.sent, [c for c, _ in t["apdus"]] + [CF_GRANTED])

    def test_unknown_credential_still_gets_a_session(self):
        t = KAT["std"]
        link = FakeLink(t["apdus"][:3])
        session = run(self.reader("std").transact(link, FakeCredentials()))
        self.assertFalse(session.known)
        self.assertEqual(session.credential, None)
        self.assertEqual(session.credential_pub, KAT["cred_pub"])
        self.assertEqual(session.kpersistent, t["kp"])

    def test_verification_table_is_used_when_enrolled_with_one(self):
        t = KAT["std"]
        table = p256.verify_table(KAT["cred_pub"])
        creds = FakeCredentials([Cred(KAT["cred_pub"], None, table)])
        session = run(self.reader("std").transact(FakeLink(t["apdus"][:3]), creds))
        self.assertTrue(session.credential.table is table)
        self.assertEqual(session.kpersistent, t["kp"])

    def test_event_loop_runs_between_crypto_slices(self):
        # A ticker task must get the loop many times during one standard tap
        # (ECDH and the signature check are sliced), not once at the end.
        t = KAT["std"]
        ticks = [0]
        done = [False]

        async def ticker():
            while not done[0]:
                ticks[0] += 1
                await asyncio.sleep_ms(0)

        async def main():
            task = asyncio.create_task(ticker())
            session = await self.reader("std").transact(FakeLink(t["apdus"][:3]), self.enrolled())
            done[0] = True
            await task
            return session

        session = run(main())
        self.assertEqual(session.kpersistent, t["kp"])
        self.assertTrue(ticks[0] > 60, "ticker ran %d times" % ticks[0])


class TestFastTranscript(_KatCase):
    def test_capdus_match_kat_byte_for_byte(self):
        t = KAT["fast"]
        link = FakeLink(t["apdus"] + [(CF_REFUSED, OK)])
        creds = self.enrolled(KAT["std"]["kp"])
        session = run(self.reader("fast").transact(link, creds))
        self.assertEqual(session.kind, "fast")
        self.assertTrue(session.known)
        self.assertEqual(session.credential_pub, KAT["cred_pub"])
        self.assertEqual(session.kpersistent, None)
        self.assertEqual(session.signaling_bitmap, b"\x1c\x30")
        self.assertEqual(run(session.exchange(t["exchange_pt"])), b"")
        run(session.end(False))
        self.assertEqual(link.sent, [c for c, _ in t["apdus"]] + [CF_REFUSED])

    def test_right_key_found_among_several_cached(self):
        t = KAT["fast"]
        others = [Cred(p256.generate_keypair()[1], bytes([i]) * 32) for i in range(1, 4)]
        creds = FakeCredentials(others + [Cred(KAT["cred_pub"], KAT["std"]["kp"])])
        session = run(self.reader("fast").transact(FakeLink(t["apdus"][:2]), creds))
        self.assertEqual(session.kind, "fast")
        self.assertEqual(session.credential_pub, KAT["cred_pub"])

    def test_stale_kpersistent_falls_back_to_auth1(self):
        # The KAT has no AUTH1 for this transaction: check the reader sends a
        # well-formed AUTH1 in public-key mode, then loses the (scripted) link.
        t = KAT["fast"]
        link = FakeLink(t["apdus"][:2])
        with self.assertRaises(LinkError):
            run(self.reader("fast").transact(link, self.enrolled(b"\x55" * 32)))
        self.assertEqual(len(link.sent), 3)
        auth1 = link.sent[2]
        self.assertEqual(auth1[:10], bytes.fromhex("80810000454101019e40"))
        self.assertEqual(len(auth1), 4 + 1 + 69 + 1)
        tr = self.transcript("fast", b"\x01\x02")
        self.assertTrue(p256.verify(KAT["reader_pub"], tr.digest(aliro_keys.USAGE_READER), auth1[10:74]))

    def test_replayed_exchange_answer_is_rejected(self):
        t = KAT["fast"]
        exchange = t["apdus"][2]
        link = FakeLink(t["apdus"] + [(None, exchange[1]), (CF_REFUSED, OK)])
        session = run(self.reader("fast").transact(link, self.enrolled(KAT["std"]["kp"])))
        run(session.exchange(t["exchange_pt"]))
        with self.assertRaises(AuthenticationFailed):
            run(session.exchange(t["exchange_pt"]))
        with self.assertRaises(ProtocolError):
            run(session.exchange(t["exchange_pt"]))

    def test_end_after_tampered_exchange_still_tells_the_device(self):
        t = KAT["fast"]
        answer = bytearray(t["apdus"][2][1])
        answer[0] ^= 1
        link = FakeLink(t["apdus"][:2] + [(t["apdus"][2][0], answer), (CF_REFUSED, OK)])
        session = run(self.reader("fast").transact(link, self.enrolled(KAT["std"]["kp"])))
        with self.assertRaises(AuthenticationFailed):
            run(session.exchange(t["exchange_pt"]))
        run(session.end(False))
        run(session.end(False))  # a second end sends nothing more
        self.assertEqual(link.sent[-1], CF_REFUSED)
        self.assertEqual(len(link.sent), 4)

    def test_end_after_link_loss_sends_nothing(self):
        t = KAT["fast"]
        link = FakeLink(t["apdus"][:2] + [(t["apdus"][2][0], LinkError("gone"))])
        session = run(self.reader("fast").transact(link, self.enrolled(KAT["std"]["kp"])))
        with self.assertRaises(LinkError):
            run(session.exchange(t["exchange_pt"]))
        run(session.end(True))
        self.assertEqual(len(link.sent), 3)

    def test_device_error_status_in_exchange(self):
        t = KAT["fast"]
        sk_device = t["keys"][2]
        answer = aes.gcm_encrypt(sk_device, bytes(7) + b"\x01" + b"\x00\x00\x00\x01", b"\x00\x02\x69\x82") + OK
        link = FakeLink(t["apdus"][:2] + [(t["apdus"][2][0], answer)])
        session = run(self.reader("fast").transact(link, self.enrolled(KAT["std"]["kp"])))
        with self.assertRaises(ProtocolError) as cm:
            run(session.exchange(t["exchange_pt"]))
        self.assertEqual(cm.exception.status, 0x6982)
        self.assertEqual(cm.exception.sw, None)

    def test_exchange_answer_with_data_before_status(self):
        t = KAT["fast"]
        sk_device = t["keys"][2]
        reply = b"\xe1\x03\xc2\x01\x02"
        answer = aes.gcm_encrypt(sk_device, bytes(7) + b"\x01" + b"\x00\x00\x00\x01", reply + b"\x00\x02\x00\x00") + OK
        link = FakeLink(t["apdus"][:2] + [(t["apdus"][2][0], answer)])
        session = run(self.reader("fast").transact(link, self.enrolled(KAT["std"]["kp"])))
        self.assertEqual(run(session.exchange(t["exchange_pt"])), reply)


class TestBadAnswers(_KatCase):
    def run_std(self, replace_at, answer, creds=None):
        t = KAT["std"]
        script = list(t["apdus"][:3])
        script[replace_at] = (script[replace_at][0], answer)
        link = FakeLink(script[: replace_at + 1] + [(None, OK)])
        return link, self.reader("std").transact(link, creds or self.enrolled())

    def test_tampered_auth1_answer(self):
        r = bytearray(KAT["std"]["apdus"][2][1])
        r[10] ^= 1
        link, coro = self.run_std(2, r)
        with self.assertRaises(AuthenticationFailed):
            run(coro)
        self.assertEqual(link.sent[-1], CF_REFUSED)

    def test_truncated_auth1_answer(self):
        r = KAT["std"]["apdus"][2][1]
        link, coro = self.run_std(2, r[:40] + OK)
        with self.assertRaises(AuthenticationFailed):
            run(coro)

    def test_auth1_refused_by_device(self):
        link, coro = self.run_std(2, b"\x69\x82")
        with self.assertRaises(ProtocolError) as cm:
            run(coro)
        self.assertEqual(cm.exception.sw, 0x6982)
        self.assertEqual(link.sent[-1], CF_REFUSED)

    def test_truncated_auth0_answer(self):
        r = KAT["std"]["apdus"][1][1]
        link, coro = self.run_std(1, r[:50] + OK)
        with self.assertRaises(ProtocolError) as cm:
            run(coro)
        self.assertEqual(cm.exception.sw, None)
        self.assertIn("AUTH0", str(cm.exception))

    def test_device_key_off_the_curve(self):
        r = bytearray(KAT["std"]["apdus"][1][1])
        r[40] ^= 1
        link, coro = self.run_std(1, r)
        with self.assertRaises(ProtocolError):
            run(coro)
        self.assertEqual(len(link.sent), 3)  # SELECT, AUTH0, abort: no AUTH1 signed

    def test_select_unknown_aid(self):
        link, coro = self.run_std(0, b"\x6a\x82")
        with self.assertRaises(ProtocolError) as cm:
            run(coro)
        self.assertEqual(cm.exception.sw, 0x6A82)

    def test_select_without_common_version(self):
        answer = bytes.fromhex("6f158409a000000909acce5501a508800200005c020200") + OK
        link, coro = self.run_std(0, answer)
        with self.assertRaises(ProtocolError) as cm:
            run(coro)
        self.assertIn("version", str(cm.exception))

    def test_link_drop_mid_transaction(self):
        t = KAT["std"]
        link = FakeLink(t["apdus"][:2] + [(t["apdus"][2][0], LinkError("gone"))])
        with self.assertRaises(LinkError):
            run(self.reader("std").transact(link, self.enrolled()))
        self.assertEqual(len(link.sent), 3)  # no abort on a dead link

    def test_key_slot_mode_with_unknown_slot_fails(self):
        # The device would answer 4E <slot>; the KAT answer has 5A instead, so a
        # key-slot reader must refuse it as malformed before anything is granted.
        t = KAT["std"]
        link = FakeLink(t["apdus"][:2] + [(None, t["apdus"][2][1]), (None, OK)])
        with self.assertRaises(ProtocolError):
            run(self.reader("std").transact(link, self.enrolled(), auth1_mode=KEY_SLOT_MODE))
        self.assertEqual(link.sent[2][5:8], b"\x41\x01\x00")


class TestKeySchedule(_KatCase):
    def test_ecdh_and_kdh(self):
        t = KAT["std"]
        z = p256.ecdh(t["eph_priv"], t["ud_pub"])
        self.assertEqual(z, t["z"])
        self.assertEqual(aliro_keys.kdh(z, t["txid"]), t["kdh"])

    def test_standard_salts_and_keys(self):
        t = KAT["std"]
        tr = self.transcript("std", b"\x00\x02")
        self.assertEqual(bytes(tr.salt(aliro_keys.LABEL_VOLATILE)), t["salt_v"])
        self.assertEqual(bytes(tr.salt(aliro_keys.LABEL_PERSISTENT, KAT["cred_pub"])), t["salt_p"])
        self.assertEqual(list(tr.volatile_keys(t["kdh"])), t["keys"])
        self.assertEqual(tr.kpersistent(t["kdh"], KAT["cred_pub"]), t["kp"])

    def test_fast_salt_and_keys(self):
        t = KAT["fast"]
        tr = self.transcript("fast", b"\x01\x02")
        self.assertEqual(bytes(tr.salt(aliro_keys.LABEL_VOLATILE_FAST, KAT["cred_pub"])), t["salt_f"])
        prk = tr.fast_prk(KAT["std"]["kp"], KAT["cred_pub"])
        self.assertEqual(list(tr.fast_keys(prk)), t["keys"])
        self.assertEqual(tr.cryptogram_sk(prk), t["keys"][0])

    def test_signed_data_and_signatures(self):
        t = KAT["std"]
        tr = self.transcript("std", b"\x00\x02")
        self.assertEqual(bytes(tr.signed_data(aliro_keys.USAGE_READER)), t["signed_r"])
        self.assertEqual(bytes(tr.signed_data(aliro_keys.USAGE_DEVICE)), t["signed_d"])
        self.assertEqual(p256.finish(self.identity().sign_steps(tr.digest(aliro_keys.USAGE_READER))), t["sig_r"])
        self.assertTrue(p256.verify(KAT["cred_pub"], tr.digest(aliro_keys.USAGE_DEVICE), t["sig_d"]))

    def test_key_slot(self):
        self.assertEqual(aliro_keys.key_slot(KAT["cred_pub"]), KAT["slot"])

    def test_salt_refuses_missing_credential_key(self):
        tr = self.transcript("std", b"\x00\x02")
        with self.assertRaises(ValueError):
            tr.salt(aliro_keys.LABEL_PERSISTENT)


class TestIdentity(_KatCase):
    def test_serializer_round_trip(self):
        ident = self.identity()
        data = ident.to_bytes()
        self.assertEqual(len(data), 134)
        back = ReaderIdentity.from_bytes(data)
        self.assertEqual(back.public_key, KAT["reader_pub"])
        self.assertEqual(back.identifier, KAT["group"] + KAT["sub"])
        self.assertEqual(back.to_bytes(), data)

    def test_serializer_refuses_mismatched_key(self):
        data = bytearray(self.identity().to_bytes())
        data[-1] ^= 1
        with self.assertRaises(ValueError):
            ReaderIdentity.from_bytes(bytes(data))

    def test_private_key_not_in_public_attributes(self):
        ident = self.identity()
        for name in dir(ident):
            if not name.startswith("_"):
                self.assertNotEqual(getattr(ident, name), KAT["reader_priv"], name)
        self.assertFalse(KAT["reader_priv"].hex() in repr(ident))

    def test_generate_makes_a_working_key(self):
        ident = ReaderIdentity.generate()
        self.assertEqual(len(ident.identifier), 32)
        self.assertEqual(p256.public_key(ident.to_bytes()[37:69]), ident.public_key)


class TestPool(_KatCase):
    def test_fill_and_single_use(self):
        pool = PrecomputePool(ephemerals=1, nonces=1)
        run(pool.fill())
        self.assertEqual(pool.counts(), (1, 1))
        eph = run(pool.take_ephemeral())
        nonce = run(pool.take_nonce())
        self.assertEqual(p256.public_key(bytes(eph.private_key)), eph.public_key)
        self.assertEqual(len(eph.transaction_id), 16)
        self.assertEqual(pool.counts(), (0, 0))
        ident = self.identity()
        digest = b"\x11" * 32
        sig = ident.sign_with_nonce(digest, nonce)
        self.assertTrue(p256.verify(ident.public_key, digest, sig))
        with self.assertRaises(ValueError):
            ident.sign_with_nonce(digest, nonce)
        eph.wipe()
        self.assertEqual(bytes(eph.private_key), bytes(32))

    def test_production_signature_uses_pool_nonce(self):
        t = KAT["std"]
        pool = PrecomputePool(ephemerals=0, nonces=1)
        pool.fill_now()
        pool.add_ephemeral(t["eph_priv"], t["eph_pub"], t["txid"])
        link = FakeLink(t["apdus"][:2] + [(None, t["apdus"][2][1])])
        session = run(Reader(self.identity(), pool).transact(link, self.enrolled()))
        self.assertEqual(pool.counts(), (0, 0))
        auth1 = link.sent[2]
        self.assertNotEqual(auth1, t["apdus"][2][0])  # a random nonce, not RFC 6979
        tr = self.transcript("std", b"\x00\x02")
        self.assertTrue(p256.verify(KAT["reader_pub"], tr.digest(aliro_keys.USAGE_READER), auth1[10:74]))
        self.assertEqual(session.kpersistent, t["kp"])


class TestApdu(unittest.TestCase):
    # Chaining and GET RESPONSE as the reader does them, byte for byte.

    def test_short_command_with_le(self):
        self.assertEqual(bytes(apdu.command(0x00, 0xA4, 4, 0, b"\xa0\x01", 256)), bytes.fromhex("00a4040002a00100"))
        self.assertEqual(bytes(apdu.command(0x80, 0x3C, 0, 0, b"\x41\x01\x01")), bytes.fromhex("803c000003410101"))

    def test_long_command_is_chained(self):
        data = bytes(range(256)) + bytes(44)
        link = FakeLink([
            (bytes.fromhex("90c90000ff") + data[:255], OK),
            (bytes.fromhex("80c900002d") + data[255:] + b"\x00", b"\xaa" + OK),
        ])
        body, sw = run(apdu.transmit(link, 0x80, 0xC9, 0, 0, data, 256, 100))
        self.assertEqual((bytes(body), sw), (b"\xaa", 0x9000))

    def test_chain_part_refused(self):
        link = FakeLink([(None, b"\x6a\x86")])
        body, sw = run(apdu.transmit(link, 0x80, 0xC9, 0, 0, bytes(300), 256, 100))
        self.assertEqual((bytes(body), sw), (b"", 0x6A86))
        self.assertEqual(len(link.sent), 1)

    def test_get_response_collects_parts(self):
        link = FakeLink([
            (None, b"\x01" * 254 + b"\x61\x05"),
            (bytes.fromhex("00c0000005"), b"\x02" * 5 + OK),
        ])
        body, sw = run(apdu.transmit(link, 0x80, 0xC9, 0, 0, b"\x00", 256, 100))
        self.assertEqual((bytes(body), sw), (b"\x01" * 254 + b"\x02" * 5, 0x9000))

    def test_get_response_without_progress_refused(self):
        link = FakeLink([(None, b"\x61\x00"), (bytes.fromhex("00c0000000"), b"\x61\x00")])
        with self.assertRaises(ProtocolError):
            run(apdu.transmit(link, 0x80, 0xC9, 0, 0, b"\x00", 256, 100))

    def test_answer_shorter_than_sw(self):
        with self.assertRaises(ProtocolError):
            run(apdu.transmit(FakeLink([(None, b"\x90")]), 0x80, 0xC9, 0, 0, b"\x00", 256, 100))


if __name__ == "__main__":
    unittest.main()
