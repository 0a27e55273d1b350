"""The virtual board: the real firmware in the MicroPython VM, a physics model behind
its pins, reached through a real serial device.

    host (pyserial) -> <tmp>/ttyPEN0 or a stable link (symlink) -> PTY -> link bridge
    host (pyserial) -> socket://127.0.0.1:PORT (.url) ---------------> link bridge
    link bridge -> socket pair -> VM stdin; VM stdout -> pipe -> link bridge

VirtualBoard is the one public face; it builds the board from parts, each a file named
for the piece of hardware (or the host's stand-in for it) it is:
- vm_process.py: the chip's CPU, a MicroPython VM process (spawn, kill, signals, its CPU
  time from /proc); register_file.py: its peripherals, a register file shared with the VM
  (map: vm/simhw.py); flash_image.py: its SPI flash image and filesystem (with its key).
- chip.py: the ESP32 itself: reset lines EN and IO0, the ROM's download mode, boots and
  their reset causes, panics, the resets the firmware asks for.
- chip_clock.py: the chip's clock, which leaves out the host time the VM could not run;
  physics_thread.py steps the world (physics.py) to it. watchdog.py and heartbeat.py
  judge the firmware in that time, never the host's.
- injection.py: faults a test injects, power cuts at flash writes, reaction timing;
  cartridge.py: the needle cartridge (its switch, its 1-Wire ID chip).
- link.py: the USB-UART (Ctrl-C as SIGINT, link faults, serving across VM restarts) through
  uart.py, the chip's UART0 (baud, TX FIFO, RX ring, CRLF); socket_port.py: that UART over
  TCP; rom.py and rfc2217.py: the ROM's serial loader, DTR/RTS for esptool.

Long because: it is the board's one public face, and each part's methods are forwarded
here by name, one line each.
"""

import contextlib
import functools
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .. import boards, keys
from ..errors import UsageError, VirtualBoardError
from ..paths import FIRMWARE_DIR
from .cartridge import CartridgeSlot
from .chip import PWRON_RESET, Chip
from .chip_clock import ChipClock, HostStalls
from .flash_image import SpiFlash, fill_filesystem
from .heartbeat import HeartbeatWatch
from .injection import Injection
from .link import LinkBridge, open_vm_channel
from .physics import Physics
from .physics_thread import PhysicsThread
from .register_file import RegisterFile, memory_dir
from .rfc2217 import Rfc2217Server
from .rom import ROMS
from .socket_port import SocketPort
from .vm import simhw
from .vm_process import HEAP, VmProcess, vm_mpy_arch
from .watchdog import Watchdog


def _forward(part, method):
    """A method of the board that one of its parts does (`method`, of the part's class)."""

    @functools.wraps(method)
    def forwarded(self, *args, **kwargs):
        return method(getattr(self, part), *args, **kwargs)

    return forwarded


def _kept_by(part, name):
    """An attribute of the board that one of its parts keeps."""
    return property(lambda self: getattr(getattr(self, part), name),
                    lambda self, value: setattr(getattr(self, part), name, value))


