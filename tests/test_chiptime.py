"""The virtual board's chip clock (sim/vm/chiptime.py), run in the MicroPython VM, with the
host's clock and the world's registers played by the test."""

import subprocess

from penctl.sim.board import VM_DIR, find_micropython
from penctl.sim.vm import simhw

LEAD = simhw.LEAD_US

# runs in the VM: `steps` is a list of (host us, world's lived us, host us the world is
# at); prints the chip's ticks_us and ticks_ms after each (chip_clock() gives them from the
# first step's lived time on)
SCRIPT = """
import sys
sys.path.insert(0, %(vm_dir)r)
with open(%(regs)r, "wb") as f:
    f.write(bytes(%(size)d))
import simhw
regs = simhw.attach(%(regs)r)
import chiptime
import time
print(abs(chiptime.ticks_ms() - time.ticks_ms()) <= 1)
host = [0]
chiptime._b = lambda: host[0]
chiptime._c[:] = [0, 0, 0, 0, 0]  # as at boot, on the test's clocks
for us, lived, at in %(steps)r:
    host[0] = us
    regs.put(simhw.H_WORLD_US, lived & 0xFFFFFFFF)
    regs.put(simhw.H_WORLD_AT_US, at & 0xFFFFFFFF)
    print(chiptime.ticks_us(), chiptime.ticks_ms())
"""


def chip_clock(tmp_path, steps):
    script = SCRIPT % {"vm_dir": str(VM_DIR), "regs": str(tmp_path / "regs"),
                       "size": simhw.SIZE, "steps": steps}
    done = subprocess.run([find_micropython(), "-c", script], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr + done.stdout
    at_boot, *lines = done.stdout.split("\n")
    # the chip's clock starts at the port's own: asyncio's C task queue reads that for a
    # new task, and its sleeps read this one
    assert at_boot == "True"
    ticks = [tuple(int(x) for x in line.split()) for line in lines if line]
    return [(us - ticks[0][0] + steps[0][1], ms) for us, ms in ticks]  # from the first


def test_the_chip_lives_the_worlds_time(tmp_path):
    # the world stepped up to the host's clock, 7 s of the host's time that it never lived
    steps = [(7_000_000 + 5000 * i, 5000 * i, 7_000_000 + 5000 * i) for i in range(1, 4)]
    assert [us for us, _ in chip_clock(tmp_path, steps)] == [5000, 10000, 15000]


def test_the_chip_clock_runs_on_between_the_worlds_steps(tmp_path):
    # the world is stepped every ~2 ms; between steps the chip's time runs with the host's
    steps = [(10_000, 10_000, 10_000), (11_500, 10_000, 10_000), (12_500, 10_000, 10_000)]
    assert [us for us, _ in chip_clock(tmp_path, steps)] == [10_000, 11_500, 12_500]


def test_while_the_world_is_kept_from_running_the_chips_time_waits_for_it(tmp_path):
    # a busy host does not run the physics for 630 ms: the firmware sees LEAD_US pass, not
    # 630 ms; then the world lives LEAD_US, skips the rest, and the clock goes on from there
    steps = [(10_000, 10_000, 10_000), (640_000, 10_000, 10_000),
             (641_000, 10_000 + LEAD, 641_000), (646_000, 15_000 + LEAD, 646_000)]
    ticks = [us for us, _ in chip_clock(tmp_path, steps)]
    assert ticks == [10_000, 10_000 + LEAD, 10_000 + LEAD, 15_000 + LEAD]


def test_the_chip_clock_never_goes_back(tmp_path):
    # the world's step read half-written (the lived time of the step before, the host time
    # of the new one): a clock a little behind, which then stands still, never back
    steps = [(10_000, 10_000, 10_000), (11_500, 10_000, 10_000), (12_600, 10_000, 12_600),
             (13_700, 13_700, 13_700)]
    ticks = [us for us, _ in chip_clock(tmp_path, steps)]
    assert ticks == [10_000, 11_500, 11_500, 13_700]
