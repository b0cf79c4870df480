# carkey — car ECU role: key store, policy, door controller, audit log.
# SPDX-License-Identifier: MIT
