# carkey — the key fob's benchmark: its compute per transaction and its imports.
# SPDX-License-Identifier: MIT
#
# Usage: micropython -m carkey.fob.bench --fixture=FILE --state=DIR [--board=NAME] [--runs=N] OP...
# (host_tools/carkey_host/bench_fob.py runs it; never deployed to a fob). Ops:
#   fob_std_txn    the fob's side of a standard transaction: SELECT, AUTH0, AUTH1
#                  (reader signature checked, ECDH, key schedule, credential
#                  signature), EXCHANGE, CONTROL FLOW, Kpersistent written to flash
#   fob_fast_txn   the same for a fast one (cryptogram from Kpersistent, no AUTH1)
#   fob_keygen     the ephemeral key pair, made while the radio scans and connects
#   fob_import     importing the fob application and everything a press loads
#   fob_import_wake  what loads before the radio starts (the app, its platform,
#                  the BLE central, the board config)
#   fob_import_board the board config alone (main.py loads it before the application,
#                  whose loading starts the gesture's timers)
#   fob_import_rest  what loads while the radio connects (the user device and the
#                  crypto under it), after fob_import_wake's modules
#   ref_pidigits   the calibration reference (MicroPython's bm_pidigits, 65 digits)
# The whole application's heap is not measured here but on the virtual fob
# (carkey_host/fob_heap.py, boards/virtual_hw/fob_heap.py): this module and its
# fixture are no part of a fob.
# The transactions replay taps the host recorded against the firmware reader (the
# fixture holds their APDUs and keys), so the reader's signatures verify without a reader here.
# Each op prints one JSON line, measured as carkey.bench measures the car's (median
# time, per-round ratios to the reference timed right before it: the ESP32 estimate's
# basis, and the allocation of one run).

import gc
import json
import sys

from carkey.bench import measure, reference

_files = {}


def _fixture():
    with open(_files["fixture"]) as f:
        fx = json.loads(f.read())
    for k in list(fx):
        v = fx[k]
        if isinstance(v, str):
            fx[k] = bytes.fromhex(v)
        elif isinstance(v, list):
            fx[k] = [bytes.fromhex(x) for x in v]
    return fx


def _fresh_state(fx, kp=None):
    from carkey import storage
    from carkey.fob import state as fobstate

    dir = _files["state"]
    for name in (fobstate.KEY_RECORD, fobstate.CARS_RECORD, fobstate.KP_RECORD, fobstate.COUNT_RECORD):
        storage.remove(dir, name)
    # The records as provisioning leaves them (docs/FOB.md), written directly: a press
    # never loads the provisioning code (carkey.fob.provision), so neither does this.
    storage.save(dir, fobstate.KEY_RECORD, b"CKFK\x01" + fx["cred_priv"] + fx["cred_pub"])
    storage.save(dir, fobstate.CARS_RECORD, b"CKFC\x01\x01" + fx["group"] + fx["reader_pub"])
    st = fobstate.FobState(dir)
    if kp is not None:
        st.set_kpersistent(fx["rid"], kp)
    return st


def _txn(fx, st, which, on_exchange=None):
    import asyncio

    from carkey.fob.device import UserDevice

    eph = (fx[which + "_ud_priv"], fx[which + "_ud_pub"])
    dev = UserDevice(st, on_exchange=on_exchange, signaling_bitmap=fx["bitmap"], ephemeral=lambda: eph)
    out = []
    for c in fx[which + "_capdus"]:
        out.append(asyncio.run(dev.process(c)))
    asyncio.run(dev.process(b"\x80\x3c\x00\x00\x06\x41\x01\x01\x42\x01\x00"))
    if out != fx[which + "_rapdus"]:
        raise AssertionError("the fob's answers differ from the transcript")


def _op_fob_std_txn():
    fx = _fixture()
    holder = {}

    def prepare():
        holder["st"] = _fresh_state(fx)

    return prepare, lambda: _txn(fx, holder["st"], "std")


def _op_fob_fast_txn():
    fx = _fixture()
    st = _fresh_state(fx, fx["kp"])
    return lambda: _txn(fx, st, "fast")


