"""The virtual ESP32 itself: its reset lines (EN, and IO0 for the ROM's serial bootloader),
its boots and their reset causes, and what ends a run of the firmware: a panic (the VM
died), a reset the firmware asks for (machine.reset(), a power cut at a flash write), an
injected brown-out, the watchdog.

A boot is a new VM process on the same register file and flash: outputs float first, the
ROM boots MicroPython only from a valid app image (else it prints what a real ROM prints
and stays), and the reset cause is posted for machine.reset_cause(). The physics thread
calls watch() once per pass; release_reset() leaves the boot to it, since a VM dies with
the thread that started it (PR_SET_PDEATHSIG) and only long-lived threads may start one.
"""

import time

from ..firmware.codes import RESET_CAUSES
from .rom import ROMS, RomLoader
from .vm import simhw

# machine.reset_cause()'s values, as the protocol names them (the VM's own are machine.py's)
PWRON_RESET, HARD_RESET, WDT_RESET, SOFT_RESET = (
    RESET_CAUSES.index(name) for name in ("PWRON", "HARD", "WATCHDOG", "SOFT"))
_NO_APP = (b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET)\r\n"
           b"invalid header: 0xffffffff\r\n")


class Chip:
    def __init__(self, model, uid, registers, flash, vm, bridge, physics, *, clock, watchdog,
                 heartbeat, injection, lock, stop):
        self.model = model  # a ROMS key: the ROM the bootloader answers as
        self.uid = uid
        self.registers = registers
        self.regs = registers.regs
        self.flash = flash
        self.vm = vm
        self.bridge = bridge
        self.physics = physics
        self.clock = clock
        self.watchdog = watchdog
        self.heartbeat = heartbeat
        self.injection = injection
        self.lock = lock
        self.stop = stop
        self.crash = None  # the first crash, for VirtualBoard.check()
        self.crashes = []
        self.resets = []  # the cause of each boot
        self.power_cuts = 0
        self.booted_app = True
        self.ticks_before = 0  # control ticks of the firmware runs before this one
        self._boot_request = None  # True: ROM bootloader, False: MicroPython

    def float_outputs(self):
        self.registers.float_outputs()
        self.heartbeat.float()

    def boot(self, cause, raw=False):
        """Boot with this reset cause (raw: back into the raw REPL a soft reset came from)."""
        if self.stop.is_set():
            return
        regs = self.regs
        self.float_outputs()
        self.bridge.rom = None
        self.booted_app = self.flash.app_valid()
        if not self.booted_app:
            self.vm.proc = None
            self.bridge.send_to_host(_NO_APP)
            return
        regs[simhw.H_RESET_CAUSE] = cause
        self.physics.faults.pop("hang", None)  # a reset ends the hang: new firmware run
        if cause != SOFT_RESET:  # machine.WDT survives a soft reset, as on an ESP32
            self.ticks_before += regs[simhw.H_WDT_FEEDS]
            regs[simhw.H_WDT_TIMEOUT_MS] = 0
            regs[simhw.H_WDT_FEEDS] = 0
        regs[simhw.H_REQUEST] = 0
        regs[simhw.H_VM_MS] = 0  # this VM has not looked at its clock yet
        regs[simhw.H_VM_LAG_MS] = regs[simhw.H_STOPPED_MS] = 0  # nor waited for anything
        regs[simhw.H_LINK_MS] = 0
        regs[simhw.H_STANDIN_BYTES] = 0  # written once sim_start.py runs in the VM
        self.clock.new_vm()
        regs[simhw.H_BOOTS] += 1
        now = time.monotonic()
        self.watchdog.restart(now)
        self.vm.spawn(raw, now)
        self.bridge.vm_started(raw)
        self.resets.append(cause)

    # ---- the reset lines --------------------------------------------------------------
    def hold_in_reset(self):
        """EN held low: the chip stops; nothing runs until release_reset()."""
        with self.lock:
            self.vm.kill()
            self.bridge.rom = None
            self.float_outputs()

    def release_reset(self, download=False):
        """EN released: boot the ROM bootloader if IO0 is held low, else MicroPython.
        The physics thread does the boot (watch()): see above."""
        self._boot_request = bool(download)

    def enter_download_mode(self):
        """Hold IO0 low and pulse EN: the chip starts its ROM serial bootloader."""
        with self.lock:
            self.vm.kill()
            self.bridge.at_repl = False
            rom = ROMS[self.model](mac=self.uid)
            self.bridge.rom = RomLoader(self.flash.path, rom, self.flash.size)
            self.float_outputs()
            self.bridge.send_to_host(rom.banner)

    def reset(self, cause=HARD_RESET):
        """Press EN: the VM restarts from power-on state of its outputs."""
        with self.lock:
            self.vm.kill()
            self.boot(cause)

    def power_cycle(self, depth_mm=None):
        """Power off and on again: the firmware boots from power-on with the needles
        where they stood (power lost mid-run leaves them out), or at depth_mm."""
        with self.lock:
            self.vm.kill()
            self.float_outputs()
            if depth_mm is not None:
                self.physics.place_needles(depth_mm)
            self.physics.write_inputs()
            self.boot(PWRON_RESET)

    # ---- what ends a run, once per physics pass ---------------------------------------
    def watch(self, now):
        boot, self._boot_request = self._boot_request, None
        if boot is not None:
            if boot:
                self.enter_download_mode()
            else:
                self.boot(PWRON_RESET)
        proc = self.vm.proc
        if proc is None:
            return
        code = proc.poll()
        if code is not None:
            self.bridge.drain_vm()
            if code == 0 and self.bridge.at_repl:  # Ctrl-D at the REPL: soft reset
                self.bridge.send_to_host(b"MPY: soft reboot\r\n")
                self.boot(SOFT_RESET, raw=self.bridge.raw_repl)
            else:
                self._panic(code)
            return
        if self.injection.brownout_due():
            self.vm.kill()
            self.boot(PWRON_RESET)  # what the ESP32 port's reset_cause() says after one
            return
        request = self.regs[simhw.H_REQUEST]  # the cause the VM asks to boot with
        if request:
            self.vm.kill()
            if request == PWRON_RESET:  # the power failed at a write point: back on at once
                self.regs[simhw.H_CUT_AT] = 0
                self.power_cuts += 1
            self.boot(request)
            return
        if self.watchdog.bites(now):
            self.vm.kill()
            self.boot(WDT_RESET)

    def _panic(self, code):
        # A VM that died is a chip that panicked: an ESP32 resets at once (its outputs
        # float to their reset state) and boots again, reporting a hard reset
        # (ESP_RST_PANIC, modmachine.c). The crash stays recorded for check().
        self.float_outputs()
        crash = "the MicroPython VM exited (code %s); its last output:\n%s" % (
            code, self.bridge.vm_output_tail())
        self.crash = self.crash or crash
        self.crashes.append(crash)
        self.bridge.send_to_host(b"\r\nvirtual board: the MicroPython VM died (code %s): a "
                                 b"panic; rebooting\r\n" % str(code).encode())
        self.vm.proc = None
        self.boot(HARD_RESET)

    # ---- its tick clock ----------------------------------------------------------------
    def ticks(self):
        """Control ticks the firmware has run since the board was made, across resets:
        the board's own clock (it feeds the watchdog once per tick), which a VM waiting
        for a host CPU does not advance."""
        with self.lock:
            return self.ticks_before + self.regs[simhw.H_WDT_FEEDS]

    def written_at_tick(self, gpio):
        """The tick (on the ticks() clock) at which the firmware last wrote this output
        pin: when it acted, however late a busy host lets a test look."""
        with self.lock:
            return self.ticks_before + self.regs[simhw.slot(gpio, simhw.G_STAMP)]
