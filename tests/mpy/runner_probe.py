# carkey — a handler for the firmware-side server that exercises its protocol, for tests/host/test_runner.py.
# SPDX-License-Identifier: MIT

import sys


class Refusal(Exception):
    pass


class BadInput(Exception):
    pass


EXPECTED = (Refusal, BadInput)
REFUSED = (Refusal,)


def handle(req, emit):
    op = req["op"]
    if op == "count":
        for n in range(req["n"]):
            emit({"n": n, "raw": bytes([n])})
        print("a diagnostic line the host skips")
        print("{not json either")
        return {"counted": req["n"], "echo": req["data"]}
    if op == "refuse":
        raise Refusal("no, you may not")
    if op == "bad":
        raise BadInput("that is not hex")
    if op == "fault":
        return [][1]
    if op == "die":
        sys.stderr.write("dying on purpose\n")
        sys.exit(7)
    raise ValueError("unknown op %r" % op)
