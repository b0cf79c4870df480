# carkey — simulated NOR flash block device and power-cut driver for storage tests.
# SPDX-License-Identifier: MIT
#
# Killing a process is not a power cut: the OS still writes what it was given. This
# device counts every program and erase operation; `cut_after(n)` lets exactly n more
# through and drops every later one, optionally tearing the next one half-way (the
# first half of its bytes land). Programming only clears bits, as on NOR flash, so a
# file system that overwrote without erasing would show up as corruption. The flash
# lives in a bytearray, or in a host file (`path=`) to keep a large image out of a
# 64 KiB MicroPython heap.
#
# With fs="fat" the device carries FAT instead of littlefs. FAT uses the simple
# block interface: each 512-byte sector write replaces the sector as one operation
# (as a wear-levelling layer presents flash to FAT); a torn one keeps the old
# second half.
#
# power_cuts() runs an action once per cut point and yields with what survived
# mounted, e.g.:
#     for k, torn in power_cuts(build_old_state, write_new_state):
#         check(load())   # old state or new state, never anything else

import vfs
from micropython import const

_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)

_ALL = const(2)
_HALF = const(1)
_NONE = const(0)


class FlashSim:
    """Erased flash of block_count blocks; littlefs extended block-device interface."""

    def __init__(self, block_size=512, block_count=128, path=None, fs="lfs"):
        self.fs = fs
        self.block_size = block_size
        self.block_count = block_count
        self._scratch = bytearray(block_size)
        self._erased = b"\xff" * block_size
        size = block_size * block_count
        if path is None:
            self._ram = bytearray(b"\xff" * size)
            self._file = None
        else:
            self._ram = None
            self._file = open(path, "w+b")
            for _ in range(block_count):
                self._file.write(self._erased)
        self.size = size
        self.ops = 0  # program and erase operations issued (applied or dropped)
        self._limit = -1  # value of ops at the cut; -1 = power stays on
        self._torn = False
        self._mounted = None

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def clone(self, path=None):
        """A new device holding this one's current contents (in RAM or in a host file)."""
        other = FlashSim(self.block_size, self.block_count, path, self.fs)
        buf = self._scratch
        for block in range(self.block_count):
            self.readblocks(block, buf)
            other._put(block * self.block_size, buf, self.block_size)
        return other

    def image(self):
        buf = bytearray(self.size)
        self._get(0, buf)
        return bytes(buf)

    # -- power-cut switch -------------------------------------------------

    def cut_after(self, n, torn=False):
        """Power fails after n more operations; with torn, the next one lands half-way."""
        self._limit = self.ops + n
        self._torn = torn

    def power_on(self):
        """Power is back: operations land again."""
        self._limit = -1

    def is_cut(self):
        """True once an operation has been dropped or torn."""
        return 0 <= self._limit < self.ops

    def _admit(self):
        self.ops += 1
        if self._limit < 0 or self.ops <= self._limit:
            return _ALL
        if self.ops == self._limit + 1 and self._torn:
            return _HALF
        return _NONE

    # -- raw access ---------------------------------------------------------

    def _put(self, start, buf, n):
        if self._file is None:
            self._ram[start : start + n] = memoryview(buf)[:n]
        else:
            self._file.seek(start)
            self._file.write(memoryview(buf)[:n])

    def _get(self, start, buf):
        if self._file is None:
            buf[:] = memoryview(self._ram)[start : start + len(buf)]
        else:
            self._file.seek(start)
            self._file.readinto(buf)

    def _program(self, start, buf, n):
        # NOR flash: a program can only turn bits from 1 to 0.
        old = memoryview(self._scratch)[:n]
        self._get(start, old)
        for i in range(n):
            old[i] &= buf[i]
        self._put(start, old, n)

    # -- block device protocol --------------------------------------------

    def readblocks(self, block, buf, offset=0):
        self._get(block * self.block_size + offset, buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            self._replace(block, buf)
            return
        admit = self._admit()
        if admit != _NONE:
            n = len(buf) if admit == _ALL else len(buf) // 2
            self._program(block * self.block_size + offset, buf, n)

    def _replace(self, block, buf):
        # Simple interface (FAT): whole sectors, each replaced as one operation.
        size = self.block_size
        mv = memoryview(buf)
        for i in range(len(buf) // size):
            admit = self._admit()
            if admit != _NONE:
                n = size if admit == _ALL else size // 2
                self._put((block + i) * size, mv[i * size :], n)

    def _erase(self, block):
        admit = self._admit()
        if admit != _NONE:
            n = self.block_size if admit == _ALL else self.block_size // 2
            self._put(block * self.block_size, self._erased, n)

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.block_count
        if op == _IOCTL_BLOCK_SIZE:
            return self.block_size
        if op == _IOCTL_BLOCK_ERASE:
            self._erase(arg)
            return 0
        if op in (_IOCTL_INIT, _IOCTL_DEINIT, _IOCTL_SYNC):
            return 0
        return None

    # -- file system helpers ----------------------------------------------

    def _fs_type(self):
        return vfs.VfsFat if self.fs == "fat" else vfs.VfsLfs2

    def format(self):
        self._fs_type().mkfs(self)

    def mount(self, path):
        vfs.mount(self._fs_type()(self), path)
        self._mounted = path

    def umount(self):
        if self._mounted is not None:
            vfs.umount(self._mounted)
            self._mounted = None


def _attempt(sim, action):
    try:
        action()
    except OSError:
        if not sim.is_cut():
            raise  # a real failure, not the dead device after the cut


def power_cuts(prepare, action, mount="/flash", path=None, torn=True, **geometry):
    """Cut power at every operation of action() and yield (k, torn) after each cut.

    prepare() builds the old state on a freshly formatted flash mounted at mount;
    action() writes the new state (it should load what it needs from flash, as a
    rebooted board would). At each yield, what survived is mounted at mount with
    the power back on. k counts the operations that landed; torn means operation
    k + 1 landed half-way. k = total is the uncut run. path: keep the images in
    host files path + ".0" / ".1" instead of RAM."""
    try:
        vfs.umount(mount)  # left over from a failed test that stopped mid-loop
    except OSError:
        pass
    base = FlashSim(path=None if path is None else path + ".0", **geometry)
    base.format()
    base.mount(mount)
    prepare()
    base.umount()
    run_path = None if path is None else path + ".1"
    total = -1
    try:
        for torn_op in (False, True) if torn else (False,):
            k = 0
            while total < 0 or k <= total - torn_op:
                run = base.clone(run_path)
                run.mount(mount)
                start = run.ops
                if total >= 0:
                    run.cut_after(k, torn_op)
                _attempt(run, action)
                run.umount()
                if total < 0:
                    total = run.ops - start
                    run.close()
                    continue  # the dry run only counts operations
                run.power_on()
                run.mount(mount)
                try:
                    yield k, torn_op
                finally:
                    run.umount()
                    run.close()
                k += 1
    finally:
        base.close()
