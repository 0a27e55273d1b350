# The virtual board's flash as the firmware writes it, with power cuts for the tests.
# Every write point (a file opened for writing, each write, each close, each rename or
# remove) is counted in a register; when the count reaches H_CUT_AT the power fails there:
# a write lands half-done, nothing after it reaches the flash, and the host restarts the
# board from power-on. The firmware is not changed: open() and the os module are wrapped
# here, before it runs.
import builtins
import sys

import machine
import simhw

_open = builtins.open
_os = __import__("os")


def _point():
    """Count one write point; True if the power fails at it."""
    regs = simhw.regs
    n = regs.get(simhw.H_WRITE_POINTS) + 1
    regs.put(simhw.H_WRITE_POINTS, n)
    return n == regs.get(simhw.H_CUT_AT)


def _power_fails():
    simhw.regs.put(simhw.H_REQUEST, machine.PWRON_RESET)  # back on at once, from power-on
    while True:  # the host kills the VM: nothing more reaches the flash
        pass


class _WriteFile:
    def __init__(self, f):
        self._f = f

    def write(self, data):
        if _point():
            self._f.write(data[: len(data) // 2])  # a torn write
            _power_fails()
        return self._f.write(data)

    def close(self):
        if _point():
            _power_fails()
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getattr__(self, name):
        return getattr(self._f, name)


def _counted_open(name, mode="r", *args):
    f = _open(name, mode, *args)
    if "w" in mode or "a" in mode or "+" in mode:
        if _point():  # created or truncated, nothing written yet
            _power_fails()
        return _WriteFile(f)
    return f


class _CountedOS:
    def rename(self, old, new):
        if _point():
            _power_fails()
        _os.rename(old, new)

    def remove(self, name):
        if _point():
            _power_fails()
        _os.remove(name)

    def __getattr__(self, name):
        return getattr(_os, name)


def install():
    builtins.open = _counted_open
    sys.modules["os"] = _CountedOS()
