# The pen's state machine and control tick. Each tick: read every sensor, let the
# supervisor judge the readings, cut the motor at once on a fault, then run the state:
# homing, depth hold, rate ramp and PI. Commands from the host arrive as method calls
# that either change state or raise ProtocolError (and change nothing).
from array import array
from time import ticks_diff

import protocol as P
import wire
from board import u16
from caps import Caps
from depth import HOME_SENSOR_BAD, HOME_TIMEOUT, HOMED
from micropython import const
from pi import PI, fixed
from sensors import Readings

_STOPPED_CHZ = const(100)  # below 1 Hz the motor counts as stopped
_CARRY = const(0x20000000)  # a run's depth sum carries here: small ints on an ESP32
_MASK30 = const(0x3FFFFFFF)


class Controller:
    def __init__(self, board, motor, depth, sensors, supervisor):
        self.motor = motor
        self.depth = depth
        self.sensors = sensors
        self.sup = supervisor
        self.events = []  # event texts for the link task to send and log (post())
        self.r = Readings()
        self.state = P.BOOT
        self.faults = 0
        self.fault_log = []  # (uptime ms, code, detail) of latched faults
        lim = board["limits"]
        m = board["motor"]
        tick = board["timing"]["tick_ms"]
        self.tick_ms = tick
        self.caps = Caps(board)
        self.params = [0, 0, 20, lim["link_timeout_ms"], lim["run_limit_s"]]
        # warnings others report (warn()): W_CONFIG while the saved settings could not be
        # used, W_LOG while the event log cannot be read or written; a mask, as on the wire
        self.held = 0
        self.accepted = bytearray(len(self.params))  # 1: the parameter was set since boot
        self.accel_chz = max(1, m["accel_hz_per_s"] * 100 * tick // 1000)
        self.decel_chz = max(1, m["decel_hz_per_s"] * 100 * tick // 1000)
        self.pulse_ticks = max(1, lim["no_pulse_ms"] // tick)
        self.pi = PI(kp=fixed(m["kp_duty_per_hz"] * 65535 / 100),
                     ki=fixed(m["ki_duty_per_hz_s"] * 65535 / 100 * tick / 1000),
                     ff_gain=fixed(m["ff_duty_per_hz"] * 65535 / 100),
                     ff_offset=u16(m["ff_duty_offset"]), out_max=65535)
        self.rate_target = 0
        self.stopping = False
        self.stop_since = 0
        self.run_started = 0
        self.last_frame = 0
        self.warned = 0
        self.boot_ms = 0  # set by the app at its first tick
        # The run under way, for the treatment record (treatment.fold): strokes, depth x
        # strokes (um, below _CARRY) and its carries, ticks, deepest (um, at a stroke),
        # fastest (cHz), the stroke count at START. ran: a run ended and is not yet folded.
        self.acc = array("i", [0] * 7)
        self.ran = 0
        self.stroke_budget = _MASK30  # strokes the cartridge has left (treatment.admit)
        sensors.on_estop_open(self._estop_irq)

    # ---- the control tick (allocates nothing unless the state changes) --------------------------
    # Each method keeps its locals and stack within 11 words: a call beyond that gets its
    # frame from the heap and frees it again (py/objfun.c, VM_MAX_STATE_ON_STACK), which on
    # a fragmented heap cost more than the work itself (make bench).
    def tick(self, now_ms, now_us):
        r = self.r
        r.now_ms = now_ms
        self.sensors.read(r)
        self.depth.measure(r)
        self.motor.measure(r, now_us, self.pulse_ticks)
        r.link_age_ms = ticks_diff(now_ms, self.last_frame)
        r.run_ms = ticks_diff(now_ms, self.run_started) if self.state == P.RUNNING else 0
        r.depth_active = 1 if self.depth.homed and self.state != P.HOMING else 0
        r.cap_um = self.caps.cap_um
        self._judge(r)
        self._run_state(r, now_ms)

    def _judge(self, r):
        """The supervisor's verdict on this tick: the motor off at once on a fault; a
        warning that came or went told."""
        f = self.sup.check(r, self.state == P.RUNNING, self.params[P.P_LINK_TIMEOUT],
                           self.params[P.P_RUN_LIMIT] * 1000, self.faults)
        if f >= 0:
            self.motor.off()
            if not self.latched(f):
                self.trip(f, self.sup.detail)
        if self.sup.warnings != self.warned:
            self.warned = self.sup.warnings
            self.post("WARN", [wire.fixed("w", self.warned), wire.fixed("tc", r.temp_dc)])

    def _run_state(self, r, now_ms):
        st = self.state
        # The one path to the depth actuator's target: the set depth while the needles
        # run, never beyond the lower of the board's and the active profile's cap; 0
        # (needles in) in every other state and from STOP on.
        target = 0
        if st == P.RUNNING and not self.stopping:
            target = self.params[P.P_DEPTH]
            if target > r.cap_um:
                target = r.cap_um
        self.depth.target_um = target
        if st == P.RUNNING:
            self._run_motor(r, now_ms)
            r.following_um = self.depth.hold(r, True)
            self._account(r, now_ms)
        elif st == P.HOMING:
            self._home(r, now_ms)
        else:
            self._rest(r, now_ms)

    def _rest(self, r, now_ms):
        """Every state but RUNNING and HOMING: motor off, needles in. Where the position is
        not known (at boot: power lost or a watchdog reset mid-run leaves the needles out;
        an interrupted homing) the carriage is driven in to the home switch, unless a fault
        says the actuator cannot be trusted to move. BOOT ends once that is settled."""
        self.motor.off()
        d = self.depth
        r.following_um = 0
        if not (d.homed or d.homing or r.home_switch or self.faults & P.ACTUATOR_FAULTS):
            d.retract(now_ms)
        if self.state == P.BOOT and not d.homing:
            self._set_state(P.IDLE)
        if d.homed:
            r.following_um = d.hold(r, False)
        elif d.homing:
            if d.home_step(r, now_ms) == HOME_TIMEOUT:  # a retract does not judge the sensor
                self.trip(P.F_DEPTH_FOLLOWING, "retract: home switch not reached in %d ms"
                          % d.home_timeout_ms)
        else:
            d.stop()

    def _run_motor(self, r, now_ms):
        sp = r.setpoint_chz
        target = 0 if self.stopping else self.rate_target
        if sp < target:
            sp += self.accel_chz
            if sp > target:
                sp = target
        elif sp > target:
            sp -= self.decel_chz
            if sp < target:
                sp = target
        r.setpoint_chz = sp
        r.ramping = 1 if sp != target or self.stopping else 0
        if sp:
            # integrating while the setpoint ramps (sp short of target, or STOP) winds
            # the lag into an overshoot (pi.py). sp is the duty from here: a local more and
            # this frame would come from the heap (py/objfun.c, VM_MAX_STATE_ON_STACK)
            sp = self.pi.update(sp, r.rate_chz, sp == target)
            self.motor.drive(sp)
            return
        self.motor.off()
        # READY once the motor stopped and the needles are in; needles that do not
        # come in within a homing's time are an actuator fault (a jam short of the
        # following error's threshold once left the board stopping for ever)
        now_ms = ticks_diff(now_ms, self.stop_since)  # since STOP
        if (r.rate_chz < _STOPPED_CHZ or now_ms > 1000) and not self.depth.moving():
            self._set_state(P.READY)
        elif now_ms > self.depth.home_timeout_ms:
            self.trip(P.F_DEPTH_FOLLOWING, "needles not in %d ms after STOP" % now_ms)

    def _account(self, r, now_ms):
        """This tick into the run's figures; at the cartridge's stroke limit, STOP."""
        a = self.acc
        n = (r.strokes - a[6]) & _MASK30  # strokes since START
        d = n - a[0]  # this tick's
        a[0] = n
        a[3] += 1
        if d:
            d = a[1] + r.depth_um * d
            if d >= _CARRY:
                d -= _CARRY
                a[2] += 1
            a[1] = d
            if r.depth_um > a[4]:
                a[4] = r.depth_um
        if r.rate_chz > a[5]:
            a[5] = r.rate_chz
        if n >= self.stroke_budget and not self.stopping:
            self.stop(now_ms)
            self.post("LIMIT", [("strokes", n)], "the cartridge reached its stroke limit")

    def _home(self, r, now_ms):
        self.motor.off()
        done = self.depth.home_step(r, now_ms)
        if done == HOMED:
            self._set_state(P.READY)
        elif done == HOME_TIMEOUT:
            self.trip(P.F_DEPTH_FOLLOWING, "homing: home switch not reached in %d ms"
                      % self.depth.home_timeout_ms)
        elif done == HOME_SENSOR_BAD:
            self.trip(P.F_DEPTH_SENSOR, "homing: sensor %d mV at the home switch, expected %d..%d"
                      % (r.depth_mv, self.depth.home_mv_min, self.depth.home_mv_max))

    def _estop_irq(self, pin):
        # Soft IRQ (scheduled, like every Pin.irq on ESP32): the e-stop loop has already
        # cut the driver in hardware; this second layer drops PWM and enable and latches
        # the fault now, without waiting for the next tick.
        self.motor.off()
        if not self.latched(P.F_ESTOP):
            self.trip(P.F_ESTOP, "e-stop input opened (pin interrupt)")

    # ---- faults ------------------------------------------------------------------------------
    def trip(self, code, detail):
        self.motor.off()
        self.stopping = False
        self.rate_target = 0
        self.r.setpoint_chz = 0
        self.pi.reset()
        self.faults |= 1 << code
        d = self.depth
        r = self.r
        # an unfinished homing ends: _rest brings the needles in (the target is 0); an
        # actuator that cannot be trusted to move stays where it is and homes again
        d.abandon((1 << code) & P.ACTUATOR_FAULTS)
        readings = wire.fields(r, P.FAULT_READINGS)
        self.fault_log.append((ticks_diff(r.now_ms, self.boot_ms), code, detail, readings))
        if len(self.fault_log) > 16:
            self.fault_log.pop(0)
        self.post("FAULT", [("code", P.FAULTS[code][0]), readings], detail)
        self._set_state(P.ESTOP if code == P.F_ESTOP else P.FAULT)

    def post(self, name, fields=(), message="", first=False):
        """Queue event `name` for the host and the log (wire.text's arguments); first: ahead
        of those queued already (the BOOT record)."""
        self.events.insert(0 if first else len(self.events), wire.text(name, fields, message))

    def latched(self, code):
        return self.faults & (1 << code)

    def warn(self, w, why):
        """Warning w (P.W_CONFIG, P.W_LOG) held, told once with why; None: no longer."""
        bit = 1 << w
        if why is None:
            self.held &= ~bit
        elif not self.held & bit:
            self.held |= bit
            self.post("WARN", [("w", P.WARNINGS[w][0])], why)

    def holds(self, w):
        return self.held & (1 << w)

    def heard(self, now_ms):
        """A valid frame from the host: any keeps a run alive."""
        self.last_frame = now_ms

    def _set_state(self, new):
        if new != self.state:
            if self.state == P.RUNNING:
                self.ran = 1
            self.post("STATE", [("from", P.STATES[self.state]), ("to", P.STATES[new])])
            self.state = new

    # ---- commands --------------------------------------------------------------------------------
    def home(self, now_ms):
        if self.state not in (P.IDLE, P.READY):
            raise P.ProtocolError("STATE", "HOME needs IDLE or READY, board is %s"
                                  % P.STATES[self.state])
        self.depth.start_homing(now_ms)
        self._set_state(P.HOMING)

    def still(self):
        """Nothing moves: no run or homing, the motor stopped, the depth actuator settled
        (a flash write stalls the whole VM, so it waits for this). With a fault latched it
        is enough that the motor's outputs are off: its record must not wait for the motor
        to coast down (a brown-out may reset the chip first), and a stall leaves the
        actuator its last drive at most for the heartbeat's window."""
        if self.state == P.RUNNING or self.state == P.HOMING:
            return False
        if self.faults and not self.motor.duty:
            return True
        return self.r.rate_chz < _STOPPED_CHZ and not self.depth.moving()

    def require_still(self, what):
        """Refuse `what` while the needles run or the actuator homes."""
        if self.state in (P.RUNNING, P.HOMING):
            raise P.ProtocolError("STATE", "%s refused while %s: STOP first"
                                  % (what, P.STATES[self.state]))

    def set(self, settings):
        for i, value in settings:
            why = self.caps.beyond(i, value)
            if why:
                raise P.ProtocolError("CAP", why)
        for i, value in settings:
            self.params[i] = value
            self.accepted[i] = 1
        if self.state == P.RUNNING and not self.stopping:
            self.rate_target = self.params[P.P_RATE]

    def unset(self, i):
        """Parameter i back to 0, as if never set: START asks for it again."""
        self.params[i] = 0
        self.accepted[i] = 0

    def missing_for_start(self):
        r = self.r
        self.sensors.read(r)  # judge the switches as they are now, not at the last tick
        missing = []
        if self.state != P.READY:
            missing.append("state is %s, not READY" % P.STATES[self.state])
        if not self.depth.homed:
            missing.append("depth not homed")
        if not r.cartridge:
            missing.append("no cartridge")
        if r.estop_open:
            missing.append("e-stop open")
        if self.faults:
            missing.append("faults latched: " + P.mask_names(self.faults, P.FAULTS))
        self.depth.measure(r)  # where the needles stand, not only what was set
        if r.depth_um > self.caps.depth_um():
            missing.append("needles at %s mm measured, beyond the cap of %s mm" % (
                P.format_fixed(r.depth_um, 3), P.format_fixed(self.caps.depth_um(), 3)))
        for i in (P.P_DEPTH, P.P_RATE):
            why = self.caps.beyond(i, self.params[i])
            if not self.accepted[i]:
                missing.append("%s not set" % P.PARAMS[i][0])
            elif why:
                missing.append(why)
        return missing

    def start(self, now_ms, missing=None):
        """START with what treatment.admit found (or checks of its own)."""
        if missing is None:
            missing = self.missing_for_start()
        if missing:
            raise P.ProtocolError("PRECONDITION", "start refused: " + "; ".join(missing))
        self.sup.reset()
        self.pi.reset()
        self.r.setpoint_chz = 0
        self.rate_target = self.params[P.P_RATE]
        self.stopping = False
        self.run_started = now_ms
        self.last_frame = now_ms
        self.r.host_run = 1
        a = self.acc
        for i in range(6):
            a[i] = 0
        a[6] = self.r.strokes
        self._set_state(P.RUNNING)

    def stop(self, now_ms):
        if self.state == P.RUNNING and not self.stopping:
            self.stopping = True
            self.stop_since = now_ms
            self.r.host_run = 0  # stopping already: a silent host changes nothing now
        elif self.state == P.HOMING:
            self.depth.abandon()  # _rest drives in to the switch: not left where it stood
            self.depth.stop()
            self._set_state(P.IDLE)

    def clear(self):
        self.sensors.read(self.r)
        self.depth.measure(self.r)
        reasons = []
        for code in range(len(P.FAULTS)):
            if self.latched(code):
                why = self.sup.cause_present(code, self.r)
                # needles beyond the cap on a stopped actuator come in only once its own
                # fault is cleared (the retract then runs; OVERDEPTH may latch again on
                # the way): refusing here too would leave them out for good
                if why and not (code == P.F_OVERDEPTH and self.faults & P.ACTUATOR_FAULTS):
                    reasons.append("%s: %s" % (P.FAULTS[code][0], why))
        if reasons:
            raise P.ProtocolError("CAUSE_PERSISTS", "clear refused: " + "; ".join(reasons))
        if self.faults:
            self.post("CLEAR", [("faults", P.mask_names(self.faults, P.FAULTS))])
        self.faults = 0
        self.sup.reset()
        if self.state in (P.FAULT, P.ESTOP):  # an untrusted actuator is driven in (_rest)
            self._set_state(P.READY if self.depth.homed else P.IDLE)

    def internal_fault(self, exc):
        self.motor.off()
        if not self.latched(P.F_INTERNAL):
            self.trip(P.F_INTERNAL, "%s: %s" % (type(exc).__name__, exc))

    # ---- reporting ------------------------------------------------------------------------------
    def status(self):
        """The readings with the rest of the status fields (codes.FIELDS) filled in."""
        r = self.r
        r.state = self.state
        r.faults = self.faults
        r.warnings = self.sup.warnings | self.held
        r.setpoint_um = self.depth.setpoint_um
        r.duty_pm = r.drive_u16 * 1000 // 65535
        r.up_ms = ticks_diff(r.now_ms, self.boot_ms)
        return r
