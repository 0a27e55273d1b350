"""The virtual ESP32 itself: its reset lines (EN, and IO0 for the ROM's serial bootloader),
its boots and their reset causes, and what ends a run of the firmware: a panic (the VM
died), a reset the firmware asks for (machine.reset(), a power cut at a flash write), an
injected brown-out, the watchdog.

A boot is a new VM process on the same register file and flash: outputs float first, the
ROM boots MicroPython only from a valid app image (else it prints what a real ROM prints
and stays), and the reset cause is posted for machine.reset_cause(). The physics thread
calls watch() once per pass; release_reset() leaves the boot to it, since a VM dies with
the thread that started it (PR_SET_PDEATHSIG) and only long-lived threads may start one.

Each boot prints what the chip prints before MicroPython starts (rom.py's boot_text: the
ROM's lines at 115200 with the reset's rst: code, the second-stage bootloader's up to its
entry), and a watchdog reset prints the task watchdog's panic first, as ESP-IDF does.
"""

import time

from ..firmware.codes import RESET_CAUSES
from .rom import ROMS, RomLoader
from .vm import simhw

# machine.reset_cause()'s values, as the protocol names them (the VM's own are machine.py's)
PWRON_RESET, HARD_RESET, WDT_RESET, SOFT_RESET = (
    RESET_CAUSES.index(name) for name in ("PWRON", "HARD", "WATCHDOG", "SOFT"))
# The task watchdog's panic as ESP-IDF v5 prints it (esp_task_wdt.c task_wdt_isr, then
# abort() and the panic handler): MicroPython's task is mp_task, pinned to core 1 on a
# dual-core ESP32 (ports/esp32/mpconfigport.h MP_TASK_COREID). The chip's firmware has no
# ELF here: the program counters are an example's, the SHA256 zeros.
_TASK_WDT = (b"E (%d) task_wdt: Task watchdog got triggered. The following tasks/users did "
             b"not reset the watchdog in time:\r\nE (%d) task_wdt:  - mp_task (CPU 1)\r\n"
             b"E (%d) task_wdt: Tasks currently running:\r\nE (%d) task_wdt: CPU 0: IDLE0"
             b"\r\nE (%d) task_wdt: CPU 1: mp_task\r\nE (%d) task_wdt: Aborting.\r\n\r\n"
             b"abort() was called at PC 0x400e0a7b on core 0\r\n\r\n\r\nBacktrace: "
             b"0x40081a7e:0x3ffbe9b0 0x4008a0b5:0x3ffbe9d0 0x4008f1f1:0x3ffbe9f0 "
             b"0x400e0a7b:0x3ffbea60 0x40082bd5:0x3ffbea80\r\n\r\n\r\n\r\n\r\n"
             b"ELF file SHA256: 0000000000000000\r\n\r\nRebooting...\r\n")


