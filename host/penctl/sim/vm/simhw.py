# The virtual chip's own hardware: its register file and its clock.
# The register map, defined here once, is shared by the VM side (machine.py, flash.py) and
# the host side (register_file.py, physics.py, chip.py ...): the VM imports this file as
# `simhw`, a neighbour of the script it runs (sim_start.py), CPython as
# penctl.sim.vm.simhw; so it stays valid MicroPython. A file of little-endian uint32
# slots: the host maps it, the VM reads and writes single slots with seek/readinto, which
# allocates nothing.
# The clock is the firmware's `time` on the VM (sim_start.py puts this module in its
# place; see ticks_us). Names here are the port's own where they can be: each new name
# costs the VM an interned string, and the 621st a 7 KB pool (docs/figures.md#heap).
import time as real

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


MAGIC = const(0x50454E31)
# header slots
H_MAGIC = const(0)
H_RESET_CAUSE = const(1)
H_WDT_TIMEOUT_MS = const(2)
H_WDT_FEEDS = const(3)
H_IRQ_SEQ = const(4)
H_BOOTS = const(5)
H_REQUEST = const(6)  # VM asks the host for a reset, as the cause it boots with (machine.py's
# SOFT_RESET, HARD_RESET; PWRON_RESET: the power failed at a write point, flash.py)
H_WRITE_POINTS = const(7)  # flash write points passed since the board was made (flash.py)
H_CUT_AT = const(8)  # the write point at which power fails; 0: never
H_STANDIN_BYTES = const(9)  # heap the stand-ins took before boot.py (sim_start.py)
H_PHYS_MS = const(10)  # the physics is stepped up to this CLOCK_MONOTONIC ms (mod 2**32)
H_UID = const(11)  # 2 slots: the chip's 6-byte id (base MAC), low 4 bytes then high 2
H_VM_MS = const(13)  # the chip's clock (ms, mod 2**32) at its last look at it (tell())
H_VM_LAG_MS = const(14)  # host time the chip's clock has left out less its start ahead (ms,
# signed), as of that look: the chip's clock is the host's less this
H_STOPPED_MS = const(15)  # host time the VM was stopped by inject("starve") (ms, in all)
H_LINK_MS = const(16)  # the UART has carried what the host sent up to this chip-clock ms
# (mod 2**32; 0: not since this VM's first look)
H_ADC = const(17)  # 2 slots: the unit's true ADC reference (mV; 0: 1100) and the seed of
# its ADC noise (machine.py's ADC; VirtualBoard(adc_vref_mv=, seed=))
H_CPU_MHZ = const(19)  # the CPU's clock machine.freq() set (MHz; 0: the 160 it boots at); a
# soft reset keeps it, as on the chip (chip.py clears it on every other reset)
HEADER = const(20)
# per-GPIO slots
G_IN = const(0)  # level the outside world drives onto the pin
G_OUT = const(1)  # level the firmware drives (mode OUT)
G_MODE = const(2)  # machine.Pin's mode: IN or OUT below; 0 unset
G_PULL = const(3)  # machine.Pin's pull (PULL_UP, PULL_DOWN); 0 none
G_DUTY = const(4)  # PWM duty_u16
G_FREQ = const(5)  # PWM frequency, 0 = no PWM
G_ADC_UV = const(6)  # voltage on the pin, microvolts
G_COUNT = const(7)  # rising edges seen on the pin since power-on (wraps at 2**32)
G_STAMP = const(8)  # watchdog feeds (= control ticks done) when the output last changed
PER_GPIO = const(9)
GPIOS = const(40)
# machine.Pin's modes as the ESP32 port numbers them: machine.py's Pin takes them from here,
# the host's physics reads them in G_MODE (names the VM holds already: no new qstr)
IN = const(1)
OUT = const(3)
SLOTS = HEADER + GPIOS * PER_GPIO  # the GPIOs end here (float_outputs() stops at SLOTS)
# The needle cartridge's 1-Wire ID chip (vm/_onewire.py; VirtualBoard.insert_cartridge): it
# belongs to the cartridge, not the chip, so no reset touches it
C_CHIP = SLOTS  # the GPIO + 1 of the bus its chip answers on; 0: no chip
C_ROM = SLOTS + 1  # 2 slots: its 64-bit ROM id as sent (family code first, CRC-8 last)
C_MEM = SLOTS + 3  # 36 slots: its 144 bytes (DS2431: 4 pages of 32, then 16 of registers)
C_MEM_BYTES = const(144)
# The RTC domain: what survives every reset but a loss of power (chip.py clears it then).
# machine.RTC's user memory (machine_rtc.c: RTC_NOINIT_ATTR, MICROPY_HW_RTC_USER_MEM_MAX)
# and its time (the system time, kept by the RTC timer)
R_TIME_SET = SLOTS + 39  # 1: R_TIME_US holds the RTC's time less the host's
R_TIME_US = SLOTS + 40  # 2 slots: that difference (us, signed 64-bit, low slot first)
R_MEM_LEN = SLOTS + 42
R_MEM = SLOTS + 43
R_MEM_MAX = const(2048)
END = R_MEM + R_MEM_MAX // 4
SIZE = END * 4


