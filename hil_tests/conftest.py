"""HIL fixtures: a fresh virtual board per test by default, a real board with --port.

Tests that inject faults or read the physics observer are marked `injects` and are
skipped on a real board (no test rig can inject them there yet).
"""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from penctl import Pen, RefusedError, evidence, keys, patience
from penctl.deploy import BoardRepl
from penctl.firmware import protocol as P
from penctl.sim import VirtualBoard


def pytest_addoption(parser):
    parser.addoption("--port", default=None,
                     help="run on a real board at this pyserial URL instead of a virtual one")


def pytest_configure(config):
    if not config.getoption("--port"):
        # the virtual boards' CPU is this host's: every wait of penctl for a board's answer,
        # prompt or boot (tools run as subprocesses too) five times a real board's
        os.environ.setdefault(patience.ENV, "5")
        # the boards' keys (keys.py) in a directory of this process's own, never the
        # user's; the tools the tests run inherit it
        if keys.ENV not in os.environ:
            os.environ[keys.ENV] = tempfile.mkdtemp(prefix="pen-keys-")
            config.add_cleanup(lambda: shutil.rmtree(os.environ.pop(keys.ENV), True))
    config.addinivalue_line("markers", "injects: needs fault injection or the physics observer")
    config.addinivalue_line("markers", "fresh: needs a board as it left the factory (nothing "
                                       "saved, not homed), which each virtual board is")
    config.addinivalue_line("markers", "count_writes: the virtual board counts flash write "
                                       "points and can cut power at one (quiet_flash needs it)")
    config.addinivalue_line("markers", "profile(name): the treatment profile the test runs in "
                                       "(default: the first, most restrictive one)")


def _longest_first(item):
    long = item.get_closest_marker("long")
    return -(long.args[0] if long and long.args else 5 if long else 0)


def pytest_collection_modifyitems(config, items):
    # the long tests first, the longest of them first, so the parallel workers (xdist, one
    # test at a time each) end together instead of one finishing a long test after the
    # others have run out of work
    items.sort(key=_longest_first)
    if config.getoption("--port"):
        skip = pytest.mark.skip(reason="needs the virtual board's fault injection/observer; "
                                       "no test rig is configured for the real board")
        fresh = pytest.mark.skip(reason="needs a board as it left the factory (nothing saved, "
                                        "not homed); a real board has a past")
        for item in items:
            if "injects" in item.keywords:
                item.add_marker(skip)
            elif "fresh" in item.keywords:
                item.add_marker(fresh)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # a failure on the virtual board says what state the board was in (a flake explained)
    report = (yield).get_result()
    if report.failed and _clock.board is not None:
        report.sections.append(("virtual board", _clock.board.diagnosis()))


@pytest.fixture
def board(request):
    if request.config.getoption("--port"):
        yield None
        return
    # PEN_FIRMWARE_DIR: a patched firmware copy, as `make safety-mutants` deploys
    # the needles in at power-on, as a real board's last test leaves them: a boot's
    # retract is tested where it is the point (power_cycle(depth_mm=...))
    # a test parametrized over `adc_vref_mv` gets a unit with that ADC reference
    spec = getattr(request.node, "callspec", None)
    with VirtualBoard(firmware_dir=os.environ.get("PEN_FIRMWARE_DIR"),
                      count_writes=request.node.get_closest_marker("count_writes") is not None,
                      needles_mm=0.0,
                      adc_vref_mv=spec.params.get("adc_vref_mv") if spec else None) as b:
        _clock.board = b
        try:
            yield b
        finally:
            _clock.board = None
        b.check()  # a crashed VM fails the test that caused it


@pytest.fixture
def port(request, board):
    return request.config.getoption("--port") or board.url


def patient_pen(port, **options):
    """A Pen for a virtual board, with ceilings instead of a real board's patience: a
    busy host kept a VM waiting 8 s to boot and 5 s to answer (the client's own limits:
    8 s to connect, 5 tries of 1 s per request). Options given win."""
    options.setdefault("connect_timeout", 60)
    options.setdefault("retries", 30)
    return Pen(port, **options)


@pytest.fixture
def pen(request, port):
    real = request.config.getoption("--port")
    with Pen(port) if real else patient_pen(port) as p:
        if real:
            # a real board is not fresh: stop it, restore the saved defaults, and restart
            # it as the EN button would
            p.stop()
            p.defaults()
            p.reset()
        profile = request.node.get_closest_marker("profile")
        if profile:
            p.use_profile(profile.args[0])
        # The longest link timeout, saved so that profile switches and resets keep it: a
        # busy host can hold the keepalive thread, or the VM, for longer than the default
        # 500 ms, and that LINK_LOST is the host's stall, not what the test is about. The
        # tests of the link timeout set it themselves.
        p.config(link_timeout=LINK_TIMEOUT_MAX_MS)
        yield p


