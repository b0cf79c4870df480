# carkey — the virtual car: the ECU firmware's operations over a state directory, served to the host.
# SPDX-License-Identifier: MIT
#
# The handler the firmware-side server (carkey_host/mpy/serve.py) loads as `vcar`, with
# boards/ and boards/virtual_hw on the path; carkey_host.vcar.VirtualCar sends it requests.
# Hex for bytes; "state" is the car's state directory in every request:
#   {"op": "init", "state": DIR}
#   {"op": "identity", "state": DIR}
#   {"op": "enroll", "state": DIR, "public_key": HEX65, "role": "owner", ...}
#   {"op": "keys" | "log" | "strangers", "state": DIR}
#   {"op": "set_clock", "state": DIR, "time": UNIX}
#   {"op": "provision", "state": DIR, "public_key": HEX65, "time": UNIX}
#   {"op": "submit", "state": DIR, "document": HEX}   (owner-signed share, revocation or admin request)
#   {"op": "challenge", "state": DIR}   opens an admin session: the challenge and identity; the
#        submits that follow in the same process answer it (the session lives in this RAM)
#   {"op": "connect", "state": DIR, "host": H, "port": P, "framing": "raw"|"lp",
#    "sequence": ["standard", "fast", ...]}
#   {"op": "nfc", "state": DIR, "pty": PATH, "taps": N, "place": "door"|"cabin"}  (PN532 on a pty)
#   {"op": "enroll_card", "state": DIR, "uid": HEX7, "role": "driver", ...}
#   {"op": "card_master_key", "state": DIR, "key": HEX16}
# connect and nfc stream an event {"txn": N, "kind", "granted", "ms", "results", "error",
# "state"} per transaction. The car's lock, doors and ignition persist in DIR/car_body.json
# and the car bus stream is appended to DIR/carbus.log.

import asyncio
import gc
import time

from car_body import CarBody

from carkey.ecu import admin
from carkey.ecu.car import NotProvisioned
from carkey.storage import StorageError


# The firmware's own errors: a request it judged and refused (exit 3 on the host), or
# a state it cannot work on; anything else is a firmware fault, reported as such.
REFUSED = (admin.AdminError,)
EXPECTED = (admin.AdminError, NotProvisioned, StorageError)


def _build_car(dir, body, place="door"):
    import virtual

    from carkey.ecu import assembly

    bus = open(dir + "/carbus.log", "ab")
    board, door = assembly.door(virtual, body.pin, lambda name, spec: bus)
    return assembly.car(dir, board, door, place), bus


