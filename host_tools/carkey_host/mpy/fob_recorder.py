# carkey — records the fob benchmark's fixture: the firmware reader and the firmware fob, one standard and one fast tap.
# SPDX-License-Identifier: MIT
#
# carkey_host.bench_fob calls record(DIR) through carkey_host.runner, on the compiled
# firmware. The fob benchmark (carkey.fob.bench) replays the fob's side of each
# transaction against the reader's recorded commands: the fob's inputs are all in the
# fixture (its credential, its ephemeral keys, the reader it trusts) and its signatures
# are RFC 6979, so each answer it gives must match the recording byte for byte.

import asyncio

from carkey.crypto import p256
from carkey.fob.device import UserDevice
from carkey.fob.state import FobState
from carkey.protocol.reader import PrecomputePool, Reader, ReaderIdentity

from credential_list import Cred, Credentials

_READER_STATUS = b"\x97\x02\x01\x01"  # what the reader sends inside EXCHANGE (granted)


class _Wire:
    # The reader's link straight into the fob's device, keeping every APDU pair.
    def __init__(self, device):
        self.device = device
        self.pairs = []

    async def transceive(self, capdu, timeout_ms):
        rapdu = await self.device.process(bytes(capdu))
        self.pairs.append((bytes(capdu).hex(), bytes(rapdu).hex()))
        return rapdu


async def _tap(reader, creds, fob, ephemeral, bitmap, kind):
    wire = _Wire(UserDevice(fob, signaling_bitmap=bitmap, ephemeral=lambda: ephemeral))
    session = await reader.transact(wire, creds, fast=(kind == "fast"))
    await session.exchange(_READER_STATUS)
    if session.kind != kind:
        raise AssertionError("recording a %s tap gave a %s one" % (kind, session.kind))
    # CONTROL FLOW, which the benchmark sends itself, is not part of the recording.
    return wire.pairs, session


def record(dir):
    """The fixture (hex strings) for carkey.fob.bench, recorded with a fresh fob in DIR."""
    fob = FobState(dir)
    fob.create_credential()
    cred_priv, cred_pub = fob.credential()
    identity = ReaderIdentity.generate()
    fob.trust(identity.group_id, identity.public_key)
    creds = Credentials([Cred(cred_pub)])
    reader = Reader(identity, PrecomputePool(ephemerals=1, nonces=1))
    bitmap = b"\x1c\x30"
    fx = {"cred_priv": cred_priv.hex(), "cred_pub": cred_pub.hex(), "reader_pub": identity.public_key.hex(),
          "group": identity.group_id.hex(), "rid": identity.identifier.hex(), "bitmap": bitmap.hex()}
    for name, kind in (("std", "standard"), ("fast", "fast")):
        ud_priv, ud_pub = p256.generate_keypair()
        reader.pool.fill_now()
        pairs, session = asyncio.run(_tap(reader, creds, fob, (ud_priv, ud_pub), bitmap, kind))
        if kind == "standard":
            creds.creds[0].kpersistent = session.kpersistent
            fx["kp"] = bytes(session.kpersistent).hex()
        fx[name + "_ud_priv"] = ud_priv.hex()
        fx[name + "_ud_pub"] = ud_pub.hex()
        fx[name + "_capdus"] = [c for c, _ in pairs]
        fx[name + "_rapdus"] = [r for _, r in pairs]
    return fx
