# carkey — board boot: puts /lib (where deploy installs the firmware) on the module path.
# SPDX-License-Identifier: MIT

import sys

if "/lib" not in sys.path:
    sys.path.append("/lib")
