"""How far the virtual board's world may follow the chip's clock (sim/chip_clock.py), on
plain stand-ins for the register file and the VM's sampler: the cases a loaded host makes
and a test run meets only now and then."""

import types

from penctl.sim import chip_clock
from penctl.sim.vm import simhw


def _clock(vm_ms, lag_ms):
    regs = [0] * 64
    regs[simhw.H_VM_MS], regs[simhw.H_VM_LAG_MS] = vm_ms, lag_ms
    vm = types.SimpleNamespace(sched=(0.0, 0.0, "S"), sched_at=0.0)
    physics = types.SimpleNamespace(faults={})
    return chip_clock.ChipClock(regs, vm, physics, tick_s=0.01), regs, vm


def test_a_vm_asleep_with_a_wait_it_has_not_told_holds_its_world_back():
    # The VM looks at 10.000 s of its clock; the host keeps it in the run queue 0.6 s; given
    # the CPU, it runs on into a sleep without a fresh look: its clock is 0.6 s behind the
    # host's figure of it (host time less the wait it told), and only the sampler knows
    # (the kernel counted the wait as the VM got the CPU)
    clock, regs, vm = _clock(10_000, 0)
    clock.reach(10.0)
    vm.sched, vm.sched_at = (0.0, 0.6, "S"), 10.6
    assert clock.reach(10.61) <= 10.0 + clock.lead_s + 1e-3
    # a VM that has not looked for long is idle (at a REPL): its world lives on
    vm.sched_at = 12.5
    assert clock.reach(12.5) == 12.5


def test_a_vm_asleep_without_looking_lets_its_world_follow_the_clock():
    # a VM at a REPL blocks on its input without looking at its clock: its world (and the
    # chip's time) runs on
    clock, regs, vm = _clock(10_000, 0)
    clock.reach(10.0)
    vm.sched, vm.sched_at = (0.0, 0.0, "S"), 10.7
    assert clock.reach(10.7) == 10.7
