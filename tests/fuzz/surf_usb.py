# carkey — fuzz surface "usb": the owner console's request lines on an installed car's USB serial, through the application.
# SPDX-License-Identifier: MIT
#
# An installed car (admin.provision on a state directory) runs carkey.ecu.app.App on
# the virtual board's description; its console task (App._console over
# carkey.ecu.console.serve) reads a stand-in USB serial (a stream polled by asyncio,
# handing out the bytes in pieces with short pauses between them). A case writes
# 1-6 frames: request lines ("#carkey TOKEN challenge", "#carkey TOKEN submit HEX")
# carrying owner-signed, stranger-signed, unsigned and stale requests, damaged as
# text or as the document inside; garbage, oversized lines, the control bytes and
# Python of a tool looking for a REPL; joined by every line ending or none. Every
# 32nd case opens a session and sends a genuine owner request amid garbage, which
# must be served. Every 500th case (and at the end) runs the whole application
# (app.run) in installed mode with the case's bytes on its console and a Ctrl-C
# that gets through at the end: it must reset the board, never reach the REPL.
# Checked: the console task never raises; every complete request line gets exactly
# one answer, in order, with its token, as one JSON line (a line model of
# console.serve says which lines are requests); a request is accepted only if the
# owner signed its document; the key store, the installed flag and the maintenance
# window change only with an accepted owner request; each case ends within its
# deadline; afterwards a plain challenge request is still answered.

import asyncio
import io
import json
import time

import virtual  # the virtual board's description
from car_rig import RadioFreePlatform
from carkey import storage
from carkey.ecu import admin, app, codes, console, documents
from carkey.ecu.car import IDENTITY_RECORD
from carkey.protocol.identity import ReaderIdentity

import campaign_rig
from fuzzlib import mutate
from surf_apdu import _keypair, authority

_MAX_LINE = 1200  # console._MAX_LINE: a longer line is dropped whole
_SEED_SERIAL = 0x40000000  # seeds' documents, far above the owner's floor: damage reaches the signature
_GENUINE_SERIAL = 0x50000000  # genuine documents, above every seed's
_REQUEST_MS = 3000  # one request answered (a signature check: tens of ms here, about a second on an ESP32)
DEADLINE_SLACK_MS = 2000  # a loaded host deschedules the process now and then: not a hang
ENDINGS = (b"\r\n", b"\n", b"\r", b"\r\r\n", b"\n\n", b"")
REPL_BYTES = (
    b"\r\x03\x03", b"\x03", b"\x01", b"\x02", b"\x04", b"\x05A\x01", b"\r\x01\x05A\x01",
    b"import os; print(os.listdir('/state'))",
    b"from carkey.ecu import admin; admin.enroll('/state', bytes(65), 1)",
    b"print(open('/state/identity.a','rb').read())",
    b"#carkey", b"#carkey ", b"# carkey t challenge", b"#CARKEY t challenge", b"#carkey t bogus",
    b"#carkey t submit zz", b"#carkey t submit", b"#carkey t submit e4 e4", b"#carkey t challenge extra",
    b"#carkey 0123456789abcdefX challenge", b"#carkey \xc3 challenge", b"#carkey t\xff submit e400",
)


class _Serial(io.IOBase):
    """The USB serial as the console reads it: `data` handed out in pieces, their
    (size, pause ms) taken from `pieces` in turn (cycled), the next piece readable only
    once the pause is over; then the end (b"") or, with interrupt=True, a
    KeyboardInterrupt: a Ctrl-C the application failed to stop."""

    def __init__(self, data, pieces, interrupt=False):
        self.data = data
        self.pieces = pieces
        self.interrupt = interrupt
        self.ready_at = time.ticks_ms()
        self.at = 0  # next byte of data
        self.piece = 0  # which entry of pieces the current piece follows
        self.left = pieces[0][0]  # bytes left in the current piece

    def ioctl(self, req, arg):
        if req == 3:  # MP_STREAM_POLL
            return arg & 1 if time.ticks_diff(time.ticks_ms(), self.ready_at) >= 0 else 0
        return 0

    def read(self, n=-1):
        if self.at >= len(self.data):
            if self.interrupt:
                raise KeyboardInterrupt
            return b""
        if n < 0 or n > self.left:
            n = self.left
        out = self.data[self.at:self.at + n]
        self.at += len(out)
        self.left -= len(out)
        if not self.left:
            size, pause = self.pieces[self.piece % len(self.pieces)]
            self.piece += 1
            self.left = self.pieces[self.piece % len(self.pieces)][0]
            self.ready_at = time.ticks_add(time.ticks_ms(), pause)
        return out


