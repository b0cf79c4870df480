# carkey — runs the firmware reader as a BLE GATT peripheral on the virtual air; one event per happening.
# SPDX-License-Identifier: MIT
#
# The handler the firmware-side server (serve.py, beside this file) loads as `ble_reader`,
# with CARKEY_AIR=HOST:PORT and the firmware and the virtual board's `bluetooth` on
# MICROPYPATH; carkey_host.ble_car.CarProcess runs it so. One op, "run" (hex for bytes):
#   {"op": "run", "identity": <ReaderIdentity.to_bytes()>, "credentials": [{"pub": .., "kpersistent": ..|null}],
#    "transactions": N, "exchange": [<plaintext>, ...], "timeout_ms": 3000,
#    "chunk_timeout_ms": 1000, "max_connections": 4, "mtu": 247,
#    "hold_until_full_ms": 0, "passive_entry": null|{"interval_ms", "lost_ms"}, "actions": 0}
# Streams the events {"ready": name} once advertising, then per transaction {"conn", "kind",
# "known", "replies", "mtu", "indications", "writes", "bytes_out", "bytes_in", "ms"}
# or {"conn", "error", "message"}; replies {"done": ..} after N transactions.
# passive_entry: after a granted transaction the car watches that phone's
# address and streams {"action": 1 lock | 2 unlock, "rssi"}; "done" then also
# waits for `actions` of them.
# hold_until_full_ms: the first max_connections handlers wait until every slot
# is taken, then hold that long, so a test can knock on a full car.

import asyncio
import time

from carkey.hw import ble_gatt
from carkey.protocol.reader import PrecomputePool, Reader, ReaderIdentity

from credential_list import Cred, Credentials


def _hex(b):
    return None if b is None else bytes(b).hex()


async def main(spec, emit):
    identity = ReaderIdentity.from_bytes(bytes.fromhex(spec["identity"]))
    creds = Credentials([Cred(bytes.fromhex(c["pub"]), c.get("kpersistent") and bytes.fromhex(c["kpersistent"]))
                             for c in spec["credentials"]])
    pool = PrecomputePool(ephemerals=1, nonces=1)
    reader = Reader(identity, pool, timeout_ms=spec.get("timeout_ms", 3000))
    server = ble_gatt.BleServer(ble_gatt.device_name(identity.group_id),
                                max_connections=spec.get("max_connections", ble_gatt.MAX_CONNECTIONS),
                                mtu=spec.get("mtu", ble_gatt.PREFERRED_MTU),
                                chunk_timeout_ms=spec.get("chunk_timeout_ms", 1000))
    server.start()
    emit({"ready": server.name})
    total = spec["transactions"]
    state = {"n": 0, "started": 0, "actions": 0}
    done = asyncio.Event()
    pe = spec.get("passive_entry")
    watch = None

    def finished():
        return state["n"] >= total and state["actions"] >= spec.get("actions", 0)

    if pe:
        # Loaded only when used, as the ECU would: they cost heap.
        from carkey.ecu.proximity import PassiveEntry, Proximity
        from carkey.hw.ble_watch import ProximityWatch

        watch = ProximityWatch(server, PassiveEntry(Proximity(lost_ms=pe.get("lost_ms", 3000)), enabled=True),
                               pe.get("interval_ms", 1000))

        async def on_action(action):
            state["actions"] += 1
            emit({"action": action, "rssi": watch.entry.proximity.rssi()})
            if finished():
                done.set()

        asyncio.create_task(watch.run(on_action))
    busy = asyncio.Lock()  # one transaction's crypto at a time, as on one core

    async def handler(link):
        hold = spec.get("hold_until_full_ms", 0)
        state["started"] += 1
        if hold and state["started"] <= len(server.links):  # the first full house only
            while server.free_slots() and link.connected:
                await asyncio.sleep_ms(5)
            await asyncio.sleep_ms(hold)
        async with busy:
            pool.fill_now()
            start = time.ticks_ms()
            out = {"conn": link.conn}
            try:
                session = await ble_gatt.transact(reader, link, creds)
                replies = []
                for text in spec.get("exchange", ()):
                    replies.append(_hex(await session.exchange(bytes.fromhex(text))))
                await session.end(spec.get("granted", True))
                if session.known and session.kpersistent is not None:
                    session.credential.kpersistent = session.kpersistent
                out.update(kind=session.kind, known=session.known, replies=replies)
                if watch is not None and spec.get("granted", True) and session.known:
                    # As the ECU (carkey.ecu.app): the watched phone's next transaction is
                    # the proof an approach needs; another phone starts a new watch.
                    if session.credential_pub == state.get("watched"):
                        watch.follow(link.addr)
                        action = watch.entry.transaction(time.ticks_ms())
                        if action is not None:
                            await on_action(action)
                    else:
                        state["watched"] = session.credential_pub
                        watch.watch(link.addr)
            except Exception as e:
                out.update(error=type(e).__name__, message=str(e))
            out.update(mtu=link.mtu, indications=link.indications, writes=link.writes,
                       bytes_out=link.bytes_out, bytes_in=link.bytes_in, ms=time.ticks_diff(time.ticks_ms(), start))
            emit(out)
        state["n"] += 1
        if finished():
            done.set()

    task = asyncio.create_task(server.serve(handler))
    await done.wait()
    # Let the last disconnect reach the stack and the slot be offered again.
    for _ in range(200):
        if server.free_slots() == len(server.links) and server.advertising:
            break
        await asyncio.sleep_ms(5)
    task.cancel()
    return {"done": state["n"], "refused": server.refused, "free": server.free_slots(),
            "advertising": server.advertising}


def handle(request, emit):
    if request.get("op") != "run":
        raise ValueError("unknown op %r" % request.get("op"))
    return asyncio.run(main(request, emit))
