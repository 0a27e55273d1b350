# `make bench` only (vm_process.TIME_TICKS): the control tick's time on the VM split into
# the firmware's share and the stand-ins'. On an ESP32 `machine` and `time` are C in ROM;
# here they are Python over a register file (system calls), which costs the VM more than
# the firmware's own code, so only the firmware's share is scaled to the chip
# (penctl/cpu_estimate.py). Every stand-in call (machine's classes and functions, the
# firmware's `time`) is timed with the unix port's own clock; calls nested in a timed one
# are the stand-in's own. gc.mem_alloc is timed apart: on the chip it scans the heap.
# A tick during which the VM waited (for a CPU, for its world: simhw.waiting) is left
# out. Between ticks cpu_probe.py's work is timed the same way: the VM's speed at the same
# moments. The totals go to a file opened before the host's filesystem is unmounted.
# The VM runs this file in place of sim_start.py, which it then runs: every other VM's
# start, and so its heap, stays as it is.
import gc
import sys

import simhw

cpu_probe = machine = None  # imported once the firmware's clock is the chip's (below)

real = simhw.real
# ticks, total us, stand-in us, stand-in calls, mem_alloc calls, mem_alloc us, ticks left
# out, the largest firmware share (us), the wrapper's own cost per call (ns), heap blocks,
# cpu_probe passes and their us (run between ticks: the VM's speed at the same moments)
acc = [0] * 12
cur = [0, 0, 0, 0, 0]  # this tick's stand-in us, calls, mem_alloc calls and us; nesting
_out = []
_PROBE = 100  # cpu_probe passes: ~0.3 ms on the development machine's VM


_NO = object()


def timed(f):
    # positional arguments only, so that a call allocates nothing (a *args tuple or a
    # **kwargs dict per call made the VM collect garbage inside the ticks it timed): the
    # methods called with keywords (init, irq) run at setup and are not wrapped. Nor does
    # its frame: arguments, locals, the closed-over f and the stack within 11 words, and no
    # handler (3 words more). A larger frame comes from the heap (py/objfun.c,
    # VM_MAX_STATE_ON_STACK), before t0, so that the firmware was charged for it: ~20
    # stand-in calls a tick, each a search of the VM's fragmented heap that overhead_ns(),
    # timed on a fresh heap, did not see. A stand-in that raises leaves cur[4] set: tick()
    # clears it.
    def call(a=_NO, b=_NO, c=_NO):
        n = cur
        if n[4]:
            return f() if a is _NO else f(a) if b is _NO else f(a, b) if c is _NO else f(a, b, c)
        n[4] = 1
        t0 = real.ticks_us()
        a = f() if a is _NO else f(a) if b is _NO else f(a, b) if c is _NO else f(a, b, c)
        t0 = real.ticks_diff(real.ticks_us(), t0)
        n[0] += t0
        n[1] += 1
        n[4] = 0
        return a
    return call


class Gc:
    # the firmware's gc: mem_alloc timed, the rest the VM's own
    def __getattr__(self, name):
        return getattr(gc, name)

    def mem_alloc(self):
        c = cur
        t0 = real.ticks_us()
        n = gc.mem_alloc()
        c[3] += real.ticks_diff(real.ticks_us(), t0)
        c[2] += 1
        return n


def tick(inner):
    def run(self):
        c = cur
        c[0] = c[1] = c[2] = c[3] = c[4] = 0
        w0 = simhw.waiting()
        t0 = real.ticks_us()
        inner(self)
        t = real.ticks_diff(real.ticks_us(), t0)
        a = acc
        if simhw.waiting() != w0:
            a[6] += 1
            return
        a[0] += 1
        a[1] += t
        a[2] += c[0]
        a[3] += c[1]
        a[4] += c[2]
        a[5] += c[3]
        fw = t - c[0] - c[3]
        if fw > a[7]:
            a[7] = fw
        if a[0] % 20 == 0:
            # the probe after this tick, with its time: the factor's VM rate in the same
            # window and under the same load as the ticks (cpu_estimate.py)
            w0 = simhw.waiting()
            t0 = real.ticks_us()
            cpu_probe.passes(_PROBE)
            t = real.ticks_diff(real.ticks_us(), t0)
            if simhw.waiting() == w0:
                a[10] += _PROBE
                a[11] += t
        if a[0] % 200 == 0:
            # what gc.mem_alloc scans: a block is 4 words (py/mpconfig.h)
            a[9] = (gc.mem_alloc() + gc.mem_free()) // (32 if sys.maxsize > 1 << 32 else 16)
            f = _out[0]
            f.seek(0)
            f.write(" ".join(str(x) for x in a) + "\n")
            f.flush()
    return run


def _hook(f):
    # App.tick is wrapped at the first stand-in call after the firmware imported app
    def call(a):
        if not _out[1]:
            app = sys.modules.get("app")
            if app is not None:
                _out[1] = 1
                app.App.tick = tick(app.App.tick)
        return f(a)
    return call


def overhead_ns(n=2000):
    """What a timed call costs beyond the call itself and the time it measures."""
    def nop():
        pass
    w = timed(nop)
    best = None
    for _ in range(5):
        cur[0] = 0
        t0 = real.ticks_us()
        for _ in range(n):
            w()
        tw = real.ticks_diff(real.ticks_us(), t0) - cur[0]
        t0 = real.ticks_us()
        for _ in range(n):
            nop()
        tn = real.ticks_diff(real.ticks_us(), t0)
        d = (tw - tn) * 1000 // n
        best = d if best is None or d < best else best
    cur[0] = 0
    return max(0, best)


def install(path):
    _out.extend([open(path, "w"), 0])
    acc[8] = overhead_ns()
    for name in dir(machine):
        obj = getattr(machine, name)
        if name.startswith("_") or obj is simhw:
            continue
        if isinstance(obj, type):
            for m in dir(obj):
                f = getattr(obj, m)
                if (m not in ("init", "irq") and (not m.startswith("_") or m == "__call__")
                        and type(f) is type(timed)):
                    setattr(obj, m, timed(_hook(f) if m == "feed" else f))
        elif type(obj) is type(timed):
            setattr(machine, name, timed(obj))
    simhw.ticks_us = timed(simhw.ticks_us)
    simhw.ticks_ms = timed(simhw.ticks_ms)
    sys.modules["gc"] = Gc()


if __name__ == "__main__":
    # what sim_start.py does first, so that machine.py's `time` is the chip's clock; it
    # does it again, on the modules already imported and wrapped here
    simhw.attach(sys.argv[1])
    sys.modules["time"] = simhw
    import cpu_probe
    import machine

    install(sys.argv[1] + ".ticks")
    start = sys.argv[0][: sys.argv[0].rfind("/") + 1] + "sim_start.py"
    with open(start) as f:
        code = compile(f.read(), start, "exec")
    exec(code, {"__name__": "__main__"})
