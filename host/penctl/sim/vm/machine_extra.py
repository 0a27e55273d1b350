# The parts of the ESP32 port's `machine` the firmware calls seldom or never, loaded by
# machine.py's __getattr__ at their first use (mpremote's rtc, a test): on the VM they
# cost heap only then. Checked with machine.py against the port's argument tables
# (tests/test_standin_api.py).
import time

import simhw


class Signal:
    # extmod/machine_signal.c (v1.26.0): a Pin seen through `invert`
    def __init__(self, id, *, invert=False):
        self._pin = id
        self._invert = 1 if invert else 0

    def value(self, x=None):
        if x is None:
            return self._pin.value() ^ self._invert
        self._pin.value((1 if x else 0) ^ self._invert)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


class RTC:
    # machine_rtc.c (v1.26.0): datetime() reads the system time as (year, month, day,
    # weekday, hours, minutes, seconds, microseconds) and sets it from such a tuple (the
    # weekday ignored). The port counts from 2000 (py/mpconfig.h: MICROPY_EPOCH_IS_2000), and
    # a chip's time starts at 2000-01-01 00:00:00 at power-on. memory() is the user memory
    # in RTC RAM (RTC_NOINIT_ATTR), at most MICROPY_HW_RTC_USER_MEM_MAX bytes. Both live in
    # the RTC domain: every reset but a loss of power keeps them (simhw.R_*, chip.py).
    def __init__(self):
        r = simhw.regs
        if not r.get(simhw.R_TIME_SET):  # since power-on: 2000-01-01 from now
            self._offset(time.mktime((2000, 1, 1, 0, 0, 0, 0, 0)) * 1000000
                         - time.time_ns() // 1000)

    def _offset(self, us=None):
        r = simhw.regs
        if us is None:
            us = r.get(simhw.R_TIME_US) | r.get(simhw.R_TIME_US + 1) << 32
            return us - (1 << 64) if us >> 63 else us
        r.put(simhw.R_TIME_US, us & 0xFFFFFFFF)
        r.put(simhw.R_TIME_US + 1, (us >> 32) & 0xFFFFFFFF)
        r.put(simhw.R_TIME_SET, 1)

    def datetime(self, datetimetuple=None):
        t = time.time_ns() // 1000
        if datetimetuple is None:
            t += self._offset()
            x = time.localtime(t // 1000000)
            return (x[0], x[1], x[2], x[6], x[3], x[4], x[5], t % 1000000)
        x = datetimetuple
        self._offset(time.mktime((x[0], x[1], x[2], x[4], x[5], x[6], 0, 0)) * 1000000 + x[7]
                     - t)

    def memory(self, data=None):
        r = simhw.regs
        if data is None:
            return r.read(simhw.R_MEM * 4, r.get(simhw.R_MEM_LEN))
        if len(data) > simhw.R_MEM_MAX:
            raise ValueError("buffer too long")
        r.write(simhw.R_MEM * 4, bytes(data))
        r.put(simhw.R_MEM_LEN, len(data))


def _uname():
    # os.uname() (sim_start.py puts it in the VM's os): extmod/modos.c, the sysname and
    # nodename the platform, machine MICROPY_HW_BOARD_NAME " with " MICROPY_HW_MCU_NAME of
    # boards/ESP32_GENERIC; the release is the VM's own
    import sys
    from collections import namedtuple

    v = sys.implementation.version
    return namedtuple("uname_result", "sysname nodename release version machine")(
        "esp32", "esp32", "%d.%d.%d" % v[:3] + ("-" + v[3] if v[3] else ""),
        sys.version.split("MicroPython ")[-1], "Generic ESP32 module with ESP32")
