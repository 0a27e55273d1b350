# The board's filesystem as the ESP32 port has it: LittleFS v2 on the flash's "vfs"
# partition. Here the files are a host directory (the tests read it), mounted through
# the unix port's VfsPosix; this class gives it the partition's size and LittleFS's way
# of counting it, so that `df` (os.statvfs), `fs ls` (ilistdir's sizes) and a write that
# does not fit (OSError ENOSPC) read as on the chip.
# - Partition: ESP32_GENERIC's table is partitions-4MiBplus.csv (boards/sdkconfig.base at
#   v1.26.0): the app ends at 0x200000 and main.c registers the rest of the flash as "vfs":
#   on a 4 MiB flash 2 MiB, 512 blocks of 4096 bytes (esp32_partition.c's block size).
# - Blocks in use, as lfs2_fs_traverse counts them for statvfs (extmod/vfs_lfsx.c): 2 for
#   the root's metadata pair (which holds the superblock), 4 for each directory more, and
#   each file's CTZ skip-list (lib/littlefs/lfs2.c lfs2_ctz_index); a file of up to 128
#   bytes is inline in its directory (inline_max = cache_size = 4 * 32, vfs_lfsx.c).
#   tests/test_littlefs_model.py holds these against the unix port's own VfsLfs2.
# - LittleFS copies on write: a file rewritten keeps its old blocks until it is closed.
import simhw
import vfs

BLOCKS = 512
_ENOSPC = 28


def blocks(size):
    """Blocks of a file of `size` bytes (lfs2_ctz_index of its last byte, plus one)."""
    if size <= 128:
        return 0
    size -= 1
    i = size // 4088  # a block less its two skip-list pointers
    if i:
        n = 2  # pointers in the block before: popcount(i - 1) + 2
        i -= 1
        while i:
            n += i & 1
            i >>= 1
        i = (size - 4 * n) // 4088
    return i + 1


class _File:
    # a file open for writing: each write first checks that its blocks fit
    def __init__(self, f, free, size):
        self._f = f
        self._free = free  # blocks it may take: free at its opening (and its own, appending)
        self._pos = size

    def write(self, data):
        n = self._pos + len(data)
        if blocks(n) > self._free:
            raise OSError(_ENOSPC)
        self._pos = n
        t = _began()
        try:
            return self._f.write(data)
        finally:
            simhw.host_io(t)

    def close(self):
        t = _began()
        try:
            self._f.close()
        finally:
            simhw.host_io(t)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def _began():
    # None on a VM without the board's clock (tests/test_littlefs_model.py's)
    return (simhw.real.ticks_us(), simhw.waiting()) if simhw.regs else None


class VfsLfs2(vfs.VfsPosix):  # the port's name (mpremote df shows it)
    # the host's file operations that may wait on its disk are off the chip's clock
    def rename(self, old, new):
        t = _began()
        try:
            super().rename(old, new)
        finally:
            simhw.host_io(t)

    def remove(self, path):
        t = _began()
        try:
            super().remove(path)
        finally:
            simhw.host_io(t)

    def used(self, path="", twice=0):
        """Blocks in use under `path`: its metadata pair and what it holds (a directory's
        pair counted `twice` more, as statvfs counts it)."""
        n = 2
        for e in super().ilistdir(path or "/"):
            name = path + "/" + e[0]
            if e[1] == 0x4000:
                n += twice + self.used(name, twice)
            else:
                n += blocks(self.stat(name)[6])
        return n

    def statvfs(self, path):
        n = BLOCKS - self.used("", 2)
        return (4096, 4096, BLOCKS, n, n, 0, 0, 0, 0, 255)

    def ilistdir(self, path):
        for e in super().ilistdir(path):
            yield (e[0], e[1], 0, 0 if e[1] == 0x4000 else
                   self.stat(path.rstrip("/") + "/" + e[0])[6])

    def open(self, path, mode):
        if "w" not in mode and "a" not in mode and "+" not in mode:
            return super().open(path, mode)
        try:
            n = blocks(self.stat(path)[6])  # the file's blocks before this opening
        except OSError:
            n = 0
        t = _began()
        try:
            f = super().open(path, mode)
        finally:
            simhw.host_io(t)
        # "w": its old blocks stay in use until it is closed; else it writes over its own
        return _File(f, BLOCKS - self.used() + (-n if "w" in mode else n),
                     f.seek(0, 2) if "a" in mode else 0)
