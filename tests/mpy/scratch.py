# carkey — scratch directories on the host filesystem for MicroPython-side tests.
# SPDX-License-Identifier: MIT

import os
from binascii import hexlify


def scratch_dir():
    path = "%s/carkey-%s" % (os.getenv("TMPDIR") or "/tmp", hexlify(os.urandom(6)).decode())
    os.mkdir(path)
    return path


def remove_tree(path):
    for name in os.listdir(path):
        os.remove(path + "/" + name)
    os.rmdir(path)
