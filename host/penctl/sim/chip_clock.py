"""The virtual chip's clock as the host sees it, and how far the world may follow it.

An ESP32's CPU is its own, so its clock never runs on while its code cannot. The VM's
clock (vm/simhw.py) is the host's less what the VM waited for a CPU, for its world or its
link, or was stopped; the VM tells the host at each fresh look (H_VM_MS, H_VM_LAG_MS). The
physics thread steps the world to this clock, the link stamps what it carried on it, and
the watchdog and the heartbeat judge the firmware by it. HostStalls counts the host time
the board's own threads were kept from running: the VM may have waited on them.
"""

import time

from .vm import simhw

_LOOKS_S = 0.5  # a VM that looked at its hardware this recently looks every tick
# the sampler reads the VM's state every 20 ms: older, its thread starved, and the VM may
# be waiting for a CPU unseen (the world let go ran 145 ms past a VM kept waiting: TACH_LOST)
_SAMPLE_STALE_S = 0.1
# A VM asleep (its sample says so) that waited for a CPU since its last look has not told
# that wait: it was given the CPU, ran on into a sleep without a fresh look (a look is at
# most once a millisecond), and its clock is behind the host's figure of it by the wait.
# The kernel counts a run-queue wait as the task gets the CPU, so the sampler sees it
# grow; the world waits for the VM's next look. Not for ever: a VM that has not looked for
# _IDLE_S is idle (at a REPL, in the lockout), and its world lives on. (The world ran 20
# ms past the chip in a loaded run, the VM at the idle class behind a busy process.)
_UNTOLD_S = 0.001
_IDLE_S = 2.0


class ChipClock:
    def __init__(self, regs, vm, physics, tick_s):
        self.regs = regs
        self.vm = vm
        self.physics = physics
        # How far the world may lead the VM's last look: it looks at every tick, and while
        # it waits for the next RTOS tick at least every 2 ms (machine.py's _Poll), so 5 ms,
        # not a whole control tick: a 10 ms lead and the 15 ms the world may lag (machine.py)
        # froze the tachometer across the no-pulse window of 2 ticks (a false TACH_LOST with
        # a starved physics thread)
        self.lead_s = min(tick_s, 0.005)
        self._new_vm = False  # a VM was spawned that has not looked at its clock yet
        # the VM's last look as told (H_VM_MS, H_VM_LAG_MS) and the host time it was seen
        self._look = (0, 0, 0.0)
        self._wait_at_look = 0.0  # the VM's run-queue wait (s) as sampled at that look
        self._starve_look = None  # the VM's last look when inject("starve") let it go
        # the most the world was ahead of the chip's clock at one of its looks (ms): the
        # world must never run ahead of a tick past the chip's last look, or the firmware
        # sees a turning motor give no tachometer pulses for the ticks it takes to catch up
        self.world_ahead_max_ms = 0

    def new_vm(self):
        """A new VM: its clock starts where it likes (simhw.py), not where the last one's
        left off, and it has not looked at it yet."""
        self._starve_look = None
        self._new_vm = True

    def first_look(self):
        """True once, at the new VM's first look: from here on the world follows its
        clock."""
        if self._new_vm and self.regs[simhw.H_VM_MS]:
            self._new_vm = False
            return True
        return False

    def let_go(self):
        """inject("starve") is over: the world waits for the VM's next look."""
        self._starve_look = self.regs[simhw.H_VM_MS]

    def lag_s(self):
        """How far the chip's clock is behind the host's, as of the VM's last look: the
        time it has left out, less its start ahead (simhw.py); 0 before that look."""
        lag_ms = self.regs[simhw.H_VM_LAG_MS]
        return (lag_ms - (1 << 32) if lag_ms >= 1 << 31 else lag_ms) / 1000

    def at(self, now):
        """The chip's clock (s) at host time `now`, as the VM last told what it left out."""
        return now - self.lag_s()

    def seconds(self):
        """(the chip's clock now in s, the boot it belongs to), or None before this VM has
        looked at its clock: the host's time less what the VM told its clock left out (its
        waits for a CPU, its world and its link). A clock of one boot only: each VM's
        starts where it likes."""
        if not self.regs[simhw.H_VM_MS]:
            return None
        return self.at(time.monotonic()), self.regs[simhw.H_BOOTS]

    def link_passed(self, now):
        """The link's thread ran a pass at `now`, carrying what had come: stamped on the
        chip's clock for the VM, which never runs ahead of its UART (machine.py). Only
        once this VM has looked at its clock: before, the lag figure is not its clock's."""
        if self.regs[simhw.H_VM_MS]:
            chip_ms = int(self.at(now) * 1000) & 0xFFFFFFFF
            self.regs[simhw.H_LINK_MS] = chip_ms or 1

    def reach(self, now):
        """How far the world may be stepped: to the chip's clock as the VM last told it,
        but no further than 5 ms (lead_s) past the VM's last look at its clock (when
        it looks next, if all is well) while the VM may be kept from running: the host's
        to schedule (runnable), stopped by inject("starve") or just let go, or simply
        looking every tick (a host that keeps it waiting may not let the sampler see that
        in time, and the world then runs ahead of a clock that left the wait out, with no
        tach pulses for as long: 20 ms ahead were 4 ticks without one, TACH_LOST). A VM
        that has not looked for _LOOKS_S (booting, at a REPL, in the lockout), as far as
        a fresh sample tells, and a hung one (inject("hang"): its clock runs on) hold
        nothing back."""
        chip = self.at(now)
        vm_ms = self.regs[simhw.H_VM_MS]
        lag_ms = self.regs[simhw.H_VM_LAG_MS]
        if vm_ms != self._look[0] and vm_ms and not self._new_vm:
            ahead = ((self.regs[simhw.H_PHYS_MS] - vm_ms + 2**31) & 0xFFFFFFFF) - 2**31
            self.world_ahead_max_ms = max(self.world_ahead_max_ms, ahead)
        # A look that told only a longer wait is a look too: a VM the host gives a CPU for
        # microseconds at a time (the idle class behind a busy process) tells its waits
        # with its clock's millisecond unchanged for long
        if (vm_ms, lag_ms) != self._look[:2]:
            self._look = (vm_ms, lag_ms, now)
            self._wait_at_look = self.vm.sched[1]
        faults = self.physics.faults
        if not vm_ms or "hang" in faults:
            return chip
        looked_s = now - self._look[2]
        held = (self.vm.sched[2] == "R" or now - self.vm.sched_at > _SAMPLE_STALE_S
                or "starve" in faults
                or vm_ms == self._starve_look or looked_s < _LOOKS_S
                or (self.vm.sched[1] - self._wait_at_look > _UNTOLD_S and looked_s < _IDLE_S))
        if not held:
            return chip
        since_ms = ((int(chip * 1000) - vm_ms + 2**31) & 0xFFFFFFFF) - 2**31
        return min(chip, chip - since_ms / 1000 + self.lead_s)


class HostStalls:
    """Host time the physics and the link threads were kept from running, in all."""

    def __init__(self, link):
        self.link = link
        self.physics_s = 0.0  # counted by the physics thread

    def seconds(self, now):
        return self.physics_s + self.link.stalled_s(now)
