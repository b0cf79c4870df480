# carkey — the car ECU: one tap from authentication to door outputs, audit log and key store.
# SPDX-License-Identifier: MIT
#
# Car.handle(link, transport) runs one transaction on any link: the Aliro reader
# authenticates the device, carkey's envelope carries documents and command
# requests, the policy decides, the door controller acts. Car.settle() then writes
# what the tap leaves behind: its audit records and the key store's usage figures.
# Flash writes are slow (about half of a fast tap on the Unix port), so the ones
# nothing depends on wait until the device has its answer; the ones that protect
# something do not: an accepted document is committed before the device hears of
# it, a limited key's use before the actuator moves, a lockout failure at once.
# State on flash changes only through atomic commits, so a power cut at any instant
# leaves either the state before a change or the state after it.

import asyncio
from micropython import const

from carkey import storage
from carkey.clock import Clock
from carkey.ecu import codes, envelope, policy
from carkey.ecu.auditlog import KIND_FALLBACK, KIND_FAST, KIND_PASSIVE, KIND_STANDARD, AuditLog, StrangerLog
from carkey.ecu.keystore import KeyStore, KeyStoreError, key_slot
from carkey.ecu.lockouts import Lockouts
from carkey.protocol import tlv
from carkey.protocol.deadline import Deadline
from carkey.protocol.errors import AuthenticationFailed, LinkError, ProtocolError
from carkey.protocol.identity import ReaderIdentity
from carkey.protocol.reader import Reader, Refused
from carkey.protocol.session import FALLBACK, FAST

IDENTITY_RECORD = "identity"
PLACE_DOOR = "door"  # at the door handle: phones default to unlock, cards toggle the lock
PLACE_CABIN = "cabin"  # inside the car: cards enable driving (docs/PROTOCOL.md §8)
_SW_NOT_FOUND = const(0x6A82)  # the answer of a card without the Aliro application
MAX_COMMANDS = const(4)  # command requests answered per transaction
# Whole-transaction deadlines (docs/PROTOCOL.md §2a), from the tap's first command:
# a device that has not proved an enrolled key gets the short one, enough for a
# standard handshake and a share document's check on an ESP32; an enrolled key the
# long one (up to four revocation documents and four commands).
STRANGER_DEADLINE_MS = const(6000)
TAP_DEADLINE_MS = const(20000)
_STATUS_ACTIVE = const(0)


class NotProvisioned(Exception):
    """The state directory holds no reader identity yet (run init first)."""


def load_identity(dir):
    blob = storage.load(dir, IDENTITY_RECORD)
    if blob is None:
        raise NotProvisioned("no reader identity in %s" % dir)
    return ReaderIdentity.from_bytes(blob)


def create_identity(dir):
    """First boot: a new reader identity, made and kept on this device. Refuses to
    replace one: every enrolled phone trusts the old key."""
    if storage.load(dir, IDENTITY_RECORD) is not None:
        raise ValueError("reader identity exists")
    ident = ReaderIdentity.generate()
    storage.save(dir, IDENTITY_RECORD, ident.to_bytes())
    return ident


class Outcome:
    """What one transaction did, for callers that report it (CLI, tests, bench)."""

    def __init__(self, kind, granted, results, error=None, credential_pub=None):
        self.kind = kind  # "standard", "fast", "fallback", or None before authentication
        self.granted = granted
        self.credential_pub = credential_pub  # the key that authenticated (None before that)
        self.results = results  # [(command, result code)]
        self.error = error  # audit result code of a failed transaction, else None

    def __repr__(self):
        return "<Outcome %s %s %r>" % (self.kind, "granted" if self.granted else "refused", self.results)