def requests(data):
    """The model of console.serve + console.answer: the tokens of the request lines in
    `data` that must be answered, in order, each with its words (bytes)."""
    out = []
    line = bytearray()
    dropping = False
    for b in data:
        if b in (10, 13):
            if line and not dropping:
                words = _request_words(bytes(line))
                if words is not None:
                    out.append(words)
            line = bytearray()
            dropping = False
        elif b < 0x20 and b != 9:
            line = bytearray()
            dropping = False
        elif not dropping:
            line.append(b)
            if len(line) > _MAX_LINE:
                line = bytearray()
                dropping = True
    return out


def _request_words(line):
    if not line.startswith(b"#carkey "):
        return None
    words = line[8:].split()
    if not words or len(words[0]) > 16:
        return None
    try:
        words[0].decode()
    except ValueError:
        return None
    return words


class _Platform(RadioFreePlatform):
    # It records what app.run asks of it: interrupt character, resets, maintenance windows.
    def __init__(self, dir):
        super().__init__(dir)
        self.stream = None
        self.intr = []
        self.resets = 0
        self.maintenance_calls = 0
        self.failed = []

    def console(self):
        return self.stream

    def task_failed(self, name, exc):
        self.failed.append("%s: %r" % (name, exc))

    def kbd_intr(self, char):
        self.intr.append(char)

    def reset(self):
        self.resets += 1
        raise _Reset()

    def maintenance(self, watchdog, seconds):
        self.maintenance_calls += 1


class _Reset(Exception):
    pass


