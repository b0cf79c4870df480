# carkey — the key fob's provisioning: its key made, the cars it trusts, a share document.
# SPDX-License-Identifier: MIT
#
# Only `carkey fob provision`, `import-share` and a first start run this; a press
# never loads it (nor P-256 for it). The records are carkey.fob.state's (their
# layout is in its header). identity, trust_car and import_share at the end are the
# entry points the host runs over USB (carkey_host.usb_fob) and on the virtual fob.

from micropython import const

from carkey import storage
from carkey.fob.state import (
    CARS_RECORD, FORMAT, KEY_RECORD, MAX_CARS, SHARE_RECORD, FobStateError, _pack,
)

_GROUP_LEN = const(16)
_PUB_LEN = const(65)
_MAX_SHARE = const(1024)


def create_credential(state):
    # The key pair is made here and its private half never leaves this module's
    # callers inside the fob. On an ESP32 the caller brings the radio up first
    # (os.urandom is truly random only then).
    if storage.exists(state.dir, KEY_RECORD):
        raise FobStateError("this fob already holds a credential")
    from carkey.crypto import p256

    priv, pub = p256.generate_keypair()
    body = bytearray(b"CKFK")
    body.append(FORMAT)
    body.extend(priv)
    body.extend(pub)
    storage.save(state.dir, KEY_RECORD, body)
    return pub


def trust(state, group_id, reader_public_key):
    from carkey.crypto import p256

    group_id = bytes(group_id)
    reader_public_key = bytes(reader_public_key)
    if len(group_id) != _GROUP_LEN:
        raise FobStateError("group id is 16 bytes")
    if len(reader_public_key) != _PUB_LEN or not p256.is_valid_public_key(reader_public_key):
        raise FobStateError("reader public key is not a P-256 point")
    cars = [c for c in state.cars() if c[0] != group_id]
    if len(cars) >= MAX_CARS:
        raise FobStateError("a fob trusts at most %d cars" % MAX_CARS)
    cars.insert(0, (group_id, reader_public_key))
    storage.save(state.dir, CARS_RECORD, _pack(b"CKFC", [g + p for g, p in cars]))
    # A new key for a group makes that group's Kpersistents meaningless.
    state._drop_kp(lambda rid: rid[:_GROUP_LEN] == group_id)


def set_share(state, group_id, document):
    # Presented in the next transaction with that car; one at a time.
    if len(group_id) != _GROUP_LEN:
        raise FobStateError("group id is 16 bytes")
    if not 2 < len(document) <= _MAX_SHARE or document[0] != 0xE2:
        raise FobStateError("not a share document")
    body = bytearray(b"CKFS")
    body.append(FORMAT)
    body.extend(group_id)
    body.extend(document)
    storage.save(state.dir, SHARE_RECORD, body)


# --- over USB (carkey fob provision, import-share): the host runs these through the REPL ---


def identity(board, platform=None, state_dir="/state"):
    # The credential public key (made now, radio on, if the fob has none) and the cars it trusts.
    from carkey.fob.app import FobApp

    app = FobApp(board, platform, state_dir)
    pub = app.ensure_credential()
    return {"credential_public_key": pub.hex(),
            "cars": [{"group_id": g.hex(), "reader_public_key": k.hex()} for g, k in app.state.cars()]}


def trust_car(board, group_id_hex, reader_key_hex, state_dir="/state"):
    from carkey.fob.state import FobState

    FobState(state_dir).trust(bytes.fromhex(group_id_hex), bytes.fromhex(reader_key_hex))
    return {"group_id": group_id_hex}


def import_share(board, group_id_hex, reader_key_hex, document_hex, state_dir="/state"):
    # A share document instead of an enrolment: the fob trusts that car and presents
    # the document at its next press.
    from carkey.fob.state import FobState

    state = FobState(state_dir)
    group_id = bytes.fromhex(group_id_hex)
    state.trust(group_id, bytes.fromhex(reader_key_hex))
    state.set_share(group_id, bytes.fromhex(document_hex))
    return {"group_id": group_id_hex}
