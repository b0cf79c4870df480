# carkey — firmware package root: car ECU and key fob roles for MicroPython.
# SPDX-License-Identifier: MIT