def _op_fob_keygen():
    from carkey.crypto import p256

    return lambda: p256.generate_keypair()


def _forget(prefixes):
    for name in list(sys.modules):
        for p in prefixes:
            if name == p or name.startswith(p + "."):
                del sys.modules[name]


def _import_app():
    # What a press loads: the application, its platform, the BLE central, the device, the envelope.
    from carkey.fob import app, client, device, signals  # noqa: F401
    from carkey.hw import ble_central, fob_platform  # noqa: F401

    return app


def _import_wake():
    # What carkey.fob.app has loaded when it starts the radio (start_visit).
    from carkey.fob import app  # noqa: F401
    from carkey.hw import ble_central, ble_ids, fob_platform  # noqa: F401

    __import__(_files["board"])


def _import_rest():
    # What FobApp._visit loads while the radio connects (the LED's code, carkey.fob.signals,
    # loads after the transaction).
    from carkey.fob import device  # noqa: F401


def _stub_bluetooth():
    # The board's `bluetooth` is C: nothing of it sits in the MicroPython heap. This
    # stand-in only has to let the modules import and build their objects.
    if "bluetooth" in sys.modules:
        return

    class UUID:
        def __init__(self, value):
            self._b = str(value).encode()

        def __bytes__(self):
            return self._b

        def __eq__(self, other):
            return isinstance(other, UUID) and other._b == self._b

    class Module:
        pass

    Module.UUID = UUID
    Module.FLAG_READ = 2
    Module.FLAG_WRITE = 8
    Module.FLAG_INDICATE = 32
    sys.modules["bluetooth"] = Module


def _op_fob_import():
    _stub_bluetooth()

    def prepare():
        _forget(("carkey",))
        gc.collect()

    return prepare, _import_app


def _op_fob_import_wake():
    _stub_bluetooth()

    def prepare():
        _forget(("carkey", _files["board"]))
        gc.collect()

    return prepare, _import_wake


def _op_fob_import_board():
    def prepare():
        _forget((_files["board"],))
        gc.collect()

    return prepare, lambda: __import__(_files["board"])


def _op_fob_import_rest():
    _stub_bluetooth()
    _forget(("carkey", _files["board"]))
    _import_wake()
    wake = set(sys.modules)

    def prepare():
        for name in list(sys.modules):  # the rest only: the wake's modules stay, as on the fob
            if name not in wake:
                del sys.modules[name]
                package, _, leaf = name.rpartition(".")
                if package in sys.modules and hasattr(sys.modules[package], leaf):
                    delattr(sys.modules[package], leaf)  # else `from package import leaf` finds it there
        gc.collect()

    return prepare, _import_rest


def _op_ref_pidigits():
    return reference


OPERATIONS = {
    "fob_std_txn": _op_fob_std_txn,
    "fob_fast_txn": _op_fob_fast_txn,
    "fob_keygen": _op_fob_keygen,
    "fob_import": _op_fob_import,
    "fob_import_wake": _op_fob_import_wake,
    "fob_import_rest": _op_fob_import_rest,
    "fob_import_board": _op_fob_import_board,
    "ref_pidigits": _op_ref_pidigits,
}


def main(argv):
    runs = 15
    names = []
    for arg in argv:
        if arg.startswith("--runs="):
            runs = int(arg[7:])
        elif arg.startswith("--fixture="):
            _files["fixture"] = arg[10:]
        elif arg.startswith("--state="):
            _files["state"] = arg[8:]
        elif arg.startswith("--board="):
            _files["board"] = arg[8:]
        else:
            names.append(arg)
    for name in names:
        if name not in OPERATIONS:
            print(json.dumps({"op": name, "error": "unknown operation"}))
            continue
        if name in ("fob_import_wake", "fob_import_rest", "fob_import_board") and "board" not in _files:
            print(json.dumps({"op": name, "error": "needs --board=NAME (a board config module)"}))
            continue
        print(json.dumps(measure(name, runs, OPERATIONS)))


main(sys.argv[1:])
