# carkey — the firmware-side server the host runs in the Unix port: one request per line, events, one reply.
# SPDX-License-Identifier: MIT
#
# Usage: micropython -m serve [HANDLER]   (carkey_host.runner.Firmware starts it so, compiled)
#
# One JSON request per line on stdin: {"op": NAME, ...arguments}. While it runs the op
# may stream {"event": {...}} lines; then exactly one reply line:
#   {"ok": VALUE}
#   {"error": TYPE, "message": TEXT, "expected": BOOL, "refused": BOOL, "traceback": TEXT}
# "expected" marks the handler's own errors (HANDLER.EXPECTED: bad input, a refusal the
# firmware decided); "refused" the ones the firmware judged and said no to (HANDLER.REFUSED).
# Byte strings travel as {"b": HEX} both ways. Lines on stdout that are not JSON objects
# are the firmware's own prints; the host skips them. The server ends when stdin does.
#
# Built-in ops: {"op": "call", "module": M, "fn": "f" or "Class.method", "args": [...]}
# returns M.f(*args); {"op": "heap"} returns [allocated, free] after a collection.
# Every other op goes to HANDLER.handle(request, emit), a module on MICROPYPATH
# (vcar, vfob: the virtual board; ble_reader, compiled beside this file), which calls
# emit(obj) for each event.

import binascii
import gc
import io
import json
import sys


def _decode(value):
    if isinstance(value, dict):
        if "b" in value and len(value) == 1:
            return binascii.unhexlify(value["b"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _encode(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": binascii.hexlify(bytes(value)).decode()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError("cannot return a %s to the host" % type(value).__name__)


def _write(obj):
    sys.stdout.write(json.dumps(obj))
    sys.stdout.write("\n")


def emit(obj):
    _write({"event": _encode(obj)})


def _resolve(module_name, attr_path):
    obj = __import__(module_name)
    for part in module_name.split(".")[1:]:
        obj = getattr(obj, part)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _handle(handler, request):
    op = request.get("op")
    if op == "call":
        return _resolve(request["module"], request["fn"])(*request.get("args", []))
    if op == "heap":
        gc.collect()
        return [gc.mem_alloc(), gc.mem_free()]
    if handler is None:
        raise ValueError("unknown op %r" % op)
    return handler.handle(request, emit)


def serve(handler):
    while True:
        request = sys.stdin.readline()
        if not request:
            return
        try:
            # One live copy of the request while the op runs: the op's heap is the firmware's.
            request = _decode(json.loads(request))
            gc.collect()
            reply = {"ok": _encode(_handle(handler, request))}
        except Exception as e:
            expected = handler is not None and isinstance(e, getattr(handler, "EXPECTED", ()))
            buf = io.StringIO()
            if not expected:
                sys.print_exception(e, buf)
            reply = {"error": type(e).__name__, "message": str(e), "expected": expected,
                     "refused": handler is not None and isinstance(e, getattr(handler, "REFUSED", ())),
                     "traceback": buf.getvalue()}
        request = None
        _write(reply)
        reply = None
        gc.collect()


serve(__import__(sys.argv[1]) if len(sys.argv) > 1 else None)
