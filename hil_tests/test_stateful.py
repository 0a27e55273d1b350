"""Stateful property testing: random sequences of commands and injected faults against a
virtual board, with invariants checked from the physics side after every step.

- the motor turns only while the firmware says RUNNING and every precondition holds;
- the needles never stand deeper than the active profile's cap (sampled every 10 ms from the
  physics side through profile switches, DEFAULTS, resets and power cycles with the needles
  left anywhere), and a brief hang moves them less than 0.1 mm;
- an injected fault ends with the motor off within its stated reaction, in control ticks;
- the firmware never crashes and always answers.

`make test` runs a few short examples; `make soak` runs many (PEN_SOAK_N).
"""

import os

import pytest
from conftest import DepthWatch, board_sleep, motor_stopped, wait_until
from hazards import INTERLOCKS, stated_reaction_ticks
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from penctl import Pen, PenError
from penctl.firmware.protocol import PROFILES
from penctl.sim import VirtualBoard

pytestmark = pytest.mark.injects
EXAMPLES = int(os.environ.get("PEN_SOAK_N", "3"))
STEPS = int(os.environ.get("PEN_SOAK_STEPS", "12"))
# SPEED takes 0.5 s+; a slip moves the needles itself (test_interlocks judges that trip)
VISIBLE = sorted(k for k in INTERLOCKS if k not in ("driver_short", "depth_slip"))
# faults that leave the actuator where it stands: a boot latches them instead of retracting
ACTUATOR = {"depth_jam", "depth_sensor_open"}

depths = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.5, 2.5, 2.55, 3.0, 3.5, -0.1]),
                   st.floats(allow_nan=True, allow_infinity=True))
rates = st.one_of(st.sampled_from([25, 60.5, 100, 150, 150.1, 10, 0]),
                  st.floats(allow_nan=True, allow_infinity=True))


TALLY = {"runs": 0, "checks": 0}  # machines run; times the invariants ran


class PenMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        TALLY["runs"] += 1
        fw = os.environ.get("PEN_FIRMWARE_DIR")
        self.board = VirtualBoard(firmware_dir=fw).__enter__()
        self.pen = Pen(self.board.url)
        self.injected = set()
        self.cap = self.board.definition["depth"]["cap_mm"]
        self.ticks = []  # reaction counts seen
        self.settings_accepted = False
        self.watch = DepthWatch(self.board, PROFILES[0][1] / 1000).start()

    def teardown(self):
        try:
            self.watch.stop()
            self.pen.close()
        finally:
            self.board.__exit__(None, None, None)

    def _try(self, call, *args, **kwargs):
        try:
            result = call(*args, **kwargs)
            self._last_ok = True
            return result
        except PenError:
            self._last_ok = False
            return None  # refusals are fine; the invariants judge what happened

    @rule()
    def home(self):
        self._try(self.pen.home, timeout=6)

    @rule(depth=depths, rate=rates)
    def set(self, depth, rate):
        if self._try(self.pen.set, depth_mm=depth, rate_hz=rate) is not False:
            self.settings_accepted |= self._last_ok

    @rule()
    def start(self):
        self._try(self.pen.start)

    @rule()
    def stop(self):
        self._try(self.pen.stop)

    @rule()
    def clear(self):
        self._try(self.pen.clear)

    @rule(name=st.sampled_from([p[0] for p in PROFILES]))
    def use_profile(self, name):
        cap = min(p[1] for p in PROFILES if p[0] == name) / 1000
        self.watch.cap_mm = min(self.watch.cap_mm, cap)  # stricter from the request on
        if self._try(self.pen.use_profile, name) is not None:
            self.watch.cap_mm = cap
            self.settings_accepted = False  # a value beyond the new caps was cleared
        else:
            self.watch.cap_mm = self._active_cap()

    @rule()
    def defaults(self):
        self.watch.cap_mm = PROFILES[0][1] / 1000
        self._try(self.pen.defaults)
        self.watch.cap_mm = self._active_cap()

    @rule()
    def reset(self):
        self._try(self.pen.reset)
        self.settings_accepted = False
        self.watch.cap_mm = self._active_cap()

    @precondition(lambda self: not self.injected & ACTUATOR)
    @rule(depth_mm=st.sampled_from([0.0, 0.7, 1.6, 3.1]))
    def power_cycle(self, depth_mm):
        # power lost mid-run leaves the needles anywhere; the board must bring them in
        self.pen.close()
        self.watch.paused = True  # where the power left them is not the firmware's doing
        self.board.power_cycle(depth_mm=depth_mm)
        self.watch.left_at(depth_mm)
        self.watch.paused = False
        self.pen = Pen(self.board.url)  # connected once the board has left BOOT
        if "estop" not in self.injected:  # the e-stop chain cuts the drivers: nothing moves
            # a fault at boot ends BOOT; the retract goes on in FAULT
            wait_until(lambda: self.board.observe()["depth_mm"] <= 0.05, 3.0,
                       "the boot's retract", self.board)
        self.settings_accepted = False
        self.watch.cap_mm = self._active_cap()

    @rule()
    def hang_briefly(self):
        before = self.board.observe()["depth_mm"]
        self.board.inject("hang")
        # a hung firmware runs no ticks: the monostable's window runs in simulated time
        window_s = self.board.definition["timing"]["heartbeat_ms"] / 1000
        wait_until(lambda: self.board.heartbeat_lost_after_s() is not None, 8 * window_s,
                   "the heartbeat monostable to drop the drivers")
        assert self.board.heartbeat_lost_after_s() <= window_s * 1.2
        obs = self.board.observe()
        self.board.remove("hang")
        assert not obs["motor_enabled"] and not obs["depth_enabled"]
        assert abs(obs["depth_mm"] - before) < 0.1, "a hang moved the needles %.3f mm" % (
            obs["depth_mm"] - before)

    def _active_cap(self):
        try:
            return float(self.pen.get()["cap"])
        except PenError:
            return PROFILES[0][1] / 1000

    @rule(seconds=st.sampled_from([0.05, 0.2, 0.5]))
    def wait(self, seconds):
        board_sleep(seconds)

    @rule()
    def silence(self):
        # the host stops talking during a run: the board must stop on its own
        self.pen.keepalive.stop()
        board_sleep(0.7)

    @precondition(lambda self: len(self.injected) < 2)
    @rule(fault=st.sampled_from(VISIBLE))
    def inject(self, fault):
        running = self.board.observe()["motor_duty"] > 0
        self.board.inject(fault)
        self.injected.add(fault)
        code = INTERLOCKS[fault][0]
        if running:
            wait_until(lambda: motor_stopped(self.board), 2, "motor off after %s" % fault)
            ticks = self.board.reaction_ticks()
            assert ticks <= stated_reaction_ticks(fault, self.board.definition)
            self.ticks.append(ticks)
        wait_until(lambda: code in self.pen.status().faults or not running, 2, code)

    @precondition(lambda self: self.injected)
    @rule(data=st.data())
    def remove(self, data):
        fault = data.draw(st.sampled_from(sorted(self.injected)))
        self.board.remove(fault)
        self.injected.discard(fault)

    @invariant()
    def motor_only_turns_when_running(self):
        TALLY["checks"] += 1  # once before a run's first step, then after each step
        st_ = self.pen.status()
        obs = self.board.observe()
        if st_.state != "RUNNING":
            assert motor_stopped(self.board), "motor on in state %s" % st_.state
        if obs["motor_duty"] > 0:
            assert not st_.faults
            assert self.settings_accepted, "motor on before depth and rate were accepted"
            assert not {"estop", "cartridge_removed"} & self.injected
        self.board.check()

    @invariant()
    def never_deeper_than_the_cap(self):
        assert self.board.observe()["depth_mm"] <= self.cap + 0.05
        self.watch.check()


PenMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
    derandomize="PEN_SOAK_N" not in os.environ, suppress_health_check=list(HealthCheck))


@pytest.mark.long(12)
def test_pen_state_machine(capsys):
    """The machine's runs; `make soak` shows a one-line summary (STATS=1: hypothesis's)."""
    outcome = "no failure"
    try:
        PenMachine.TestCase().runTest()
    except BaseException:
        outcome = "FAILED (minimal failing sequence above)"
        raise
    finally:
        with capsys.disabled():
            runs, checks = TALLY["runs"], TALLY["checks"]
            print("\nsoak: %d runs, %d steps, %d invariant checks (2 invariants); %s" % (
                runs, checks - runs, checks * 2, outcome))
