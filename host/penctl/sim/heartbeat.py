"""The heartbeat monostable's window, judged in the board's own time.

The monostable itself is physics.py's (it holds both drivers' enable while retriggered);
this part sees each edge on the heartbeat pin and decides when a window has passed without
one: never by the host's wall clock, since a VM waiting for a host CPU is not a hung chip.
"""

import time

from .vm import simhw


class HeartbeatWatch:
    def __init__(self, definition, regs, physics, vm, clock, lock):
        self.lock = lock  # the board's: the physics thread steps under it
        self.timing = definition["timing"]
        self.pin = definition["pins"]["heartbeat"]
        self.regs = regs
        self.physics = physics
        self.vm = vm
        self.clock = clock
        self._seen = (0, 0)  # heartbeat pin's (level, stamp) at the last physics pass
        # watchdog feeds and host time at the last edge; the VM's CPU ns and the chip's
        # clock (s) once a window has gone without one
        self._edge = (0, 0.0, None, None)

    def drops(self):
        """Times the heartbeat monostable ran out and dropped both drivers."""
        return self.physics.beat_drops

    def max_gap_s(self, restart=False):
        """The longest simulated time between two heartbeat edges while the drivers were
        enabled (on a busy host it includes the VM's waits for a CPU); restart=True starts
        a new measurement."""
        with self.lock:
            gap = self.physics.beat_max_gap
            if restart:
                self.physics.beat_max_gap = 0.0
            return gap

    def float(self):
        """The heartbeat pin floats at a reset: the monostable lets go of both drivers at
        once."""
        self._seen = (0, 0)
        self.physics.beat_left = 0.0

    def watch(self):
        """Once per physics pass. Every change of the heartbeat output since the last pass
        is an edge for the monostable (its stamp changes even when two edges left the level
        as it was). Without one, the window has passed when the firmware ran a window's
        worth of control ticks, or spent a window of CPU time (a busy hang, a REPL loop),
        without an edge; a stopped VM (inject("hang")) has its window run in simulated time
        by the physics itself. The VM's CPU time is read only once a window of wall time
        has gone without an edge: a file read releases the GIL, and a physics thread that
        gave it up every pass fell behind on a busy host. Both count only while the chip's
        clock runs: a VM waiting for its world or its link (machine.py) spends CPU on the
        wait, and its clock leaves the wait out."""
        physics = self.physics
        physics.beat_counting = "hang" in physics.faults
        seen = (self.regs[simhw.slot(self.pin, simhw.G_OUT)],
                self.regs[simhw.slot(self.pin, simhw.G_STAMP)])
        feeds = self.regs[simhw.H_WDT_FEEDS]
        if seen != self._seen:
            self._seen = seen
            physics.retrigger()
            self._edge = (feeds, time.monotonic(), None, None)
            return
        if physics.beat_left <= 0 or physics.beat_counting:
            return
        window_ms = self.timing["heartbeat_ms"]
        edge_feeds, edge_at, edge_cpu, edge_chip = self._edge
        busy = False
        now = time.monotonic()
        if (now - edge_at) * 1000 > window_ms:
            cpu, chip = self.vm.cpu_ns(), self.clock.at(now)
            if edge_cpu is None:  # from here on, CPU time and the chip's
                self._edge = (edge_feeds, edge_at, cpu, chip)
            elif cpu is not None:
                # a window of CPU in a window of the chip's time: a VM waiting for its
                # world or its link spends CPU on the wait, none of it the chip's
                busy = cpu - edge_cpu >= window_ms * 1e6 and (chip - edge_chip) * 1000 >= window_ms
        if busy or (feeds - edge_feeds) * self.timing["tick_ms"] >= window_ms:
            physics.drop()
