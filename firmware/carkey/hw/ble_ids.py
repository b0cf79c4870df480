# carkey — carkey's GATT service on the air: UUIDs, advertised name, preferred MTU (docs/PROTOCOL.md §2b).
# SPDX-License-Identifier: MIT
#
# Both ends need these: the car's GATT server (carkey.hw.ble_gatt) and the key
# fob's central (carkey.hw.ble_central). They live here, apart from the
# server, so a fob does not load the server's code for a few names.

from micropython import const

PREFERRED_MTU = const(247)  # asked of the other end; the agreed MTU is the smaller of both

SERVICE_UUID = "7f1e0001-6c2b-4b8e-9f3a-2d5c1ac0a201"
WRITE_UUID = "7f1e0002-6c2b-4b8e-9f3a-2d5c1ac0a201"  # phone or fob → car: answer chunks
INDICATE_UUID = "7f1e0003-6c2b-4b8e-9f3a-2d5c1ac0a201"  # car → phone or fob: command chunks

_NAME_PREFIX = "carkey-"


def device_name(group_id):
    # The advertised name: fixed per car (its reader group), so a phone finds
    # its car among others without connecting to each. 15 characters.
    return _NAME_PREFIX + bytes(group_id[:4]).hex()
