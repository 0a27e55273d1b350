"""The virtual chip's peripherals on the host's side: the register file the VM's machine.py
reads and writes (its map, shared with the VM, is vm/simhw.py), mapped here as a memoryview
of uint32 slots for the physics and the board."""

import mmap
import os
import tempfile
from pathlib import Path

from .vm import simhw


def memory_dir():
    """/dev/shm where the host has one to write in, else None (the system's temporary
    directory): the board's registers and its flash live in memory, as on the chip. On a
    disk, a busy host's journal held a VM's file writes (a rename) for seconds in the
    kernel, and a VM so held did not die of SIGKILL within 5 s."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else None


class RegisterFile:
    def __init__(self, tmp, uid):
        """A fresh file in memory_dir() (else in `tmp`), holding the chip's id `uid`."""
        fd, path = tempfile.mkstemp(prefix="pen-regs-", dir=memory_dir() or tmp)
        os.write(fd, bytes(simhw.SIZE))
        os.close(fd)
        self.path = path
        self._file = open(path, "r+b")  # noqa: SIM115 (closed in close())
        self._mmap = mmap.mmap(self._file.fileno(), simhw.SIZE)
        self.regs = memoryview(self._mmap).cast("I")
        self.regs[simhw.H_MAGIC] = simhw.MAGIC
        uid = int.from_bytes(uid, "big")
        self.regs[simhw.H_UID], self.regs[simhw.H_UID + 1] = uid & 0xFFFFFFFF, uid >> 32

    def float_outputs(self):
        """At a reset the outputs float; what the world drives onto the inputs stays."""
        regs = self.regs
        for n in range(simhw.HEADER, simhw.SLOTS):
            field = (n - simhw.HEADER) % simhw.PER_GPIO
            if field not in (simhw.G_IN, simhw.G_ADC_UV, simhw.G_COUNT):
                regs[n] = 0

    def lose_power(self):
        """The RTC domain's memory and time are gone with the power (machine_rtc.c keeps its
        user memory in RTC_NOINIT RAM: every reset but a power loss leaves it)."""
        start = simhw.R_TIME_SET * 4
        self._mmap[start:simhw.SIZE] = bytes(simhw.SIZE - start)

    def cartridge_bytes(self, start, n):
        return bytes(self._mmap[start * 4:start * 4 + n])

    def set_cartridge_bytes(self, start, data):
        self._mmap[start * 4:start * 4 + len(data)] = data

    def close(self):
        self.regs.release()
        self._mmap.close()
        self._file.close()
        os.unlink(self.path)