async def _let_pulses_finish(door, ms):
    # Let pulses started by the last command finish, as a board's ticking does.
    for _ in range(ms // 10):
        door.tick()
        if not door.busy:
            return
        await asyncio.sleep_ms(10)


async def _connect(req, emit):
    from carkey.ecu.auditlog import TRANSPORT_TCP
    from carkey.protocol.errors import LinkError
    from carkey.hw.link_tcp import TcpLink

    dir = req["state"]
    body = CarBody.load(dir + "/car_body.json")
    car, bus = _build_car(dir, body)
    ticker = asyncio.create_task(car.door.run())
    while await car.prepare_tables():  # what the board's idle loop would have done
        pass
    all_granted = True
    try:
        for n, want in enumerate(req["sequence"], 1):
            car.reader.pool.fill_now()  # idle precomputation between taps, outside the timing
            gc.collect()
            start = time.ticks_us()
            try:
                link = await TcpLink.connect(req["host"], req["port"], req["framing"])
            except LinkError as e:
                emit({"txn": n, "kind": None, "granted": False, "ms": 0, "results": [], "error": "connect: %s" % e})
                all_granted = False
                continue
            try:
                outcome = await car.handle(link, TRANSPORT_TCP, fast=(want == "fast"))
            finally:
                await link.close()
            ms = time.ticks_diff(time.ticks_us(), start) / 1000
            car.settle()
            all_granted = all_granted and outcome.granted
            emit({"txn": n, "kind": outcome.kind, "granted": outcome.granted, "ms": ms,
                  "results": outcome.results, "error": outcome.error, "state": bytes(car.door.car_state()).hex()})
        await _let_pulses_finish(car.door, 3000)
    finally:
        ticker.cancel()
        car.flush_log()  # the strangers' counts, as the application does when it stops
        bus.close()
        body.save(dir + "/car_body.json")
    return {"all_granted": all_granted, "pulses": body.pulses()}


async def _nfc(req, emit):
    # Poll the PN532 (its stand-in on a pty) and run each presented phone or card.
    from carkey.ecu.auditlog import TRANSPORT_NFC
    from carkey.hw.nfc_link import poll
    from carkey.hw.pn532 import Pn532
    from carkey.hw.pn532_hsu import UartTransport
    from virtual_hw.uart import PtyUART

    dir = req["state"]
    body = CarBody.load(dir + "/car_body.json")
    car, bus = _build_car(dir, body, req.get("place", "door"))
    ticker = asyncio.create_task(car.door.run())
    uart = PtyUART(req["pty"])
    pn532 = Pn532(UartTransport(uart))
    count = [0]
    all_granted = [True]

    async def on_target(link, target):
        count[0] += 1
        car.reader.pool.fill_now()
        start = time.ticks_us()
        outcome = await car.handle(link, TRANSPORT_NFC, card_uid=bytes(target.uid))
        ms = time.ticks_diff(time.ticks_us(), start) / 1000
        car.settle()
        all_granted[0] = all_granted[0] and outcome.granted
        emit({"txn": count[0], "kind": outcome.kind, "granted": outcome.granted, "ms": ms,
              "results": outcome.results, "error": outcome.error, "state": bytes(car.door.car_state()).hex()})

    try:
        await poll(pn532, on_target, idle_ms=req.get("idle_ms", 20), max_taps=req["taps"])
        await _let_pulses_finish(car.door, 3000)
    finally:
        ticker.cancel()
        car.flush_log()
        uart.deinit()
        bus.close()
        body.save(dir + "/car_body.json")
    return {"all_granted": all_granted[0], "pulses": body.pulses()}


def _unhex(value, what):
    try:
        return bytes.fromhex(value)
    except (TypeError, ValueError):
        raise admin.AdminError("%s is not hex" % what)


def handle(req, emit):
    op = req.get("op")
    dir = req.get("state")
    if not isinstance(dir, str) or not dir:
        raise admin.AdminError("no state directory")
    if op == "init":
        return admin.init(dir)
    if op == "identity":
        return admin.identity(dir)
    if op == "enroll":
        role = admin.ROLES.get(req.get("role"))
        if role is None:
            raise admin.AdminError("role must be one of %s" % ", ".join(admin.ROLES))
        return admin.enroll(
            dir, _unhex(req.get("public_key"), "public key"), role, req.get("entitlements"),
            req.get("not_before", 0), req.get("not_after", 0), req.get("use_limit", 0),
            _unhex(req.get("profile", ""), "profile"), int(time.time()),
        )
    if op == "keys":
        return admin.keys(dir)
    if op == "log":
        return {"records": admin.log(dir, req.get("since", 0))}
    if op == "strangers":
        from carkey.ecu.auditlog import StrangerLog

        return {"records": [{"seq": r[0], "time": r[1], "transport": r[3], "kind": r[4], "command": r[5],
                             "result": r[6], "count": r[7]} for r in StrangerLog(dir).records()]}
    if op == "set_clock":
        return admin.set_clock(dir, req.get("time"))
    if op == "provision":
        return admin.provision(dir, _unhex(req.get("public_key"), "public key"), req.get("time", 0))
    if op == "challenge":
        return admin.challenge(dir)
    if op == "submit":
        return admin.submit(dir, _unhex(req.get("document"), "document"), int(time.time()))
    if op == "connect":
        return asyncio.run(_connect(req, emit))
    if op == "nfc":
        return asyncio.run(_nfc(req, emit))
    if op == "enroll_card":
        role = admin.ROLES.get(req.get("role"))
        if role is None:
            raise admin.AdminError("role must be one of %s" % ", ".join(admin.ROLES))
        return admin.enroll_card(dir, _unhex(req.get("uid"), "card UID"), role, req.get("entitlements"),
                                 when=int(time.time()))
    if op == "card_master_key":
        return admin.set_card_master_key(dir, _unhex(req.get("key"), "card master key"))
    raise admin.AdminError("unknown operation %r" % op)
