# The chip's RTC domain: its clock, which the host sets at HELLO (wall-clock time for the
# session records), and its user memory, which keeps a mark across every reset but a loss
# of power (machine_rtc.c: RTC_NOINIT RAM; a watchdog reset, a panic, machine.reset() and
# a brown-out keep it: docs/sessions.md). Imported per use, never by the control tick.
from machine import RTC

_UNIX_2000 = 946684800  # the port counts from 2000-01-01 (MICROPY_EPOCH_IS_2000)
_SET_AFTER = 788918400  # 2025-01-01 on that count: earlier is a clock nobody set


def unix_now():
    """Seconds since 1970 by the RTC, or 0 while no host has set it since power-on."""
    import time

    d = RTC().datetime()  # once: two reads could straddle a second
    t = time.mktime(d[:3] + d[4:7] + (0, 0))
    return t + _UNIX_2000 if t >= _SET_AFTER else 0


def set_unix(seconds):
    import time

    x = time.gmtime(seconds - _UNIX_2000)
    RTC().datetime((x[0], x[1], x[2], x[6], x[3], x[4], x[5], 0))


def mark():
    """What was last kept in the RTC's memory (b"" after a power-on)."""
    return RTC().memory()


def set_mark(data):
    RTC().memory(data)
