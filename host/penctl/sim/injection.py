"""Faults a test injects into the virtual board: hardware faults by name (physics.FAULTS),
the few that reach past the physics (the link cut, a hung or starved VM, a depth slip, a
brown-out that resets the chip), a degraded link, and power cuts at flash write points.
It also times the firmware's reaction to an injected fault, in control ticks."""

import signal
import time

from ..errors import UsageError
from .physics import FAULTS
from .vm import simhw


class Injection:
    def __init__(self, definition, regs, physics, bridge, vm, clock, lock, count_writes):
        self.pins = definition["pins"]
        self.regs = regs
        self.physics = physics
        self.bridge = bridge
        self.vm = vm
        self.clock = clock
        self.lock = lock
        self.count_writes = count_writes
        # the simulated time (physics.t) at which an injected brown-out resets the chip: the
        # world's clock, which waits for a VM the host keeps from running (the host's own ran
        # out under load before the firmware had had its time to notice the sag and log it)
        self._brownout_at = None
        self._reaction = None  # [fault, watchdog feeds at injection, ticks to motor off]
        self.hang_at = None  # physics time of the last inject("hang")
        self._starved_at = None  # host time of the last inject("starve")

    def inject(self, name, **params):
        """Inject a hardware or link fault by name (see physics.FAULTS)."""
        if name not in FAULTS:
            raise UsageError("unknown fault %r; known: %s" % (name, ", ".join(sorted(FAULTS))))
        unknown = set(params) - set(FAULTS[name])
        if unknown:
            raise UsageError("fault %r takes no parameter %s" % (name, ", ".join(sorted(unknown))))
        with self.lock:
            physics = self.physics
            running = physics.motor_duty() > 0 or physics.enable_line()
            physics.faults[name] = dict(FAULTS[name], **params)
            proc = self.vm.proc
            if name == "link_cut":
                self.bridge.cut = True
            elif name == "hang" and proc is not None:
                proc.send_signal(signal.SIGSTOP)  # PWM and pins hold their last state
                self.hang_at = physics.t
            elif name == "starve" and proc is not None:
                proc.send_signal(signal.SIGSTOP)
                self._starved_at = time.monotonic()
            elif name == "depth_slip":
                physics.slip(physics.faults[name]["mm"])
            elif name == "brownout":
                self._brownout_at = physics.t + physics.faults[name]["after_s"]
            before = self.regs[simhw.H_WDT_FEEDS]
            physics.write_inputs()
            # The reaction counts from the ticks that can see the fault: the feed count is
            # read once the pins show it. Read before, a host thread preempted between the
            # two (a busy host) charged the firmware for ticks that ran before the fault;
            # read after, a tick that saw the fault, cut the motor and fed meanwhile came
            # out as a reaction of 0 ticks (a loaded run). Then the count before is used:
            # it may charge a tick too many, never one too few.
            feeds = self.regs[simhw.H_WDT_FEEDS]
            self._reaction = [name, feeds, None, before] if running else None

    def remove(self, name):
        """Remove an injected fault (nothing if it is not injected)."""
        with self.lock:
            self.physics.faults.pop(name, None)
            proc = self.vm.proc
            if name == "link_cut":
                self.bridge.cut = False
            elif name in ("hang", "starve") and proc is not None:
                if name == "starve" and self._starved_at is not None:
                    # a VM the host kept from running: none of the chip's time (simhw.py)
                    self.regs[simhw.H_STOPPED_MS] += round(
                        (time.monotonic() - self._starved_at) * 1000)
                    self._starved_at = None
                    self.clock.let_go()
                proc.send_signal(signal.SIGCONT)
            elif name == "brownout":
                self._brownout_at = None
            self.physics.write_inputs()

    def pulse(self, name, seconds=0.0003, **params):
        """Inject a fault for `seconds`, then remove it: an e-stop loop that opens for a
        fraction of a millisecond (a bounce, a loose contact). The physics does not step
        meanwhile, but the pins show it, and the pin's edge count (simhw G_COUNT) keeps the
        edge after the level is back, as the ESP32's GPIO interrupt latches an edge the
        CPU never sees as a level. Returns how long the pin really showed it: a busy
        host can preempt this thread mid-pulse."""
        with self.lock:
            self.inject(name, **params)
            start = time.perf_counter()
            while time.perf_counter() < start + seconds:  # sleep() overshoots a sub-ms pulse
                pass
            self.remove(name)
            return time.perf_counter() - start

    def brownout_due(self):
        """True once an injected brown-out has run its time: the supply recovers (the
        fault is removed) and the chip resets, as from power-on."""
        if self._brownout_at is not None and self.physics.t >= self._brownout_at:
            self.remove("brownout")
            return True
        return False

    def link_faults(self, drop=0.0, corrupt=0.0, duplicate=0.0, delay_s=0.0, seed=None):
        """Degrade the serial link in both directions, per byte."""
        self.bridge.set_faults(drop, corrupt, duplicate, delay_s, seed)

    # ---- the firmware's reaction ------------------------------------------------------
    def time_reaction(self):
        # Counted in control ticks, not seconds: the firmware feeds the watchdog once per
        # tick, so the feed counter is its tick clock, immune to a busy host.
        # If the motor comes back on (a control loop, not the interlock, turned it off),
        # the count starts over: what is kept is the tick of the last, lasting cut.
        r = self._reaction
        if r is None:
            return
        if self.physics.motor_duty() > 0 or self.physics.enable_line():
            r[2] = None
        elif r[2] is None:
            cut = max(self.regs[simhw.slot(self.pins[name], simhw.G_STAMP)]
                      for name in ("motor_pwm", "motor_enable"))
            seen_from = r[1] if cut >= r[1] else r[3]  # (see inject())
            r[2] = cut - seen_from + 1  # the tick that wrote the cut counts

    def reaction_ticks(self):
        """Control ticks from the last inject() to PWM 0 and enable low (None: not yet,
        or the motor was not running when the fault was injected)."""
        return None if self._reaction is None else self._reaction[2]

    def heartbeat_lost_after_s(self):
        """Simulated seconds from the last inject("hang") until the monostable dropped
        the drivers (None: not since)."""
        lost, hang = self.physics.beat_lost_at, self.hang_at
        return None if lost is None or hang is None or lost < hang else lost - hang

    # ---- power cuts at flash write points (vm/flash.py counts them) --------------------
    def write_points(self):
        """Flash write points the firmware has passed so far (vm/flash.py counts them)."""
        self._need_counting()
        return self.regs[simhw.H_WRITE_POINTS]

    def cut_power_at(self, point):
        """Make the power fail when the firmware reaches this write point (a count as
        write_points() gives it); the board then boots again from power-on."""
        self._need_counting()
        self.regs[simhw.H_CUT_AT] = point

    def _need_counting(self):
        if not self.count_writes:
            raise UsageError("this virtual board does not count flash writes; make it with "
                             "VirtualBoard(count_writes=True)")
