# carkey — the key fob role: a user device with a button, on an ESP32-C3 (docs/FOB.md).
# SPDX-License-Identifier: MIT
