"""The thread that drives the virtual board's world: every ~2 ms it steps the physics to
the chip's clock (chip_clock.py) and, on the same pass, lets the heartbeat monostable,
the timing of a reaction to an injected fault and the chip (its resets, panics and
watchdog) see what the firmware did."""

import time

from .vm import simhw

_CHUNK_S = 0.005  # the most simulated time the physics steps with one set of outputs


class PhysicsThread:
    def __init__(self, definition, regs, physics, *, clock, stalls, heartbeat, injection, chip,
                 lock, stop):
        self.step_s = definition["physics"]["step_s"]
        self.regs = regs
        self.physics = physics
        self.clock = clock
        self.stalls = stalls
        self.heartbeat = heartbeat
        self.injection = injection
        self.chip = chip
        self.lock = lock
        self.stop = stop

    def run(self):
        # The world lives the chip's time: simhw.py's clock, which leaves out the host time
        # the VM waited for a CPU, for this world, or was stopped. Each pass steps the world
        # up to the chip's clock as the VM last told it (host time less H_VM_LAG_MS), in
        # chunks of at most _CHUNK_S with one set of outputs, and after each chunk it shows
        # its inputs and stamps how far it got (H_PHYS_MS, on the chip's clock). Neither
        # runs ahead of the other on a busy host:
        # - the VM waits, off its clock, while the world is more than 15 ms behind
        #   (machine.py);
        # - the world waits, 5 ms past the VM's last look, while the VM may be
        #   kept from running (ChipClock.reach): its clock stands meanwhile.
        # So a second the host takes from either is lived by neither: the needles do not
        # move on outputs the firmware set before it (a busy host's second took them 0.4 mm
        # past the cap mid-ramp), and the firmware's window over the tachometer never
        # counts pulses its clock did not see (its rate read up to 4 % high).
        step = self.step_s
        physics = self.physics
        world = last_pass = time.monotonic()  # the chip's time the world has been stepped to
        while not self.stop.is_set():
            time.sleep(0.002)  # a pass every ~2 ms: the VM waits only past 15 ms
            now = time.monotonic()
            self.stalls.physics_s += max(0.0, now - last_pass - 0.015)
            last_pass = now
            reach = self.clock.reach(now)
            if self.clock.first_look():
                # a new VM's first look: from here on the world follows its chip's clock,
                # which starts where it likes (simhw.py), not where the last one left off
                world = reach
            world = max(world, reach - 1.0)  # a host asleep for longer: that time is lost
            with self.lock:
                self.heartbeat.watch()
                while reach - world > 1e-9:
                    elapsed = min(reach - world, _CHUNK_S)
                    world += elapsed
                    while elapsed > 1e-9:
                        dt = min(step, elapsed)
                        physics.step(dt)
                        elapsed -= dt
                    physics.write_inputs()
                    self.regs[simhw.H_PHYS_MS] = int(world * 1000) & 0xFFFFFFFF
                self.injection.time_reaction()
                self.chip.watch(now)
