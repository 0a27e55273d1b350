# The chip's clock on the virtual board: the firmware's `time` module (sim_start.py puts it
# in sys.modules before anything else imports `time`; asyncio's scheduler reads it too).
# An ESP32's clock runs whatever the host does. This VM's CLOCK_MONOTONIC also runs while a
# busy host keeps the VM, or the physics it lives in, from running (seen: 0.63 s in one
# go), which the firmware took for 0.63 s without a keepalive and faulted LINK_LOST. So the
# chip's clock is its world's (board.py's physics thread): the time the world has lived, as
# of the host time it was stepped to, plus the host's time since then, but never more than
# LEAD_US past it: while the world is kept from running, the chip's clock waits for it.
# The registers are read at most once per millisecond of the host's clock; between reads the
# clock runs on from the last. It never goes back. The rest of `time` is the port's own.
# Allocation-free: small ints and the register file's one buffer.
from time import *  # noqa: F403

import simhw

_b = ticks_us  # noqa: F405  (the host's clock, CLOCK_MONOTONIC)
_m = ticks_add(0, -1)  # noqa: F405  (the port's ticks period, less one)
# host us at the last read of the registers, the world's lived us and host us read then
# (mod 2**32), the chip's us (unwrapped; from the host's clock at boot, so the ticks that
# asyncio's C task queue takes from the port's own clock for a new task are the chip's
# give or take what the world skipped), and the world's time it was last advanced from
_c = [0, 0, 0, 0, 0]


def ticks_us():
    c = _c
    now = _b()
    if (now - c[0]) & _m >= 1000:
        c[0] = now
        r = simhw.regs
        c[1] = r.get(simhw.H_WORLD_US)  # first: the host writes it second
        c[2] = r.get(simhw.H_WORLD_AT_US)
    v = (now - c[2]) & 0xFFFFFFFF  # both CLOCK_MONOTONIC
    if v > simhw.LEAD_US:
        v = 0 if v & 0x80000000 else simhw.LEAD_US  # (a world stepped after `now` was read)
    v = (c[1] + v) & 0xFFFFFFFF
    n = (v - c[4]) & 0xFFFFFFFF
    if n < 0x80000000:  # never back: a world's step read half-written, or a late read
        c[3] += n
        c[4] = v
    return c[3] & _m


def ticks_ms():
    ticks_us()
    return (_c[3] // 1000) & _m


ticks_us()
_c[3] = _b()