class Chip:
    def __init__(self, model, uid, registers, flash, vm, bridge, physics, *, clock, watchdog,
                 heartbeat, injection, lock, stop):
        self.model = model  # a ROMS key: the ROM the bootloader answers as
        self.rom = ROMS[model](mac=uid)
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
        self._boot_request = None  # (download, rst): the boot EN's release asks for
        self._booted_at = time.monotonic()

    def float_outputs(self):
        self.registers.float_outputs()
        self.heartbeat.float()

    def boot(self, cause, raw=False, rst=None):
        """Boot with this reset cause (raw: back into the raw REPL a soft reset came from),
        printing the ROM's text for `rst` (its default: power-on for PWRON, a software CPU
        reset for the resets the firmware or a panic asks for; none for a soft reset,
        which is MicroPython's own)."""
        if self.stop.is_set():
            return
        regs = self.regs
        self.float_outputs()
        self._leave_rom()
        self.booted_app = self.flash.app_valid()
        if cause != SOFT_RESET:
            if rst is None:
                rst = self.rom.POWERON if cause == PWRON_RESET else self.rom.SW_CPU
            self.bridge.send_to_host(self.rom.boot_text(rst, app=self.booted_app))
        if not self.booted_app:
            self.vm.proc = None
            return
        if self.flash.initial_setup():
            self.bridge.send_to_host(b"Performing initial setup\r\n")
        self._booted_at = time.monotonic()
        regs[simhw.H_RESET_CAUSE] = cause
        self.physics.faults.pop("hang", None)  # a reset ends the hang: new firmware run
        if cause != SOFT_RESET:  # machine.WDT survives a soft reset, as on an ESP32
            self.ticks_before += regs[simhw.H_WDT_FEEDS]
            regs[simhw.H_WDT_TIMEOUT_MS] = 0
            regs[simhw.H_WDT_FEEDS] = 0
            regs[simhw.H_CPU_MHZ] = 0  # the bootloader starts the CPU at its 160 MHz
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
            self._boot_request = None  # EN low again before the last release's boot
            self.vm.kill()
            self.registers.lose_power()
            self._leave_rom()
            self.float_outputs()

    def release_reset(self, download=False):
        """EN released: boot the ROM bootloader if IO0 is held low, else MicroPython.
        The physics thread does the boot (watch()): see above."""
        self._boot_request = (bool(download), self.rom.POWERON)

    def enter_download_mode(self, rst=None):
        """Hold IO0 low and pulse EN: the chip starts its ROM serial bootloader."""
        with self.lock:
            self.vm.kill()
            self._leave_rom()
            self.bridge.at_repl = False
            self.bridge.rom = RomLoader(self.flash.path, self.rom, self.flash.size,
                                        send=self.bridge.send_to_host, on_exit=self._rom_exit,
                                        alive=lambda: not self.stop.is_set())
            self.float_outputs()
            self.bridge.send_to_host(self.rom.boot_text(rst or self.rom.POWERON, download=True))

    def _leave_rom(self):
        if self.bridge.rom is not None:
            self.bridge.rom.stop()
            self.bridge.rom = None

    def _rom_exit(self, kind):
        """The loader ended (its own thread): run the flash's app, or a software reset
        back into the loader (the boot mode stays the one latched at power-on)."""
        self._boot_request = (kind == "rom", self.rom.SW_CPU)

    def reset(self, cause=PWRON_RESET):
        """Press EN: the VM restarts from power-on state of its outputs. EN is the chip's
        power-on reset: an ESP32 reports PWRON after it (ESP-IDF never returns an external
        reset on the ESP32; modmachine.c maps ESP_RST_POWERON to PWRON_RESET). EN low powers
        the chip down, its RTC domain with it (hold_in_reset too)."""
        with self.lock:
            self.vm.kill()
            if cause == PWRON_RESET:
                self.registers.lose_power()
            self.boot(cause)

    def power_cycle(self, depth_mm=None):
        """Power off and on again: the firmware boots from power-on with the needles
        where they stood (power lost mid-run leaves them out), or at depth_mm."""
        with self.lock:
            self.vm.kill()
            self.float_outputs()
            self.registers.lose_power()
            if depth_mm is not None:
                self.physics.place_needles(depth_mm)
            self.physics.write_inputs()
            self.boot(PWRON_RESET)

    # ---- what ends a run, once per physics pass ---------------------------------------
    def watch(self, now):
        boot, self._boot_request = self._boot_request, None
        if boot is not None:
            download, rst = boot
            if download:
                self.enter_download_mode(rst)
            else:
                self.vm.kill()
                self.boot(PWRON_RESET, rst=rst)
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
            # PWRON: what the ESP32 port's reset_cause() says after one. The RTC domain's
            # memory is kept: the supply dipped below the brown-out detector's ~2.4 V, far
            # above what static RAM needs to hold (docs/sessions.md: to check on a unit)
            self.vm.kill()
            self.boot(PWRON_RESET, rst=self.rom.BROWNOUT)
            return
        request = self.regs[simhw.H_REQUEST]  # the cause the VM asks to boot with
        if request:
            self.vm.kill()
            if request == PWRON_RESET:  # the power failed at a write point: back on at once
                self.regs[simhw.H_CUT_AT] = 0
                self.power_cuts += 1
                self.registers.lose_power()
            self.boot(request)
            return
        if self.watchdog.bites(now):
            self.vm.kill()
            ms = int((now - self._booted_at) * 1000)
            self.bridge.send_to_host(_TASK_WDT % ((ms,) * 6))
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
                                 b"panic\r\n\r\nRebooting...\r\n" % str(code).encode())
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