@pytest.fixture
def ready_pen(pen):
    pen.home()
    pen.set(depth_mm=0.5, rate_hz=100)
    return pen


@pytest.fixture
def running_pen(ready_pen):
    ready_pen.start()
    wait_until(lambda: abs(ready_pen.status().rate_hz - 100) < 5, 3, "motor up to speed")
    return ready_pen


def run_strokes(pen, board, strokes):
    """START, let the needles make `strokes` strokes (the physics' count), STOP; back at
    READY."""
    before = board.observe()["revolutions"]
    pen.start()
    wait_until(lambda: board.observe()["revolutions"] - before >= strokes, 20, "the strokes")
    pen.stop()
    pen.wait_for("READY")


def start_run(pen, board):
    """Home, set 0.5 mm / 100 Hz, start, and return once the motor is driven."""
    pen.home()
    pen.set(depth_mm=0.5, rate_hz=100)
    pen.start()
    wait_until(lambda: board.observe()["motor_duty"] > 0, 2, "motor running")
    return pen


# ---- waiting in the board's own time ----------------------------------------------------
# A test waits for so much of the board's time, not the host's: on the virtual board its
# control ticks (the firmware feeds the watchdog once per tick), so a VM that waits for a
# CPU on a busy host has not used up a test's patience; on a real board, seconds. A
# firmware that runs no tick during a wait (the integrity lockout, service mode, a chip
# waiting for its link) has the chip's clock as its time, which leaves the host's waits
# out; across a reset, the wall clock. A wall-clock ceiling of CEILING times
# the wait ends every wait: a bound against hangs, not the measure.
CEILING = 10
LINK_TIMEOUT_MAX_MS = P.PARAMS[P.P_LINK_TIMEOUT][4]


class _Clock:
    board = None  # the test's virtual board (the board fixture sets it)

    def start(self, board=None):
        board = board or self.board
        if board is None:
            return None, 0, time.monotonic(), None
        return board, board.ticks(), time.monotonic(), board.chip_seconds()

    @staticmethod
    def elapsed(started):
        """(board seconds, wall seconds) since start()."""
        board, ticks, wall, chip = started
        wall = time.monotonic() - wall
        if board is None:
            return wall, wall
        ran = board.ticks() - ticks
        if ran:
            return ran * board.tick_s, wall
        now = board.chip_seconds()
        if chip is not None and now is not None and now[1] == chip[1]:
            return now[0] - chip[0], wall  # no tick ran: the chip's clock, one boot's
        return wall, wall


_clock = _Clock()


@contextlib.contextmanager
def vm_kept_waiting(board, how):
    """The host keeps the VM from running: stopped (inject("starve")), or really waiting
    in the kernel's run queue behind a CPU-bound process on its CPU (the VM at the
    idle scheduling class, so it runs only when that CPU has nothing else)."""
    if how == "stopped":
        board.inject("starve")
        try:
            yield
        finally:
            board.remove("starve")
        return
    pid = board.proc.pid
    cpu = min(os.sched_getaffinity(pid))
    # the burner at nice 10: it still takes its CPU from the VM (the idle class yields to
    # any other), but from the rest of a busy host little (at nice 0 it starved the other
    # workers of a parallel run: their keepalives, LINK_LOST)
    burner = subprocess.Popen([sys.executable, "-c", "import os\nos.sched_setaffinity(0, {%d})"
                               "\nos.nice(10)\nprint(flush=True)\nwhile True: pass" % cpu],
                              stdout=subprocess.PIPE)
    burner.stdout.readline()  # it spins on that CPU now (a busy host starts it late)
    os.sched_setaffinity(pid, {cpu})
    os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    try:
        yield
    finally:
        burner.kill()
        burner.wait()
        burner.stdout.close()
        os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
        os.sched_setaffinity(pid, os.sched_getaffinity(0))


def wait_until(predicate, timeout, what, board=None):
    """Poll predicate until it is true; fail after `timeout` seconds of board time."""
    started = _clock.start(board)
    while True:
        value = predicate()
        if value:
            return value
        spent, wall = _clock.elapsed(started)
        if spent > timeout or wall > CEILING * timeout + 5:
            raise AssertionError("timed out after %.1f s of board time (%.1f s wall) waiting "
                                 "for %s%s" % (spent, wall, what, _faults_seen(started[0])))
        # 50 polls a second, not 100: a predicate is often a request to the board, whose
        # VM and link thread share the host's CPUs with this one
        time.sleep(0.02)