class World:
    def __init__(self, dir, rng):
        import os

        self.dir = dir
        ident = ReaderIdentity.from_private(rng.bytes(32), rng.bytes(16), rng.bytes(16))
        storage.save(dir, IDENTITY_RECORD, ident.to_bytes())
        self.group = ident.group_id
        self.owner = _keypair(rng)
        self.friend = _keypair(rng)
        self.stranger = _keypair(rng)
        campaign_rig.provision(dir, self.owner[1])
        assert admin.installed(dir)
        self.body_dir = dir + "/body"
        os.mkdir(self.body_dir)
        self.platform = _Platform(self.body_dir)
        self.app = app.App(virtual, self.platform, dir)
        self.app._start_car()
        # The documents' times come from the campaign's fixed clock, not the host's, so a
        # seed is the same bytes in every run and a corpus entry meets its own seed.
        self.now = campaign_rig.NOW
        self.signed = set()
        self.whole_runs = 0
        g = self.group
        slot = _slot(self.friend[1])
        stale = self.open_session()  # the seeds' admin requests are signed over this one: stale once it ends
        owner, stranger, friend = self.owner, self.stranger, self.friend

        def admin_doc(signer, number, op, arg):
            return self.sign(documents.ADMIN_TAG, documents.admin_body(g, number, op, arg, stale), signer)

        # (kind, document): what the frames carry.
        self.docs = (
            ("share", self.sign(documents.SHARE_TAG, documents.share_body(
                g, friend[1], codes.ROLE_DRIVER, 0x7F, 0, 0, b"", 0, _SEED_SERIAL), owner)),
            ("share-guest", self.sign(documents.SHARE_TAG, documents.share_body(
                g, friend[1], codes.ROLE_GUEST, 0x03, self.now - 10, self.now + 86400, b"\x7f\x00\x00\x05\xa0", 5,
                _SEED_SERIAL + 1), owner)),
            ("suspend", self.sign(documents.REVOCATION_TAG, documents.revocation_body(
                g, slot, _SEED_SERIAL + 2, codes.ACTION_SUSPEND), owner)),
            ("revoke-owner", self.sign(documents.REVOCATION_TAG, documents.revocation_body(
                g, _slot(owner[1]), _SEED_SERIAL + 3, codes.ACTION_REVOKE), stranger)),
            ("stale-list", admin_doc(owner, 1, codes.ADMIN_LIST_KEYS, bytes(1))),
            ("stale-maintenance", admin_doc(owner, 2, codes.ADMIN_MAINTENANCE, (600).to_bytes(2, "big"))),
            ("stale-clock", admin_doc(owner, 3, codes.ADMIN_SET_CLOCK, (self.now + 60).to_bytes(4, "big"))),
            ("stranger-share", self.sign(documents.SHARE_TAG, documents.share_body(
                g, stranger[1], codes.ROLE_OWNER, 0xFF, 0, 0, b"", 0, _SEED_SERIAL + 4), stranger)),
            ("stranger-maintenance", admin_doc(stranger, 1, codes.ADMIN_MAINTENANCE, (3600).to_bytes(2, "big"))),
            ("friend-list", admin_doc(friend, 1, codes.ADMIN_LIST_KEYS, bytes(1))),
        )
        # Only the owner's signature counts: a document signed by anyone else is never
        # "signed" for the property, however well formed.
        self.signed = {doc for doc in self.signed if doc[-65:] == owner[1]}
        unsigned = bytearray(self.docs[0][1])
        unsigned[-67 - 64:-67] = bytes(64)  # the share with its signature zeroed (...9E 40 sig 5A 41 pub)
        self.docs += (("unsigned-share", bytes(unsigned)),)
        # The friend enrolled by a genuine share over the console, so the genuine
        # suspends and resumes that follow always name a key the car knows.
        self.serial = 7  # the next genuine request is a share (n % 8 == 0)
        line, _ = self.genuine(None)
        assert _answers(self.serve(line + b"\r\n"))[0][1]["result"]["result"] == codes.OK
        self.session = self.open_session()  # the seeds' session ends here: their admin requests are stale
        self.authority = self.state()

    def sign(self, tag, body, signer=None):
        priv, pub = signer or self.owner
        doc = documents.sign(tag, body, priv, pub)
        self.signed.add(doc)
        return doc

    def state(self):
        return (authority(self.dir), admin.installed(self.dir))

    def open_session(self):
        out = self.serve(b"#carkey open challenge\r\n")
        reply = _answers(out)[0][1]
        return bytes.fromhex(reply["result"]["challenge"])

    def serve(self, data, pieces=((1 << 20, 0),)):
        """Run the application's console task on `data`; its output lines."""
        out = _Lines()
        asyncio.run(self.app._console(_Serial(data, pieces), out))
        return out.end()

    def genuine(self, rng):
        """(request line, kind) of a genuine owner request for the session just opened."""
        self.serial += 1
        n = self.serial
        g = self.group
        which = n % 8
        if which in (0, 4):
            doc = self.sign(documents.SHARE_TAG, documents.share_body(
                g, self.friend[1], codes.ROLE_DRIVER, 0x7F, 0, 0, b"", 0, _GENUINE_SERIAL + n))
            kind = "share"
        elif which in (1, 5):
            action = codes.ACTION_SUSPEND if which == 1 else codes.ACTION_RESUME
            doc = self.sign(documents.REVOCATION_TAG, documents.revocation_body(
                g, _slot(self.friend[1]), _GENUINE_SERIAL + n, action))
            kind = "suspend" if which == 1 else "resume"
        else:
            op, arg, kind = {
                2: (codes.ADMIN_LIST_KEYS, bytes(1), "list"),
                3: (codes.ADMIN_EXPORT_LOG, bytes(4), "log"),
                6: (codes.ADMIN_SET_CLOCK, (self.now + 60 * n).to_bytes(4, "big"), "clock"),
                7: (codes.ADMIN_MAINTENANCE, (60).to_bytes(2, "big"), "maintenance"),
            }[which]
            if op == codes.ADMIN_MAINTENANCE and n % 16 != 7:
                op, arg, kind = codes.ADMIN_EXPORT_STRANGERS, bytes(4), "strangers"
            doc = self.sign(documents.ADMIN_TAG, documents.admin_body(g, 1, op, arg, self.session))
        return b"#carkey g%d submit %s" % (n % 1000, doc.hex().encode()), kind


def _slot(pub):
    import hashlib

    return hashlib.sha1(pub).digest()[:8]


class _Lines(io.IOBase):
    # The console's output as it writes it, kept a line at a time: a board's console
    # holds nothing, and one growing buffer of several key lists (~12 KB each) would
    # need ever larger blocks of the harness's heap.
    def __init__(self):
        self.lines = []
        self.part = []

    def write(self, s):
        # console.answer writes str; json.dump, through the stream protocol, bytes.
        s = s.encode() if isinstance(s, str) else bytes(s)
        n = len(s)
        while b"\r\n" in s:
            head, s = s.split(b"\r\n", 1)
            self.part.append(head)
            self.lines.append(b"".join(self.part).decode())
            self.part = []
        if s:
            self.part.append(s)
        return n

    def end(self):
        if self.part:
            self.lines.append(None)  # output not ended by a line end
        return self.lines


