# carkey — board boot: puts /lib (where deploy installs the firmware) on the module path.
# SPDX-License-Identifier: MIT
#
# Ctrl-C is turned off first: an installed car must not drop to the REPL because a
# Ctrl-C arrived while it boots (carkey.ecu.app turns it on again in factory state).

import sys

if sys.platform == "esp32":  # the virtual board's bridge owns its serial port
    while True:
        try:
            import micropython

            micropython.kbd_intr(-1)
            break
        except KeyboardInterrupt:
            pass

if "/lib" not in sys.path:
    sys.path.append("/lib")

if sys.platform == "esp32":
    from carkey.hw import maintenance

    maintenance.resume(8000)  # a soft reset inside the owner's maintenance window (deploy)