class VirtualBoard:
    """Context manager running one virtual pen board. `.port` is what pyserial opens."""

    proc = _kept_by("_vm", "proc")  # the VM's subprocess.Popen, None while none runs
    crash = _kept_by("_chip", "crash")  # the first crash, for check()
    crashes = _kept_by("_chip", "crashes")
    resets = _kept_by("_chip", "resets")  # the cause of each boot (machine.reset_cause())
    power_cuts = _kept_by("_chip", "power_cuts")
    booted_app = _kept_by("_chip", "booted_app")  # False: the ROM found no app to boot
    watchdog_verdicts = _kept_by("_watchdog", "verdicts")  # why each watchdog reset happened
    world_ahead_max_ms = _kept_by("_clock", "world_ahead_max_ms")

    def __init__(self, board="virtual", firmware_dir=None, heap=HEAP, tick_s=None, chip=None,
                 count_writes=False, needles_mm=None, link=None, adc_vref_mv=None, seed=None):
        self.definition = boards.load(board)
        if "physics" not in self.definition:
            raise UsageError("board %r has no physics section; it cannot be simulated" % board)
        self.name = board
        self.firmware_dir = Path(firmware_dir or FIRMWARE_DIR)
        self.heap = heap
        # Counting the flash's write points (and cutting power at one) wraps open() and os in
        # the VM: ~2 KB of heap an ESP32 does not spend, so only tests that cut power ask it
        self.count_writes = count_writes
        # where the needle carriage stands at power-on: by default wherever the actuator
        # was left (out), so the first boot retracts; 0.0 for a board whose last run
        # brought them in (a test's board: its boot then takes no retract)
        self.needles_mm = needles_mm
        self.chip = chip or self.definition["chip"]  # another ROM and app offset, same pins
        # this unit's ADC (vm/machine.py): true reference (1000-1200 mV), noise seed
        self.adc_vref_mv = adc_vref_mv or self.definition["physics"]["adc_vref_mv"]
        self.seed = int.from_bytes(os.urandom(4), "big") if seed is None else seed
        if self.chip not in ROMS:
            raise UsageError("the virtual board has no ROM model for chip %r; it has: %s"
                             % (self.chip, ", ".join(sorted(ROMS))))
        # its own chip id (machine.unique_id(), the MAC esptool reads): Espressif's OUI + 3 bytes
        self.uid = bytes.fromhex("240ac4") + os.urandom(3)
        self.tmp = Path(tempfile.mkdtemp(prefix="pen-board-", dir=memory_dir()))
        self.flash_dir = self.tmp / "flash"
        self.port = str(link or self.tmp / "ttyPEN0")  # link: a stable path (`pen sim`)
        self._spi_flash = SpiFlash(self.tmp / "flash.bin", self.chip, self.flash_dir)
        self.flash_image, self.flash_size = self._spi_flash.path, self._spi_flash.size
        self.app_offset = self._spi_flash.app_offset
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads = []
        self._servers = {}  # the UART's network faces, made on first use (url, rfc2217_url)
        self._registers = self._vm = self.bridge = None  # made by start()

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
        self._spi_flash.factory()
        fill_filesystem(self.flash_dir, self.name, vm_mpy_arch(), self.firmware_dir,
                        keys.new(self.uid.hex()))  # this host holds it while the board lives
        self._registers = RegisterFile(self.tmp, self.uid)
        self.regs, self.regs_path = self._registers.regs, self._registers.path
        self.regs[simhw.H_ADC], self.regs[simhw.H_ADC + 1] = self.adc_vref_mv, self.seed
        self.physics = Physics(self.definition, self.regs)
        if self.needles_mm is not None:
            self.physics.place_needles(self.needles_mm)
            self.physics.write_inputs()
        bridge_end, vm_end, out_r, out_w = open_vm_channel()
        self._vm = VmProcess(vm_end, out_w, self.regs_path, self.flash_dir, self.heap,
                             self.count_writes)
        world = self._build_parts(bridge_end, out_r)
        self._slot.insert_cartridge()  # a new one: the pen comes with its first cartridge
        os.symlink(self.bridge.host_port, self.port)
        self._chip.boot(PWRON_RESET)
        for name, target in (("physics", world.run), ("link", self.bridge.run),
                             ("sampler", functools.partial(self._vm.sample_every_20ms,
                                                           self._stop))):
            t = threading.Thread(target=target, daemon=True, name="pen-board-" + name)
            t.start()
            self._threads.append(t)

    def _build_parts(self, bridge_end, vm_out):
        """The parts around the VM, each given the few others it talks to; returns the
        physics thread's part."""
        regs, physics, vm, lock = self.regs, self.physics, self._vm, self._lock
        self._clock = ChipClock(regs, vm, physics, self.tick_s)
        self.bridge = LinkBridge(bridge_end, vm_out, vm.vm_end.fileno(), self._ctrl_c,
                                 self._clock.link_passed, self._clock.lag_s, vm.writing, regs)
        self._stalls = HostStalls(self.bridge)
        self._watchdog = Watchdog(regs, vm, self._clock, self._stalls, physics)
        self._heartbeat = HeartbeatWatch(self.definition, regs, physics, vm, self._clock, lock)
        self._injection = Injection(self.definition, regs, physics, self.bridge, vm,
                                    self._clock, lock, self.count_writes)
        self._slot = CartridgeSlot(self.definition, self._registers, self._injection, lock)
        self._chip = Chip(self.chip, self.uid, self._registers, self._spi_flash, vm, self.bridge,
                          physics, clock=self._clock, watchdog=self._watchdog,
                          heartbeat=self._heartbeat, injection=self._injection, lock=lock,
                          stop=self._stop)
        return PhysicsThread(self.definition, regs, physics, clock=self._clock,
                             stalls=self._stalls, heartbeat=self._heartbeat,
                             injection=self._injection, chip=self._chip, lock=lock,
                             stop=self._stop)

    def _ctrl_c(self):
        """A Ctrl-C from the host: SIGINT for a VM that catches it (VmProcess.interrupt),
        once its stand-ins are in (sim_start.py); before, the process may be a CPython child
        about to become the VM, a moment no chip has: the byte goes to the UART."""
        ready, stats = (lambda: bool(self.regs[simhw.H_STANDIN_BYTES])), self.bridge.stats
        return self._vm.interrupt(ready, lambda: stats["kbd_printed"])

    def close(self):
        self._stop.set()
        for server in self._servers.values():
            server.close()
        if self.bridge is not None:
            self.bridge.stop()
        if self._vm is not None:
            self._vm.kill()
        for t in self._threads:
            # a ceiling, not a wait: a busy host may not run a thread for seconds, and one
            # still at work when its descriptors close read a closed one (EBADF)
            t.join(timeout=30)
        if self._vm is not None:
            self._vm.close()
        if self.bridge is not None:
            self.bridge.close()
        if self._registers is not None:
            self._registers.close()
            self._registers = None
        if self.bridge is not None and os.path.realpath(self.port) == \
                os.path.realpath(self.bridge.host_port):  # ours, not another board's since
            os.unlink(self.port)
        shutil.rmtree(self.tmp, ignore_errors=True)
        keys.forget(self.uid.hex())

    # ---- what the parts do for the board (their methods, their docstrings) ---------------------
    app_image_valid = _forward("_spi_flash", SpiFlash.app_valid)
    hold_in_reset = _forward("_chip", Chip.hold_in_reset)
    release_reset = _forward("_chip", Chip.release_reset)
    enter_download_mode = _forward("_chip", Chip.enter_download_mode)
    reset = _forward("_chip", Chip.reset)
    power_cycle = _forward("_chip", Chip.power_cycle)
    ticks = _forward("_chip", Chip.ticks)
    chip_seconds = _forward("_clock", ChipClock.seconds)
    inject = _forward("_injection", Injection.inject)
    remove = _forward("_injection", Injection.remove)
    pulse = _forward("_injection", Injection.pulse)
    link_faults = _forward("_injection", Injection.link_faults)
    write_points = _forward("_injection", Injection.write_points)
    cut_power_at = _forward("_injection", Injection.cut_power_at)
    reaction_ticks = _forward("_injection", Injection.reaction_ticks)
    heartbeat_lost_after_s = _forward("_injection", Injection.heartbeat_lost_after_s)
    insert_cartridge = _forward("_slot", CartridgeSlot.insert_cartridge)
    remove_cartridge = _forward("_slot", CartridgeSlot.remove_cartridge)
    cartridge = _forward("_slot", CartridgeSlot.cartridge)
    heartbeat_drops = _forward("_heartbeat", HeartbeatWatch.drops)
    heartbeat_max_gap_s = _forward("_heartbeat", HeartbeatWatch.max_gap_s)

    @property
    def url(self):
        """The board's UART as socket://127.0.0.1:PORT, for pyserial, `pen --port` and
        mpremote: the UART of `.port` with no PTY between (socket_port.py)."""
        return self._server(SocketPort).url

    @property
    def rfc2217_url(self):
        """The board as rfc2217://127.0.0.1:PORT, carrying DTR/RTS to its reset circuit."""
        return self._server(Rfc2217Server).url

    def _server(self, kind):
        if kind not in self._servers:
            self._servers[kind] = kind(self)
        return self._servers[kind]

    def written_at_tick(self, pin_name):
        """The tick (on the ticks() clock) at which the firmware last wrote this output
        pin: when it acted, however late a busy host lets a test look."""
        return self._chip.written_at_tick(self.definition["pins"][pin_name])

    @property
    def tick_s(self):
        return self.definition["timing"]["tick_ms"] / 1000

    @contextlib.contextmanager
    def host_stalled(self):
        """Keep the board's own threads (its physics, the watchdog, the reset line) from
        running while the block runs, as a host busy with other work can for seconds; the
        VM and the serial link go on. For tests of what a slow host must not change."""
        with self._lock:
            yield

    def standin_heap_bytes(self):
        """Heap the VM's stand-ins (machine, onewire, flash.py's write counting if asked for)
        took before boot.py: ROM on an ESP32, whose free heap is this much larger."""
        return self.regs[simhw.H_STANDIN_BYTES]

    def observe(self):
        """What the hardware is doing, read from the physics side."""
        with self._lock:
            self._injection.time_reaction()
            state = self.physics.observe()
        state["vm_running"] = self._vm.running()
        state["resets"] = list(self.resets)
        return state

    def check(self):
        """Raise VirtualBoardError if the VM crashed (died) since the board was made."""
        if self.crash:
            raise VirtualBoardError(self.crash)

    def output(self):
        return self.bridge.vm_output_tail()

    def diagnosis(self):
        """The board's state as a test that failed left it: what a flake needs explained."""
        regs = self.regs
        lines = [
            "resets %s, crashes %d, %s" % (self.resets, len(self.crashes),
                                           self._vm.describe()),
            "ticks %d, watchdog timeout %d ms; chip clock at last look %d ms, world %d ms "
            "(at most %d ms ahead of the chip at a look), the chip's clock left out %.3f s of "
            "the host's" % (
                self.ticks(), regs[simhw.H_WDT_TIMEOUT_MS], regs[simhw.H_VM_MS],
                regs[simhw.H_PHYS_MS], self.world_ahead_max_ms,
                self._clock.lag_s() + simhw.clock[4] / 1e6),
            "watchdog resets: %s" % ("; ".join(self.watchdog_verdicts) or "none"),
            "faults injected: %s; link: %s; host threads kept from running: physics %.2f s, "
            "link %.2f s" % (sorted(self.physics.faults), self.bridge.stats,
                              self._stalls.physics_s, self.bridge.stalled_s(time.monotonic())),
            "last output:", self.output()[-1500:]]
        return "\n".join(lines)
