# Register map of the virtual board's hardware, shared by the VM side (machine.py)
# and the host side (physics). A file of little-endian uint32 slots: the host maps it,
# the VM reads and writes single slots with seek/readinto, which allocates nothing.
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
H_REQUEST = const(6)  # VM asks the host for a reset: 1 soft, 2 hard, 3 power cut
H_WRITE_POINTS = const(7)  # flash write points passed since the board was made (flash.py)
H_CUT_AT = const(8)  # the write point at which power fails; 0: never
H_STANDIN_BYTES = const(9)  # heap the stand-ins took before boot.py (sim_start.py)
H_PHYS_MS = const(10)  # the physics is stepped up to this CLOCK_MONOTONIC ms (mod 2**32)
H_UID = const(11)  # 2 slots: the chip's 6-byte id (base MAC), low 4 bytes then high 2
H_VM_MS = const(13)  # the VM's clock (ms, mod 2**32) at its last look at the hardware
HEADER = const(16)
# per-GPIO slots
G_IN = const(0)  # level the outside world drives onto the pin
G_OUT = const(1)  # level the firmware drives (mode OUT)
G_MODE = const(2)  # 0 unset, 1 input, 2 output
G_PULL = const(3)  # 0 none, 1 up, 2 down
G_DUTY = const(4)  # PWM duty_u16
G_FREQ = const(5)  # PWM frequency, 0 = no PWM
G_ADC_UV = const(6)  # voltage on the pin, microvolts
G_COUNT = const(7)  # rising edges seen on the pin since power-on (wraps at 2**32)
G_STAMP = const(8)  # watchdog feeds (= control ticks done) when the output last changed
PER_GPIO = const(9)
GPIOS = const(40)
SLOTS = HEADER + GPIOS * PER_GPIO
SIZE = SLOTS * 4


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

    def put(self, n, v):
        b = self._b
        b[0] = v & 0xFF
        b[1] = (v >> 8) & 0xFF
        b[2] = (v >> 16) & 0xFF
        b[3] = (v >> 24) & 0xFF
        self._f.seek(n * 4)
        self._f.write(b)


regs = None


def attach(path):
    global regs
    regs = Regs(path)
    return regs
