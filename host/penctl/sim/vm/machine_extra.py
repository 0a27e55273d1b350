# The parts of the ESP32 port's `machine` that the firmware never calls, loaded by
# machine.py's __getattr__ at their first use (mpremote's rtc, a test): on the VM they
# cost heap only then. Checked with machine.py against the port's argument tables
# (tests/test_standin_api.py).
import time

import machine


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
    # a chip's time starts at 2000-01-01 00:00:00 at power-on. Here at each start of the VM
    # (a soft reset too, which the chip's time survives).
    def datetime(self, datetimetuple=None):
        t = time.time_ns() // 1000
        if datetimetuple is None:
            t += machine._rtc[0]
            x = time.localtime(t // 1000000)
            return (x[0], x[1], x[2], x[6], x[3], x[4], x[5], t % 1000000)
        x = datetimetuple
        machine._rtc[0] = (time.mktime((x[0], x[1], x[2], x[4], x[5], x[6], 0, 0)) * 1000000 + x[7]
                   - t)


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
