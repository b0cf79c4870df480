# carkey — Aliro expedited phase shared by the car reader and the key fob: TLV, APDU, keys, channel.
# SPDX-License-Identifier: MIT
