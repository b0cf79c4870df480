# carkey — the virtual fob: the key fob firmware's operations over a state directory, served to the host.
# SPDX-License-Identifier: MIT
#
# The handler the firmware-side server (carkey_host/mpy/serve.py) loads as `vfob`, with
# boards/ and boards/virtual_hw on the path; carkey_host.vfob.VirtualFob sends it requests.
# Hex for bytes; "state" is the fob's state directory in every request:
#   {"op": "init", "state": DIR}                         a new credential, made here
#   {"op": "identity", "state": DIR}                     {"credential_public_key": HEX65, "cars": [...]}
#   {"op": "trust", "state": DIR, "group_id": HEX16, "reader_public_key": HEX65}
#   {"op": "serve", "state": DIR, "host": H, "port": P, "framing": "raw"|"lp",
#    "connections": N|null, "command": ID}               answers readers over TCP
#   {"op": "import_share", "state": DIR, "group_id": HEX16, "reader_public_key": HEX65, "document": HEX}
#   {"op": "press", "state": DIR, "command": "unlock"|"lock"|"trunk"}
#                                                        one press over the virtual air (CARKEY_AIR):
#                                                        {"command", "outcome", "kind", "granted", "result", "signal", ...}
# serve streams an event {"listening": [H, P]} once, then per connection {"connection": N,
# "how", "kind", "granted", "result", "new_kpersistent"}.

import asyncio

from carkey import storage
from carkey.fob.state import FobState, FobStateError

# The fob's own errors (bad input, a state it cannot work on); anything else is a firmware fault.
EXPECTED = (FobStateError, storage.StorageError)


def _unhex(value, what, n):
    try:
        b = bytes.fromhex(value)
    except (TypeError, ValueError):
        raise FobStateError("%s is not hex" % what)
    if len(b) != n:
        raise FobStateError("%s is %d bytes, not %d" % (what, n, len(b)))
    return b


def _txn_line(n, how, txn, req):
    cf = txn.control_flow if txn is not None else None
    return {"connection": n, "how": how, "kind": txn.kind if txn is not None else None,
            "granted": cf is not None and cf[0] == 1, "result": req.result if req.result >= 0 else None,
            "new_kpersistent": bool(txn is not None and txn.new_kpersistent)}


def _serve(st, req, emit):
    from carkey.fob.client import Request
    from carkey.fob.device import UserDevice
    from carkey.fob.serve_tcp import serve

    st.credential()  # a clear error now rather than at the first reader
    conv = Request(req.get("command", 2))
    device = UserDevice(st, on_exchange=conv.on_exchange)

    def on_connection(n, how, txn):
        line = _txn_line(n, how, txn, conv)
        if txn is not None and txn.kind is not None:
            st.count(line["granted"])
        conv.reset()
        emit(line)

    asyncio.run(serve(device, req["host"], req["port"], req["framing"], req.get("connections"), on_connection,
                      lambda: emit({"listening": [req["host"], req["port"]]})))
    return {}


def handle(req, emit):
    op = req.get("op")
    dir = req.get("state")
    if not isinstance(dir, str) or not dir:
        raise FobStateError("no state directory")
    st = FobState(dir)
    if op == "init":
        return {"credential_public_key": st.create_credential().hex()}
    if op == "identity":
        return {"credential_public_key": st.public_key().hex(),
                "cars": [{"group_id": g.hex(), "reader_public_key": p.hex()} for g, p in st.cars()],
                "counters": list(st.counters())}
    if op == "trust":
        gid = _unhex(req.get("group_id"), "group id", 16)
        st.trust(gid, _unhex(req.get("reader_public_key"), "reader public key", 65))
        return {"group_id": gid.hex()}
    if op == "serve":
        return _serve(st, req, emit)
    if op == "import_share":
        from carkey.fob import provision

        _unhex(req.get("group_id"), "group id", 16)
        _unhex(req.get("reader_public_key"), "reader public key", 65)
        return provision.import_share(None, req["group_id"], req["reader_public_key"], req.get("document", ""), dir)
    if op == "press":
        import virtual_fob
        from virtual_hw.fob_platform import VirtualFobPlatform

        from carkey.fob import app

        return app.press_once(virtual_fob, req.get("command"), VirtualFobPlatform(dir), dir)
    raise FobStateError("unknown operation %r" % op)
