# carkey — MicroPython side of the host bridge: calls firmware functions named on stdin.
# SPDX-License-Identifier: MIT
#
# One JSON request per line: {"op": "call", "module": "carkey.crypto.p256", "fn": "sign", "args": [...]}
# One JSON reply per line: {"ok": value} or {"error": "ValueError", "message": "...", "traceback": "..."}.
# Byte strings travel as {"b": "<hex>"}; tuples come back as lists.

import binascii
import gc
import io
import json
import sys


def _decode(value):
    if isinstance(value, dict):
        if "b" in value:
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


def _resolve(module_name, attr_path):
    obj = __import__(module_name)
    for part in module_name.split(".")[1:]:
        obj = getattr(obj, part)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _handle(request):
    op = request["op"]
    if op == "call":
        fn = _resolve(request["module"], request["fn"])
        return fn(*_decode(request.get("args", [])))
    if op == "heap":
        gc.collect()
        return [gc.mem_alloc(), gc.mem_free()]
    raise ValueError("unknown bridge op " + op)


def serve():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            reply = {"ok": _encode(_handle(json.loads(line)))}
        except Exception as e:
            buf = io.StringIO()
            sys.print_exception(e, buf)
            reply = {"error": type(e).__name__, "message": str(e), "traceback": buf.getvalue()}
        sys.stdout.write(json.dumps(reply))
        sys.stdout.write("\n")
        gc.collect()


serve()
