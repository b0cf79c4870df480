# carkey — hardware of the virtual board on the MicroPython Unix port (ptys, sockets).
# SPDX-License-Identifier: MIT