def _answers(lines):
    """[(token, reply dict)] of the console's output lines; raises ValueError on
    anything that is not one answer line."""
    out = []
    for line in lines:
        if line is None:
            raise ValueError("output does not end with a line end")
        if not line.startswith(console.MARK):
            raise ValueError("not an answer line: %r" % line[:80])
        token, _, body = line[len(console.MARK):].partition(" ")
        reply = json.loads(body)
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            raise ValueError("not an answer: %r" % line[:80])
        out.append((token, reply))
    return out


def _garbage(rng):
    what = rng.below(6)
    if what == 0:
        return rng.bytes(rng.below(64))
    if what == 1:
        n = _MAX_LINE + 1 + rng.below(400)  # oversized: dropped whole
        return (b"#carkey big submit " + b"e2" * n)[:n]
    if what == 2:
        n = _MAX_LINE - rng.below(3)  # at the edge: kept
        return (b"#carkey edge submit " + b"e4" * n)[:n]
    return rng.choice(REPL_BYTES)


def _frame(world, rng):
    """(kind, bytes) of one frame, without its line end."""
    r = rng.below(16)
    if r < 2:
        return "garbage", _garbage(rng)
    if r == 2:
        return "challenge", b"#carkey c%d challenge" % rng.below(100)
    kind, doc = rng.choice(world.docs)
    if r < 8:
        # The document damaged, the frame intact: damage reaches the parsers and the signature.
        doc = mutate(rng, doc)
        kind += "/doc"
    line = b"#carkey t%d submit %s" % (rng.below(1000), doc.hex().encode())
    if r < 12 and r >= 8:
        line = mutate(rng, line)  # the frame itself damaged
        kind += "/frame"
    elif r == 12:
        line = line[:rng.below(len(line) + 1)]
        kind += "/cut"
    elif r == 13:
        sep = rng.choice((b"\t", b"  ", b" \t "))
        line = line.replace(b" ", sep)
        kind += "/spaces"
    return kind, line


def _pieces(rng, n):
    """(size, pause ms) of the pieces a host writes, used in turn."""
    mode = rng.below(4)
    if mode == 0:
        return ((max(1, n), 0),)  # all at once
    if mode == 1:
        return ((1, 0),)  # a byte at a time
    return tuple((1 + rng.below(64 if mode == 2 else 600), rng.below(3)) for _ in range(1 + rng.below(16)))