class Car:
    """The ECU of one car. dir: the state directory (identity, key store, clock,
    lockout, audit log). door: a DoorController. carbus: a CarBus for per-key
    profiles, or None. pool: the reader's PrecomputePool (default: a fresh one)."""

    def __init__(self, dir, door, carbus=None, clock=None, pool=None, default_command=codes.CMD_UNLOCK,
                 place=PLACE_DOOR, card_drive_minutes=30):
        from carkey.crypto.p256 import TABLE_LEN

        self.dir = dir
        self.identity = load_identity(dir)
        # Verification tables are read into one buffer, made now before the heap
        # fragments, and built in the same one: a build runs its slices only while no
        # tap is under way, and gives up when one starts (the tap reads its table over
        # the half-built one), to start over once the tap is done (prepare_tables).
        self._table_buf = bytearray(TABLE_LEN)
        self.keys = KeyStore(dir, table_buffer=self._table_buf)
        self._taps = 0  # taps started; a build that sees it change gives up
        self._tapping = False  # a tap is under way: its table may be in the buffer
        self.clock = clock or Clock(dir)
        self.log = AuditLog(dir)
        self.strangers = StrangerLog(dir)  # strangers' refusals, coalesced, in a ring of their own
        self.door = door
        self.carbus = carbus
        self.reader = Reader(self.identity, pool)
        self.default_command = default_command
        self.place = place
        self.card_drive_minutes = card_drive_minutes
        self.lockouts = Lockouts(dir)  # strangers' and per-key failed authentications
        self._records = []  # audit records of the last tap, written by settle()
        self._dirty = False  # key-store changes settle() commits
        self._tables_fit = True  # verification tables can be built on this heap
        self.stranger_deadline_ms = STRANGER_DEADLINE_MS
        self.tap_deadline_ms = TAP_DEADLINE_MS

    def settle(self):
        """After a tap: write its audit records and commit what it changed. The app
        calls it as soon as handle() returns; a power cut before then loses only
        those records and usage figures (uses, last use, a new Kpersistent)."""
        try:
            for rec in self._records:
                if self._insider(rec):
                    self.log.append(*rec)
                else:
                    self.strangers.note(rec[0], rec[2], rec[3], rec[4], rec[5])
            if self.strangers.due(self.clock.now()):
                self.strangers.flush()
        except OSError:
            pass  # a failing flash must not stop the car; the records are lost
        self._records = []
        if self._dirty:
            try:
                self.keys.commit()
                self._dirty = False
            except OSError:
                pass  # kept in RAM and tried again after the next tap

    def flush_log(self, ended_only=False):
        """Write the strangers' counts waiting in RAM: all of them (shutdown), or with
        ended_only those of an interval that has ended (the idle loop)."""
        if not ended_only or self.strangers.due(self.clock.now()):
            self.strangers.flush()

    def _insider(self, record):
        # An enrolled key's record (or a grant) goes to the main log; everything a
        # stranger caused is only counted, so strangers cannot evict the owner's history.
        slot, kind, result = record[1], record[3], record[5]
        if result == codes.OK or result == codes.READER_FAULT or kind == KIND_PASSIVE:
            return True
        cred = self.keys.by_slot(slot) if slot is not None else None
        return cred is not None and cred.status != codes.STATUS_REVOKED

    def passive(self, command, pub, transport):
        """Passive entry: the watched phone came near and proved itself in this approach
        (unlock) or went away (lock). The key's policy is checked as for a fast tap, and
        the decision is logged as passive entry. Returns the result code; never raises."""
        now = self.clock.now()
        cred = self.keys.get(pub) if pub is not None else None
        try:
            code = self._decide(cred, command, b"", codes.KIND_FAST, now)
        except Exception:  # a fault of the reader (flash, a relay driver): logged, not raised
            self._rollback()
            code = codes.READER_FAULT
        self._note(now, key_slot(pub) if pub is not None else None, transport, KIND_PASSIVE, command, code)
        return code

    async def prepare_tables(self, limit=1):
        """Idle work: build up to `limit` missing verification tables (sliced, so
        the loop keeps running). Returns how many were built; a build that a tap
        interrupted is not counted, and starts over at the next call."""
        from carkey.crypto import p256

        built = 0
        if self._tables_fit:
            for cred in self.keys.without_table()[:limit]:
                try:
                    table = await self._build(p256.verify_table_steps(cred.pub, self._table_buf))
                except MemoryError:
                    # Building a table needs ~40 KiB beyond a tap: on a heap that small,
                    # keys are verified without one (slower, never wrong).
                    self._tables_fit = False
                    break
                if table is None:
                    break  # a tap came: the buffer holds its table now
                self.keys.store_table(cred, table)
                built += 1
        return built

    async def _build(self, steps):
        # carkey.steps.run_steps, but each slice runs only if no tap has started since
        # the build did and none is under way: the table buffer is the tap's while it
        # runs, and what the build had written is gone. None: given up.
        taps = self._taps
        try:
            while True:
                if self._tapping or self._taps != taps:
                    return None
                next(steps)
                await asyncio.sleep_ms(0)
        except StopIteration as done:
            return done.value

    def _note(self, *record):
        self._records.append(record)

    # --- one transaction -------------------------------------------------------

    async def handle(self, link, transport, fast=None, card_uid=None):
        """Run one transaction on link; returns an Outcome. Never raises: every failure,
        the device's or the reader's own (flash, memory, a bug), ends as a refused,
        logged Outcome. card_uid: the anticollision UID of an NFC target, which may be
        a card key instead of a phone."""
        self._taps += 1
        self._tapping = True  # no table build runs a slice until the tap is over
        try:
            return await self._handle(link, transport, fast, card_uid)
        except Exception:  # not CancelledError (a BaseException): a stopping app cancels taps
            now = self.clock.now()
            self._rollback()
            self._note(now, None, transport, KIND_STANDARD, codes.EVENT_TRANSACTION, codes.READER_FAULT)
            try:
                self.door.feedback(False)
            except Exception:
                pass
            return Outcome(None, False, [], codes.READER_FAULT)
        finally:
            self._tapping = False

    def _rollback(self):
        # RAM back to the last commit: a change lives only with the commit that carries it.
        try:
            self.keys.load()
            self._dirty = False
        except Exception:
            pass  # unreadable: keep what RAM holds; the next commit rewrites the store

    async def _handle(self, link, transport, fast, card_uid):
        link = Deadline(link, self.stranger_deadline_ms)
        now = self.clock.now()
        # During the strangers' lockout a device must prove an enrolled key: the
        # reader refuses one that names none before checking its signature.
        strangers_locked = self.lockouts.strangers_locked(now)
        try:
            session = await self.reader.transact(link, self.keys, fast, refuse_unknown=strangers_locked)
        except AuthenticationFailed:
            # It proved no enrolled key, whatever key it named: a stranger's failure.
            return self._failed(now, transport, codes.LOCKED_OUT if strangers_locked else codes.AUTH_FAILED, True)
        except Refused:
            return self._failed(now, transport, codes.LOCKED_OUT, False)
        except ProtocolError as e:
            if e.sw == _SW_NOT_FOUND and card_uid is not None:
                return await self._card(link, card_uid, transport, now)
            return self._failed(now, transport, codes.PROTOCOL_ERROR, False)
        except LinkError:
            return self._failed(now, transport, codes.LINK_LOST, False)
        kind = session.kind
        log_kind = KIND_FAST if kind == FAST else KIND_FALLBACK if kind == FALLBACK else KIND_STANDARD
        policy_kind = codes.KIND_FAST if kind == FAST else codes.KIND_STANDARD
        pub = session.credential_pub
        slot = key_slot(pub)
        results = []
        error = None
        try:
            cred = session.credential
            if cred is not None:
                link.extend(self.tap_deadline_ms)  # it proved an enrolled key
            data = await session.exchange(envelope.hello(self.door.car_state()))
            req = envelope.parse(data)
            refusal = 0  # a refused share answers every request of this tap
            judged = []  # (document tag, result) for the first answer
            if req.share is not None:
                cred, refusal = await self._share(req.share, cred, pub, slot, now, transport, log_kind)
                judged.append((codes.EVENT_SHARE, refusal))
                if cred is not None:
                    link.extend(self.tap_deadline_ms)  # enrolled by its share just now
            for doc in req.revocations:
                judged.append((codes.EVENT_REVOCATION,
                               await self._revocation(doc, slot, now, transport, log_kind)))
            if cred is not None:
                cred = self.keys.get(pub)  # a revocation may have changed it
            command, argument = req.command, req.argument
            # A device that asked nothing (no request, no documents) gets the default
            # action and only CONTROL FLOW after it: one EXCHANGE (docs/PROTOCOL.md §4).
            asked_nothing = command is None and not judged
            if command is None:
                command, argument = self.default_command, b""
            if req.battery_mv is not None:  # a key fob's battery, for the owner's log
                self._note(now, slot, transport, log_kind, codes.EVENT_BATTERY, min(req.battery_mv // 20, 255))
            while True:
                code = refusal or self._decide(cred, command, argument, policy_kind, now)
                self._note(now, slot, transport, log_kind, command, code)
                results.append((command, code))
                if code == codes.OK and command in (codes.CMD_UNLOCK, codes.CMD_UNLOCK_DRIVER):
                    self._emit_profile(cred)
                if asked_nothing:
                    break
                answer = envelope.result(command, code, self.door.car_state(), code == codes.OK, judged)
                judged = ()
                if len(results) == MAX_COMMANDS:
                    await session.exchange(answer)
                    break
                more = envelope.parse(await session.exchange(answer))
                if more.command is None:
                    break
                if more.share is not None or more.revocations:
                    raise envelope.EnvelopeError("documents after the first message")
                command, argument = more.command, more.argument
        except AuthenticationFailed:
            error = codes.AUTH_FAILED
        except LinkError:
            error = codes.LINK_LOST
        except (ProtocolError, envelope.EnvelopeError, tlv.TlvError):
            error = codes.PROTOCOL_ERROR
        granted = error is None and bool(results) and all(r[1] == codes.OK for r in results)
        if error is not None:
            self._note(now, slot, transport, log_kind, codes.EVENT_TRANSACTION, error)
            if error == codes.AUTH_FAILED:
                if session.credential is not None:
                    self.lockouts.key_failure(slot, now)  # it proved this key, then failed
                else:
                    self.lockouts.stranger_failure(now)
        self._remember(session, pub, granted)
        if granted and kind != FAST:
            self.lockouts.granted_standard(slot)
        self.door.feedback(granted)
        try:
            await session.end(granted)
        except (LinkError, ProtocolError):
            pass  # the decision stands; the device learns it from the results
        return Outcome(kind, granted, results, error, pub)

    async def _card(self, link, uid, transport, now):
        # An NTAG 424 DNA card key (docs/PROTOCOL.md §8): it proves its diversified
        # key and its UID, then gets the action of this reader's place.
        from carkey.ecu import cardkey
        from carkey.ecu.keystore import card_identifier
        from carkey.protocol import ntag424

        master = cardkey.load(self.dir)
        if master is None:
            return self._failed(now, transport, codes.PROTOCOL_ERROR, False)  # cards not set up here
        if self.lockouts.strangers_locked(now) and not self._enrolled_card(uid):
            return self._failed(now, transport, codes.LOCKED_OUT, False)
        try:
            uid = await ntag424.authenticate_card(link, master, uid, self.reader.timeout_ms)
        except AuthenticationFailed:
            return self._failed(now, transport, codes.AUTH_FAILED, True)
        except ProtocolError:
            return self._failed(now, transport, codes.PROTOCOL_ERROR, False)
        except LinkError:
            return self._failed(now, transport, codes.LINK_LOST, False)
        finally:
            for i in range(len(master)):
                master[i] = 0
        cred = self.keys.get(card_identifier(uid))
        if self.place == PLACE_CABIN:
            command, argument = codes.CMD_DRIVE_ENABLE, bytes((self.card_drive_minutes,))
        elif self.door.locked:
            command, argument = codes.CMD_UNLOCK, b""
        else:
            command, argument = codes.CMD_LOCK, b""
        # Every card tap authenticates afresh with new challenges: a standard transaction.
        code = self._decide(cred, command, argument, codes.KIND_STANDARD, now)
        slot = cred.slot if cred is not None else key_slot(card_identifier(uid))
        self._note(now, slot, transport, KIND_STANDARD, command, code)
        granted = code == codes.OK
        if granted:
            self.lockouts.granted_standard(slot)
        self.door.feedback(granted)
        return Outcome("card", granted, [(command, code)])

    def _enrolled_card(self, uid):
        from carkey.ecu.keystore import KeyStoreError, card_identifier

        try:
            return self.keys.get(card_identifier(uid)) is not None
        except KeyStoreError:
            return False  # not a 7-byte UID: no card key of ours

    def _failed(self, now, transport, code, counts):
        if counts:
            self.lockouts.stranger_failure(now)
        self._note(now, None, transport, KIND_STANDARD, codes.EVENT_TRANSACTION, code)
        self.door.feedback(False)
        return Outcome(None, False, [], code)

    def _decide(self, cred, command, argument, kind, now):
        trusted = self.clock.trusted()
        lockout = self.lockouts.key(cred.slot) if cred is not None else None
        code = policy.check(cred, command, argument, kind, now, trusted, lockout)
        if code != codes.OK:
            return code
        counted = policy.counts_as_use(command)
        if counted and cred.use_limit:
            # A limited key's use is on flash before the actuator moves, so a power
            # cut cannot hand out a free use.
            self.keys.record_use(cred.pub, now)
            self.keys.commit()
            counted = False
        code = self.door.execute(command, argument)
        if code == codes.OK and counted:
            self.keys.record_use(cred.pub, now)
            self._dirty = True
        return code

    def _emit_profile(self, cred):
        if self.carbus is None or cred is None or not cred.profile:
            return
        try:
            self.carbus.emit_profile(cred.slot, cred.profile)
        except (OSError, ValueError):
            pass  # the car bus is a convenience: the unlock has happened

    def _remember(self, session, pub, granted):
        # A new Kpersistent (standard, fallback) is kept for an active key, so its
        # next tap can be fast; a refused or inactive key's is not.
        k = session.kpersistent
        if k is None:
            return
        cred = self.keys.get(pub)
        if cred is not None and cred.status == _STATUS_ACTIVE and granted:
            self.keys.set_kpersistent(pub, k)
            self._dirty = True

    # --- documents ---------------------------------------------------------------

    async def _share(self, doc, cred, pub, slot, now, transport, log_kind):
        from carkey.ecu import documents
        from carkey.steps import run_steps

        trusted = self.clock.trusted()
        try:
            steps = documents.accept_share_steps(doc, self.keys, self.identity.group_id, pub, now, trusted)
            code, detail = await run_steps(steps)
        except documents.DocumentError:
            code, detail = codes.DOCUMENT_REFUSED, None
        if code == codes.OK:
            code = self._apply(documents.apply_share, detail)  # committed before the phone hears "accepted"
            if code == codes.OK:
                cred = self.keys.get(pub)
        self._note(now, slot, transport, log_kind, codes.EVENT_SHARE, code)
        return cred, (0 if code == codes.OK else code)

    async def _revocation(self, doc, slot, now, transport, log_kind):
        from carkey.ecu import documents
        from carkey.steps import run_steps

        try:
            code, detail = await run_steps(documents.accept_revocation_steps(doc, self.keys, self.identity.group_id))
        except documents.DocumentError:
            code, detail = codes.DOCUMENT_REFUSED, None
        if code == codes.OK:
            code = self._apply(documents.apply_revocation, detail)  # in effect before anything else happens
        self._note(now, slot, transport, log_kind, codes.EVENT_REVOCATION, code)
        return code

    def _apply(self, apply, detail):
        # An accepted document's change and its commit, or neither: a full list
        # (NO_ROOM) or a failing flash (HARDWARE_FAULT) leaves RAM as on flash.
        try:
            apply(self.keys, detail)
            self.keys.commit()
            return codes.OK
        except KeyStoreError:
            self._rollback()
            return codes.NO_ROOM
        except OSError:
            self._rollback()
            return codes.HARDWARE_FAULT
