"""The virtual board's filesystem (host/penctl/sim/vm/littlefs.py) counts its partition as
LittleFS does: in the unix VM, the same files written to the model over a directory and to
the port's own LittleFS v2 (vfs.VfsLfs2, mkfs defaults as the ESP32's inisetup.py uses them)
on a RAM block device of the same 512 blocks leave the same free blocks, and the write
that does not fit fails at the same byte with ENOSPC."""

import re
import subprocess

from penctl.sim.flash_image import FLASH_SIZE, VFS_OFFSET
from penctl.sim.vm_process import VM_DIR, find_micropython

SCRIPT = r"""
import os, vfs, littlefs

class RAM:  # a block device as esp32.Partition is one: 4096-byte blocks, erase by ioctl 6
    def __init__(self, n):
        self.data = bytearray(4096 * n)
        self.n = n
    def readblocks(self, b, buf, off=0):
        a = b * 4096 + off
        buf[:] = self.data[a:a + len(buf)]
    def writeblocks(self, b, buf, off=0):
        a = b * 4096 + off
        self.data[a:a + len(buf)] = buf
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return 4096
        if op == 6:
            self.data[arg * 4096:(arg + 1) * 4096] = b"\xff" * 4096
        return 0

ram = RAM(littlefs.BLOCKS)
vfs.VfsLfs2.mkfs(ram)
mounts = {"/real": vfs.VfsLfs2(ram), "/model": littlefs.VfsLfs2(DIR)}
for m, fs in mounts.items():
    vfs.mount(fs, m)

def free():
    return tuple(os.statvfs(m)[3] for m in mounts)

def fill(name, chunk):
    out = []
    for m in mounts:
        n = 0
        try:
            with open(m + name, "wb") as f:
                while n < 3000000:
                    f.write(bytes(chunk))
                    n += chunk
        except OSError as e:
            out.append((n, e.errno))
        os.remove(m + name)  # what a failed file keeps differs (the module's docstring)
    return out

print("fresh", free())
for i, size in enumerate([0, 100, 128, 129, 4088, 4096, 4097, 8188, 8189, 20000, 100000]):
    for m in mounts:
        with open("%s/f%d" % (m, i), "wb") as f:
            f.write(bytes(size))
    print(size, free())
for m in mounts:
    os.mkdir(m + "/d")
    with open(m + "/d/x", "wb") as f:
        f.write(bytes(5000))
print("dir", free())
for m in mounts:
    with open(m + "/f10", "wb") as f:  # rewritten: the old blocks stay until closed
        f.write(bytes(50000))
print("rewritten", free())
print("full", (fill("/big", 4096), fill("/big", 1000)))
"""


def test_model_counts_blocks_and_runs_out_as_littlefs_does(tmp_path):
    flash = tmp_path / "flash"
    flash.mkdir()
    done = subprocess.run(
        [find_micropython(), "-X", "heapsize=8M", "-c", "DIR = %r\n" % str(flash) + SCRIPT],
        capture_output=True, text=True, timeout=120, env={"MICROPYPATH": str(VM_DIR)})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 15, done.stdout
    for line in lines[:-1]:
        what, counts = line.split(" ", 1)
        real, model = eval(counts)
        assert real == model, "%s: LittleFS has %d blocks free, the model %d" % (what, real, model)
    assert lines[0] == "fresh (510, 510)"
    (real, model), (real_1k, model_1k) = eval(lines[-1].split(" ", 1)[1])
    assert real == model and real_1k == model_1k and real[1] == 28, lines[-1]


def test_the_partition_is_the_flash_after_the_app():
    blocks = re.search(r"^BLOCKS = (\d+)$", (VM_DIR / "littlefs.py").read_text(), re.M)
    assert int(blocks.group(1)) * 4096 == FLASH_SIZE - VFS_OFFSET == 2 * 1024 * 1024