def slot(gpio, field):
    return HEADER + gpio * PER_GPIO + field


def drive(n_value, n_stamp, value):
    """Write an output register; on a change, stamp it with the tick count, like a logic
    analyser next to the pin (how the tests count reaction times in ticks)."""
    r = regs
    if r.get(n_value) != value:
        r.put(n_value, value)
        r.put(n_stamp, r.get(H_WDT_FEEDS))


class Regs:
    """VM side: one open file, one 4-byte buffer, no allocation per access."""

    def __init__(self, path):
        self._f = open(path, "r+b")
        self._b = bytearray(4)

    def get(self, n):
        f = self._f
        b = self._b
        f.seek(n * 4)
        f.readinto(b)
        return b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)

    def read(self, addr, n):
        """n bytes at byte address addr (allocates: never from the control tick)."""
        self._f.seek(addr)
        return self._f.read(n)

    def write(self, addr, data):
        self._f.seek(addr)
        self._f.write(data)

    def put(self, n, v):
        b = self._b
        b[0] = v & 0xFF
        b[1] = (v >> 8) & 0xFF
        b[2] = (v >> 16) & 0xFF
        b[3] = (v >> 24) & 0xFF
        self._f.seek(n * 4)
        self._f.write(b)


regs = None
_f = None  # the VM's /proc/self/schedstat
_b = bytearray(64)
# host us at the last look at what the clock leaves out, the us it leaves out, the
# chip's last us, the us the VM has waited for its world (wait()), and how far the chip's
# clock starts ahead of the host's (19 h, more than it can ever leave out: asyncio's C task
# queue keys a task pushed without a time by the host's clock, which must never be ahead
# of the chip's, or a new task would first wait out the difference)
clock = [0, 0, 0, 0, 1 << 36]
_told = [0, 0]  # the chip's ms and lag ms last told (tell())


def attach(path):
    """VM side: map the registers and become the firmware's `time`."""
    global regs, _f
    regs = Regs(path)
    _f = open("/proc/self/schedstat", "rb")
    for name in ("ticks_diff", "ticks_add", "ticks_cpu", "sleep", "sleep_ms", "sleep_us"):
        globals()[name] = getattr(real, name)
    return regs


# The port's calendar counts from 2000-01-01 (py/mpconfig.h MICROPY_EPOCH_IS_2000), the unix
# port's from 1970; an ESP32 has no time zone (localtime is gmtime). The host's clock stands
# in for the RTC's here: machine.RTC keeps what a host set apart (machine_extra.py). The
# unix port's mktime reads its tuple in the host's zone, so its localtime is the inverse.
_EPOCH = 946684800


def time():
    return real.time() - _EPOCH


def time_ns():
    return real.time_ns() - _EPOCH * 1000000000


def gmtime(secs=None):
    return real.localtime(real.time() if secs is None else secs + _EPOCH)