def run_case(world, rng, report, case, entry=None):
    genuine = entry is None and case % 32 == 31
    frames = []
    if entry is not None:
        data = entry
        kinds = "corpus"
    elif world.pool and rng.chance(1, 4):
        # Guidance: a stream that once reached a new class, damaged again.
        data = mutate(rng, rng.choice(world.pool))
        kinds = "pool"
    else:
        for _ in range(1 + rng.below(6)):
            frames.append(_frame(world, rng))
        data = b"".join(f + rng.choice(ENDINGS) for _, f in frames)
        if rng.chance(1, 2):
            data += b"\r\n"  # most hosts end their last line
        kinds = frames[0][0]
    want = requests(data)
    genuine_kind = None
    if genuine:
        world.session = world.open_session()
        line, genuine_kind = world.genuine(rng)
        garbage = [_garbage(rng) for _ in range(rng.below(3))]
        data = b"".join(g + b"\r\n" for g in garbage) + line + b"\r\n" + b"\r\n".join(
            _garbage(rng) for _ in range(rng.below(2)))
        want = requests(data)
        kinds = "genuine-" + genuine_kind
    before = world.state()
    t0 = time.ticks_ms()
    try:
        text = world.serve(data, _pieces(rng, len(data)))
    except Exception as e:
        report.violation(case, "the console task raised %r" % e, data)
        text = []
        want = []
    ms = time.ticks_diff(time.ticks_ms(), t0)
    report.timed(ms)
    if ms > _REQUEST_MS * len(want) + DEADLINE_SLACK_MS:
        report.violation(case, "%d request(s) took %d ms" % (len(want), ms), data)
    try:
        got = _answers(text)
    except ValueError as e:
        report.violation(case, str(e), data)
        got = []
    if [t for t, _ in got] != [w[0].decode() for w in want]:
        report.violation(case, "answered %r, the line model expects %r" % (
            [t for t, _ in got][:8], [w[0] for w in want][:8]), data)
    classes = []
    accepted_change = False
    maintenance = False
    for (token, reply), words in zip(got, want):
        cls = _class(reply, words)
        classes.append(cls)
        result = reply.get("result")
        if reply["ok"] and len(words) == 3 and isinstance(result, dict) and result.get("result") == codes.OK:
            try:
                doc = bytes.fromhex(words[2].decode())
            except ValueError:
                doc = None
            if doc not in world.signed:
                report.violation(case, "accepted a request the owner did not sign", data)
            elif doc[0] in (documents.SHARE_TAG, documents.REVOCATION_TAG):
                accepted_change = True
            elif "maintenance_s" in result:
                maintenance = True
    if genuine and not (got and got[-1][1]["ok"] and got[-1][1]["result"].get("result") == codes.OK):
        report.violation(case, "a genuine owner request (%s) was not served: %r" % (
            genuine_kind, got[-1][1] if got else None), data)
    after = world.state()
    if after != before:
        if not accepted_change or after[1] != before[1]:
            report.violation(case, "the car's state changed without an accepted owner document", data)
    a = world.app
    if a.stop.is_set() or a.maintenance_s:
        if not maintenance:  # an accepted maintenance request the owner signed (checked above)
            report.violation(case, "the console stopped the application for a REPL without an owner's request", data)
        a.stop = asyncio.Event()
        a.maintenance_s = 0
    elif maintenance:
        report.violation(case, "an accepted maintenance request did not stop the application", data)
    # The console still serves a good request.
    try:
        reply = _answers(world.serve(b"#carkey after challenge\r\n"))
        if not (reply and reply[0][0] == "after" and reply[0][1]["ok"]):
            report.violation(case, "no answer to a challenge after the case: %r" % reply, data)
    except Exception as e:
        report.violation(case, "a challenge after the case failed: %r" % e, data)
    if not case % 500 and entry is None:
        whole_run(world, data, report, case)
    # The class: what the first frame was, how its first request was judged, and how
    # many requests the case carried (the combinations of several would explode).
    count = "none" if not classes else "one" if len(classes) == 1 else "several"
    key = "%s|%s|%s" % (kinds, classes[0] if classes else "-", count)
    # Inputs of up to 512 bytes join the pool and the corpus (longer ones any seed makes again).
    report.outcome(key, None if genuine or len(data) > 512 else data)


def _class(reply, words):
    if not reply["ok"]:
        err = reply["error"]
        cut = len(err)
        for i, ch in enumerate(err):
            if ch in "0123456789(":
                cut = i
                break
        return "E:" + err[:min(cut, 48)].strip()
    result = reply["result"]
    if "challenge" in result:
        return "challenge"
    return "r%02x" % result.get("result", 0xFF)


def whole_run(world, data, report, case):
    """app.run in installed mode with `data` on the console and a Ctrl-C at the end:
    the board must be reset, the REPL must stay closed, no task may fail."""
    p = world.platform
    p.stream = _Serial(data, ((max(1, len(data)), 0),), interrupt=True)
    p.intr, p.resets, p.maintenance_calls, p.failed = [], 0, 0, []
    world.whole_runs += 1
    try:
        app.run(virtual, p, world.dir)
        report.violation(case, "app.run returned (the REPL would follow) in installed mode", data)
    except _Reset:
        pass
    except BaseException as e:  # noqa: B036 - anything but the reset reaches the REPL
        report.violation(case, "app.run let %r out in installed mode" % e, data)
    if p.intr != [-1] or p.resets != 1 or p.maintenance_calls:
        report.violation(case, "installed run: interrupt char %r, %d resets, %d maintenance windows" % (
            p.intr, p.resets, p.maintenance_calls), data)
    if p.failed:
        report.violation(case, "a task failed in the installed run: %s" % p.failed[0], data)
    admin.take_maintenance()
    # The interrupt left that application's tasks queued (a board resets here): a fresh
    # loop drops them, so they neither run in later cases nor hold their heap.
    asyncio.new_event_loop()


def final_check(world, report):
    whole_run(world, b"#carkey x challenge\r\n\x03\x03\r\x01", report, -1)
    world.session = world.open_session()
    line, kind = world.genuine(None)
    got = _answers(world.serve(line + b"\r\n"))
    if not (got and got[0][1]["ok"] and got[0][1]["result"].get("result") == codes.OK):
        report.violation(-1, "a genuine owner request (%s) refused after the campaign: %r" % (kind, got))
    report.hist["(whole application runs)"] = world.whole_runs
