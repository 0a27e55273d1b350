# First thing the virtual board's VM runs: wire the stand-in hardware, make the
# board's flash directory the filesystem root, then run boot.py and main.py the
# way MicroPython does on an ESP32. `-i` leaves the VM at the REPL afterwards.
import gc
import sys

import micropython

# Names here are the port's own where they can be (start, run): each new one costs the VM an
# interned string, and the 621st a 7 KB pool (docs/figures.md#heap).

# The ESP32 runs its frozen _boot.py (which mounts the filesystem, as this file does below)
# with the interrupt character unset (pyexec_frozen_module("_boot.py", false): ports/esp32/
# main.c at v1.26.0), and it is unset at power-on (shared/runtime/interrupt_char.c); the unix
# port had set it for this script. A Ctrl-C until boot.py runs is a byte in the UART.
micropython.kbd_intr(-1)
gc.collect()
start = gc.mem_free()
import simhw  # noqa: E402

simhw.attach(sys.argv[1])
sys.modules["time"] = simhw  # the firmware's clock is the chip's, not the host's
import os  # noqa: E402

import machine  # noqa: E402,F401  (stand-ins imported before the host's files disappear)
import onewire  # noqa: E402,F401  (frozen into the port's firmware, over _onewire)

machine.RTC  # noqa: B018  (machine_extra.py compiled now, while the heap is whole)

gc.collect()  # the next compile needs a free block of its own (a 60 KB heap still boots)
import littlefs  # noqa: E402
import vfs  # noqa: E402


class Port:
    # The port's sys and os are the VM's own, with what an ESP32 says of itself: its
    # sys.platform (mpconfigport.h: MICROPY_PY_SYS_PLATFORM "esp32") and os.uname()
    # (machine_extra.py). The unix port's sys cannot take another platform, and its os has
    # no uname.
    def __getattr__(self, name):
        return getattr(self.module, name)


sys.modules["sys"] = Port()
sys.modules["sys"].module = sys
sys.modules["sys"].platform = "esp32"
sys.modules["os"] = Port()
sys.modules["os"].module = os
sys.modules["os"].uname = lambda: machine._uname()
# select.poll's waits end on the RTOS tick's 10 ms edges, as the port's (machine.py): asyncio's
# sleeps among them
sys.modules["select"] = Port()
sys.modules["select"].module = machine.select
sys.modules["select"].poll = machine._Poll
flash = None
if "writes" in sys.argv:  # VirtualBoard(count_writes=True): power cuts at flash writes
    import flash
# LittleFS on the "vfs" partition, as the ESP32's _boot.py mounts it (littlefs.py), the one
# filesystem (the unix port mounted the host's / at its start)
vfs.umount("/")
vfs.mount(littlefs.VfsLfs2(sys.argv[2]), "/")
os.chdir("/")
if flash:
    flash.install()
sys.path.clear()
sys.path.extend(["", "/lib", ".frozen"])
gc.collect()
# what the stand-ins took of the heap: on an ESP32 machine lives in ROM (make bench)
simhw.regs.put(simhw.H_STANDIN_BYTES, start - gc.mem_free())


def run(name):
    """pyexec_file_if_exists (shared/runtime/pyexec.c at v1.26.0): 1 when the file ran to its
    end or is absent, 0 when it raised (printed). Ctrl-C interrupts a file's code only while
    it runs: the interrupt character is set after its compile and unset when it ends, and a
    KeyboardInterrupt still pending then is the file's own (mp_handle_pending(true)). Unset,
    no further one can come (the bridge signals only a VM that catches SIGINT), so at most
    one is pending: a branch raises it (the VM checks at branches, py/vm.c)."""
    try:
        f = open(name)
    except OSError:
        return 1
    err = None
    try:
        with f:
            # the text is garbage once compiled: an ESP32 compiles main.py streaming from
            # its file and never holds the text while main.py runs
            code = compile(f.read(), name, "exec")
        try:
            micropython.kbd_intr(3)
            exec(code, {"__name__": "__main__"})
        finally:
            micropython.kbd_intr(-1)
        if code:
            return 1
    except BaseException as e:
        err = e
    if err:
        sys.print_exception(err)
    return 0


# boot.py, then main.py only if boot.py ended well (main.c: a boot.py that raised, even a
# KeyboardInterrupt, leaves the board at the REPL) and not after a soft reset from the raw
# REPL. The pending KeyboardInterrupt can be raised as run()'s except clause matches (a
# branch): it ends that file as its own.
try:
    if run("boot.py") and "raw" not in sys.argv:
        run("main.py")
except KeyboardInterrupt as e:
    sys.print_exception(e)
del run, simhw, os, vfs, flash, gc, start, littlefs, Port
