"""The virtual chip's task watchdog (machine.WDT: the VM posts its timeout and counts its
feeds in the register file), judged in the chip's time, not the host's: a busy host that
keeps the VM waiting for a CPU, or starves the physics it waits for, has not hung the
firmware."""

from .vm import simhw


class Watchdog:
    def __init__(self, regs, vm, clock, stalls, physics):
        self.regs = regs
        self.vm = vm  # its CPU figures (VmProcess.sched, sampled every 20 ms)
        self.clock = clock
        self.stalls = stalls
        self.physics = physics  # its faults: a starved VM is waiting, not hung
        self.verdicts = []  # why each watchdog reset happened
        # (feeds, host time, VM CPU s, VM run-queue wait s, chip lag s, stalled s) at the
        # last feed seen
        self._seen = (0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def restart(self, now):
        """A new VM: it has run and waited for nothing yet."""
        self._seen = (0, now, 0.0, 0.0, 0.0, self.stalls.seconds(now))

    def bites(self, now):
        """True if the watchdog resets the chip now (its verdict kept in `verdicts`).

        It resets the chip once, since the last feed, the VM (its figures from the
        sampler) has
        - run a timeout's worth of CPU time (a loop that never yields), or
        - not been runnable (asleep, blocked, or stopped by inject("hang")) and the host's
          time less what the chip's clock left out (the VM's run-queue waits, as the
          kernel or the VM told them, and its waits for its world) and less the host's
          stalls of the physics and the link (a VM writing waits for the link; a stopped
          one waits for neither) exceeds the timeout.
        A VM that is runnable but not running is waiting for the host: never judged then.
        The sampler's figures may be stale (its thread starved too): a reset is decided
        on a fresh sample, read here only then (a read gives the GIL away)."""
        timeout = self.regs[simhw.H_WDT_TIMEOUT_MS]
        feeds = self.regs[simhw.H_WDT_FEEDS]
        if feeds != self._seen[0] or not timeout:
            cpu, waited, _ = self.vm.sched
            self._seen = (feeds, now, cpu, waited, self.clock.lag_s(), self.stalls.seconds(now))
            return False
        if (now - self._seen[1]) * 1000 <= timeout:
            return False
        if not self._expired(now, timeout):
            return False
        self.vm.sample_now()
        if not self._expired(now, timeout):
            return False
        self.verdicts.append(self._verdict(now))
        return True

    def _since_feed(self, now):
        """Since the last feed: (host s, VM CPU s, VM run-queue wait s, VM state, s the
        chip's clock left out, s the host's physics and link threads were stalled)."""
        cpu, waited, state = self.vm.sched
        _, fed_at, fed_cpu, fed_waited, fed_lag, fed_stalls = self._seen
        return (now - fed_at, cpu - fed_cpu, waited - fed_waited, state,
                self.clock.lag_s() - fed_lag, self.stalls.seconds(now) - fed_stalls)

    def _expired(self, now, timeout):
        host_s, ran_s, waited_s, state, lag_s, stalls_s = self._since_feed(now)
        if state == "T":  # stopped (inject("hang")): it waits on no thread of the host's
            stalls_s = 0.0
        chip_s = host_s - max(waited_s, lag_s) - stalls_s
        # in the run queue, or in the host's kernel on its disk (D: the flash's files,
        # whose host time the VM leaves out of its clock when the call returns)
        waiting = state in ("R", "D") or "starve" in self.physics.faults
        return ran_s * 1000 >= timeout or (not waiting and chip_s * 1000 > timeout)

    def _verdict(self, now):
        """What a watchdog reset was decided on, for diagnosis(): a reset a test did not
        expect must say whether the VM hung or the host kept it (or the link) waiting."""
        host_s, ran_s, waited_s, state, lag_s, stalls_s = self._since_feed(now)
        return ("%.2f s of host time since the last feed: the VM ran %.2f s, waited %.2f s "
                "for a CPU (state %s, in %s), its clock left out %.2f s, host threads stalled "
                "%.2f s; the world %+d ms from the VM's last look"
                % (host_s, ran_s, waited_s, state, self.vm.kernel_wait(), lag_s, stalls_s,
                   self.regs[simhw.H_PHYS_MS] - self.regs[simhw.H_VM_MS]))

