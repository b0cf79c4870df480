# carkey — hardware layer: the one place firmware reaches GPIO, buses and the tick clock.
# SPDX-License-Identifier: MIT
