# carkey — drives the firmware PN532 driver over a pty (virtual board UART) for host tests.
# SPDX-License-Identifier: MIT
#
# Called through carkey_host.runner.Firmware: attach(path) makes one driver on the tty the
# PN532 stand-in offers; the other functions run one driver or link operation each
# with asyncio.run and return plain values (exceptions travel back by class name).

import asyncio
import json
import time

from carkey.hw.nfc_link import NfcLink, poll as _poll
from carkey.hw.pn532 import Pn532
from carkey.hw.pn532_hsu import UartTransport
from virtual_hw.uart import PtyUART

_state = {}


def attach(path, ack_timeout_ms=50):
    close()
    uart = PtyUART(path)
    _state["uart"] = uart
    _state["pn532"] = Pn532(UartTransport(uart), ack_timeout_ms=ack_timeout_ms)
    return True


def close():
    uart = _state.pop("uart", None)
    _state.clear()
    if uart is not None:
        uart.deinit()


def begin(timeout_ms=500):
    return list(asyncio.run(_state["pn532"].begin(timeout_ms)))


def recover():
    return list(asyncio.run(_state["pn532"].recover()))


def recoveries():
    return _state["pn532"].recoveries


def call(cmd, params, timeout_ms=500):
    return bytes(asyncio.run(_state["pn532"].call(cmd, b"", params, timeout_ms)))


def _target_dict(t):
    return {"tg": t.tg, "atqa": t.atqa, "sak": t.sak, "uid": t.uid, "ats": t.ats, "iso_dep": t.iso_dep}


def list_target(timeout_ms=1000):
    t = asyncio.run(_state["pn532"].list_target(timeout_ms))
    if t is None:
        _state.pop("link", None)
        return None
    _state["link"] = NfcLink(_state["pn532"], t)
    return _target_dict(t)


def send_ecp(frame):
    asyncio.run(_state["pn532"].send_ecp(frame))
    return True


def transceive(capdu, timeout_ms=1000):
    return asyncio.run(_state["link"].transceive(capdu, timeout_ms))


def exchange_raw(data, timeout_ms=1000):
    # The driver's InDataExchange without the link's APDU length limits.
    out = bytearray(1024)
    n = asyncio.run(_state["pn532"].exchange(1, data, out, timeout_ms))
    return bytes(out[:n])


def release():
    asyncio.run(_state["pn532"].release(1))
    return True


def poll(taps, select_apdu, ecp=None, stop_after_ms=10000):
    # The poll loop serving `taps` taps; on each, one APDU; returns what it saw.
    seen = []

    async def on_target(link, target):
        t0 = time.ticks_ms()
        r = await link.transceive(select_apdu, 1000)
        seen.append({"uid": target.uid, "rapdu": r, "ms": time.ticks_diff(time.ticks_ms(), t0)})

    async def main():
        stop = asyncio.Event()

        async def guard():
            await asyncio.sleep_ms(stop_after_ms)
            stop.set()

        g = asyncio.create_task(guard())
        st = await _poll(_state["pn532"], on_target, ecp=ecp, idle_ms=5, stop=stop, max_taps=taps)
        g.cancel()
        return st

    st = asyncio.run(main())
    return {"seen": seen, "taps": st.taps, "skipped": st.skipped, "errors": st.errors,
            "failed_taps": st.failed_taps, "polls": st.polls}


def _reader_on(path, spec_json):
    # The firmware reader with the spec's identity and credentials, its driver on the pty.
    from carkey.protocol.reader import PrecomputePool, Reader, ReaderIdentity
    from fakelink import Cred, FakeCredentials

    spec = json.loads(spec_json)
    attach(path)
    identity = ReaderIdentity.from_bytes(bytes.fromhex(spec["identity"]))
    creds = FakeCredentials([Cred(bytes.fromhex(c["pub"]), None) for c in spec["credentials"]])
    pool = PrecomputePool(ephemerals=1, nonces=1)
    reader = Reader(identity, pool, timeout_ms=spec.get("timeout_ms", 3000))
    return spec, _state["pn532"], creds, pool, reader


def reader_taps(path, spec_json):
    # The firmware reader over the NFC link, one tap per entry of spec["taps"]
    # (list target, Reader.transact, exchanges, end, release); see reader_client.py.
    from carkey.protocol.reader import KEY_SLOT_MODE, PUBLIC_KEY_MODE
    import gc

    spec, pn532, creds, pool, reader = _reader_on(path, spec_json)
    out = []

    async def tap(t):
        target = await pn532.list_target()
        if target is None:
            return {"error": "no target"}
        link = NfcLink(pn532, target)
        start = time.ticks_us()
        try:
            session = await reader.transact(link, creds, t.get("fast"),
                                            KEY_SLOT_MODE if t.get("slot") else PUBLIC_KEY_MODE)
            replies = []
            for text in t.get("exchange", ()):
                replies.append((await session.exchange(bytes.fromhex(text))).hex())
            await session.end(t.get("granted", True))
        except Exception as e:
            return {"error": type(e).__name__, "message": str(e)}
        ms = time.ticks_diff(time.ticks_us(), start) / 1000
        if link.failed is None:
            await pn532.release(target.tg)
        if session.known and session.kpersistent is not None:
            session.credential.kpersistent = session.kpersistent
        return {"kind": session.kind, "known": session.known, "replies": replies, "ms": ms,
                "commands": link.commands}

    asyncio.run(pn532.begin())
    for t in spec["taps"]:
        pool.fill_now()
        gc.collect()
        out.append(asyncio.run(tap(t)))
    close()
    return out


def reader_poll(path, spec_json):
    # The ECU's shape: poll() with ECP finds the phone and runs Reader.transact in
    # on_target for spec["taps"] taps; returns one entry per tap and the poll stats.
    from carkey.hw.pn532 import ecp_access_frame
    from carkey.protocol.errors import TransactionError

    spec, pn532, creds, pool, reader = _reader_on(path, spec_json)
    taps = []

    async def on_target(link, target):
        pool.fill_now()
        try:
            session = await reader.transact(link, creds)
            for text in spec.get("exchange", ()):
                await session.exchange(bytes.fromhex(text))
            await session.end(True)
        except TransactionError as e:
            taps.append({"error": type(e).__name__, "message": str(e)})
            raise
        if session.known and session.kpersistent is not None:
            session.credential.kpersistent = session.kpersistent
        taps.append({"kind": session.kind, "uid": target.uid.hex()})

    ecp = ecp_access_frame(bytes.fromhex(spec["tci"]), bytes.fromhex(spec["identity"])[5:13])
    st = asyncio.run(_poll(pn532, on_target, ecp=ecp, idle_ms=5, max_taps=len(spec["taps"])))
    close()
    return {"taps": taps, "polls": st.polls, "skipped": st.skipped, "errors": st.errors}


def uart_open(path, baudrate=115200, timeout=0):
    close()
    _state["uart"] = PtyUART(path, baudrate, timeout)
    return True


def uart(method, *args):
    # One PtyUART method call; read/readinto results come back as bytes or None.
    u = _state["uart"]
    if method == "readinto":
        buf = bytearray(args[0])
        t0 = time.ticks_ms()
        n = u.readinto(buf)
        return [None if n is None else bytes(buf[:n]), time.ticks_diff(time.ticks_ms(), t0)]
    return getattr(u, method)(*args)