def _faults_seen(board):
    """The board's last fault events, for a failure message."""
    if board is None:
        return ""
    lines = [line for line in board.output().splitlines() if "FAULT" in line]
    return "; the board's last faults: " + " | ".join(lines[-3:]) if lines else ""


def board_sleep(seconds, board=None):
    """Let `seconds` of board time pass."""
    started = _clock.start(board)
    while True:
        spent, wall = _clock.elapsed(started)
        if spent >= seconds or wall > CEILING * seconds + 5:
            return
        time.sleep(min(0.01, seconds))


def service_repl(board):
    """The board restarted in service mode, its raw REPL entered: a BoardRepl to close."""
    (board.flash_dir / "service").write_text("")
    board.reset()
    wait_until(lambda: ">>> " in board.output(), 10, "service mode's REPL")
    repl = BoardRepl(board.url)
    try:
        repl.enter()
    except BaseException:
        repl.close()
        raise
    return repl


def quiet_flash(board, quiet_s=0.4):
    """Wait until the firmware has written everything it queued: no new flash write point
    for quiet_s of board time (a log flush also waits for the depth actuator to settle)."""
    last = [board.write_points(), _clock.start(board)]

    def quiet():
        now = board.write_points()
        if now != last[0]:
            last[:] = [now, _clock.start(board)]
        return _clock.elapsed(last[1])[0] > quiet_s
    wait_until(quiet, 10, "the flash quiet", board)


class Background:
    """Runs self._run() in a daemon thread from start() (or `with`) until stop(); _run
    waits on self._stop between its steps."""

    def start(self):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()


class DepthWatch(Background):
    """The physics sampled every 10 ms: how far the needles stood beyond the cap in force
    (cap_mm, which the test follows as it switches profiles), the deepest they went, and
    the deepest while `resting`; nothing while `paused`. Needles a power cut left beyond
    the cap (left_at()) are judged against where they were left until they come in: the
    firmware may be unable to move them (the e-stop chain cuts the drivers), never drive
    them deeper."""

    def __init__(self, board, cap_mm=3.0):
        self.board = board
        self.cap_mm = cap_mm
        self.worst = (0.0, 0.0, cap_mm, False)  # beyond the cap, depth, cap, motor turning
        self.deepest_mm = 0.0
        self.at_rest_mm = 0.0
        self.resting = False
        self.paused = False
        self.left_mm = 0.0  # where a power cut left the needles, as they come in since

    def left_at(self, depth_mm):
        self.left_mm = depth_mm

    def _run(self):
        while not self._stop.wait(0.01):
            obs = self.board.observe()
            if self.paused:
                continue
            depth = obs["depth_mm"]
            limit = max(self.cap_mm, self.left_mm)
            self.left_mm = min(self.left_mm, depth)
            self.worst = max(self.worst, (depth - limit, depth, limit, obs["motor_hz"] > 1))
            self.deepest_mm = max(self.deepest_mm, depth)
            if self.resting:
                self.at_rest_mm = max(self.at_rest_mm, depth)

    def check(self, margin_mm=0.05):
        beyond, depth, cap, turning = self.worst
        assert beyond <= margin_mm, "needles at %.3f mm against a limit of %.3f mm (motor %s)" % (
            depth, cap, "turning" if turning else "still")


def clears(pen):
    """True once CLEAR is accepted (a refusal means its cause is still there)."""
    try:
        pen.clear()
        return True
    except RefusedError:
        return False


def mpremote(port, *args):
    """Run the real mpremote on the port; its output (it must succeed)."""
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def mpremote_fails(port, *args):
    """Run the real mpremote on the port, which must fail (no REPL there); its output."""
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    return done.stdout + done.stderr


def motor_stopped(board):
    obs = board.observe()
    return obs["motor_duty"] == 0 and not obs["motor_enable_line"]


# ---- every test's result as evidence, for `make safety-report` (penctl.evidence) ------------
def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session):
    if hasattr(session.config, "workerinput") or not _outcomes:
        return  # xdist workers report to the controller, which writes the file
    if os.environ.get("PEN_FIRMWARE_DIR"):
        return  # a patched firmware (the mutants): its results are evidence of nothing
    port = session.config.getoption("--port")
    # a real board's results are filed by its name and chip id (HELLO), asked now that no
    # test holds the port
    evidence.record(_outcomes, evidence.identify(port) if port else evidence.VIRTUAL,
                    evidence.firmware_id(), None if port else evidence.board_id("virtual"))


_outcomes = {}