localtime = gmtime


def mktime(t):
    return real.mktime(t) - _EPOCH


# ---- the chip's clock (VM side) ---------------------------------------------------------
# An ESP32's CPU is its own, so its clock never runs on while its code cannot. The VM
# shares a host's CPUs: a busy host keeps it waiting for one (the kernel's run-queue
# wait) or for its world (a starved physics thread, machine.py), and a test may stop it
# as a busy host would (inject("starve"), H_STOPPED_MS). The chip's clock leaves all of
# that out, so the firmware never sees a jump a real chip cannot have (a VM kept waiting
# 0.6 s saw its link silent for 0.6 s, and its tachometer's pulses of 0.6 s in one tick).
# The host's physics follows this clock (H_VM_MS, H_VM_LAG_MS): chip and world live the
# same time.


def waiting():
    """Host us this VM has waited: for a CPU (/proc/self/schedstat: "<CPU ns> <run-queue
    wait ns> <slices>", parsed in place: the control tick allocates nothing), for its
    world, or stopped."""
    f = _f
    b = _b
    f.seek(0)
    n = f.readinto(b)
    i = 0
    while i < n and b[i] != 32:
        i += 1
    i += 1
    t = 0
    while i < n and 48 <= b[i] <= 57:
        t = t * 10 + b[i] - 48
        i += 1
    return t // 1000 + clock[3] + regs.get(H_STOPPED_MS) * 1000


def ticks_us():
    c = clock
    now = real.ticks_us()
    fresh = real.ticks_diff(now, c[0]) >= 1000  # looked at no more than once per millisecond
    if fresh:
        c[0] = now
        dt = waiting()
        if dt > c[1]:
            c[1] = dt
    now = real.ticks_add(now, c[4] - c[1])
    if real.ticks_diff(now, c[2]) < 0:  # a wait seen late: the clock stands, never goes back
        now = c[2]
    c[2] = now
    if fresh:
        tell(now // 1000)
    return now


def tell(now_ms):
    """Tell the host's world where the chip's clock is and what it has left out, at every
    fresh look at the clock, not only at the hardware: a VM that woke from a wait for a CPU
    to read a line, and went back to sleep without a control tick, had told nothing of that
    wait, and a world that took its last figure for current ran ahead of the chip (no
    tachometer pulses for the ticks that followed: TACH_LOST)."""
    lag_ms = ((clock[1] - clock[4]) // 1000) & 0xFFFFFFFF
    now_ms &= 0xFFFFFFFF
    if now_ms == _told[0] and lag_ms == _told[1]:
        return  # a peripheral access right after a fresh look: told already
    _told[0], _told[1] = now_ms, lag_ms
    r = regs
    # what the clock left out, less its start ahead: first, as the host reads them
    r.put(H_VM_LAG_MS, lag_ms)
    r.put(H_VM_MS, now_ms)


def ticks_ms():
    return ticks_us() // 1000


def wait(ms):
    """The VM waits for its world: host time that is none of the chip's."""
    c = clock
    start = real.ticks_us()
    dt = waiting()
    real.sleep_ms(ms)
    t = waiting()  # one read after the sleep: each is a system call
    dt = real.ticks_diff(real.ticks_us(), start) - (t - dt)  # less a CPU wait meanwhile
    c[3] += dt
    if t + dt > c[1]:  # what waiting() says now
        c[1] = t + dt


def host_io(began):
    """A file operation on the host (the flash's files) that began at began[0] (us),
    when waiting() said began[1], has ended: its host time is none of the chip's. A busy
    host's disk once held a settings file's rename 2 s in the kernel (state D), the
    chip's clock ran on, and the watchdog reset a firmware that had not hung; the flash
    itself takes milliseconds."""
    if began is None:
        return
    c = clock
    t = waiting()
    dt = real.ticks_diff(real.ticks_us(), began[0]) - (t - began[1])  # less a CPU wait
    if dt > 0:
        c[3] += dt
        if t + dt > c[1]:
            c[1] = t + dt
