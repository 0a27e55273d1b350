"""Every interlock, tripped by injecting its hazard: the motor stops (seen from the
physics side: PWM duty 0 and driver enable low), the fault latches with its code and
readings, and clearing is refused while the cause persists and accepted after."""

import sys
import threading
import time

import pytest
from conftest import board_sleep, clears, motor_stopped, wait_until
from hazards import ADC_VREF_ENDS, ANALOG, INJECTIONS, INTERLOCKS, stated_reaction_ticks
from penctl import RefusedError

pytestmark = pytest.mark.injects


@pytest.mark.parametrize("hazard", sorted(INTERLOCKS))
def test_interlock_stops_latches_and_clears(running_pen, board, hazard):
    trips_latches_and_clears(running_pen, board, hazard)


@pytest.mark.parametrize("adc_vref_mv", ADC_VREF_ENDS)
@pytest.mark.parametrize("hazard", ANALOG)
def test_analog_interlocks_trip_at_either_end_of_the_adc_reference_spread(running_pen, board,
                                                                           hazard, adc_vref_mv):
    # a unit whose ADC reference is at an end of the ESP32's spread: its readings in the
    # linear range are as good (the eFuse calibrates them), its full scale is not
    assert board.adc_vref_mv == adc_vref_mv
    trips_latches_and_clears(running_pen, board, hazard)


def trips_latches_and_clears(running_pen, board, hazard):
    code, _, state, visible_at_rest = INTERLOCKS[hazard]
    assert board.observe()["motor_duty"] > 0
    board.inject(hazard, **INJECTIONS.get(hazard, {}))
    wait_until(lambda: code in running_pen.status().faults, 2.0, "%s latched" % code)
    wait_until(lambda: motor_stopped(board), 1.0, "motor off after %s" % hazard)
    stated = stated_reaction_ticks(hazard, board.definition)
    assert board.reaction_ticks() <= stated, "motor off after %s ticks, stated %d" % (
        board.reaction_ticks(), stated)
    st = running_pen.status()
    assert st.state == state
    latched = {f["code"]: f for f in running_pen.faults()}
    assert code in latched and latched[code]["readings"].startswith("ma=")
    events = [e for e in running_pen.events() if e[0] == "FAULT"]
    assert any(e[1]["code"] == code for e in events)
    if visible_at_rest:
        with pytest.raises(RefusedError) as refused:
            running_pen.clear()
        assert refused.value.code == "CAUSE_PERSISTS"
        assert code in str(refused.value)
    board.remove(hazard)
    board_sleep(0.1)
    wait_until(lambda: clears(running_pen), 2.0, "clear accepted once %s is gone" % hazard)
    assert running_pen.status().faults == []
    assert motor_stopped(board)



@pytest.mark.parametrize("speed", ["ramping up", "at speed"])
def test_a_driver_that_overspeeds_the_motor_trips_speed_wherever_it_was(ready_pen, board,
                                                                         speed):
    """SPEED's own evidence: the motor driven too fast with its current in bounds, so that
    no other interlock can trip first, from any point of a run."""
    ready_pen.start()
    if speed == "at speed":
        wait_until(lambda: abs(ready_pen.status().rate_hz - 100) < 2, 3, "motor at speed")
    else:
        wait_until(lambda: board.observe()["motor_duty"] > 0, 2, "motor driven")
    board.inject("driver_short", **INJECTIONS["driver_short"])
    wait_until(lambda: "SPEED" in ready_pen.status().faults, 2.0, "SPEED latched")
    assert [f["code"] for f in ready_pen.faults()] == ["SPEED"]
    assert motor_stopped(board)


def test_a_full_driver_short_stops_the_motor_by_one_interlock_or_the_other(running_pen,
                                                                           board):
    """A dead short surges past the current limit for about as long as OVERCURRENT's
    debounce, while the motor overspeeds: which latches first is a matter of
    milliseconds, and either must stop the motor in its stated time."""
    board.inject("driver_short")
    wait_until(lambda: running_pen.status().faults, 2.0, "a fault latched")
    code = running_pen.status().faults[0]
    assert code in ("SPEED", "OVERCURRENT")
    wait_until(lambda: motor_stopped(board), 1.0, "motor off after a driver short")
    injection = {"SPEED": "driver_short", "OVERCURRENT": "overcurrent"}[code]
    assert board.reaction_ticks() <= stated_reaction_ticks(injection, board.definition)


def test_a_dead_current_sensor_at_rest_refuses_start(ready_pen, board):
    """An open current sensor reads the ADC's floor: it latches with the motor at rest,
    where overcurrent and stall could not have seen it, and START is refused."""
    board.inject("current_sensor_open")
    wait_until(lambda: "CURRENT_SENSOR" in ready_pen.status().faults, 2.0,
               "CURRENT_SENSOR latched at rest")
    with pytest.raises(RefusedError) as refused:
        ready_pen.start()
    assert refused.value.code == "PRECONDITION" and "CURRENT_SENSOR" in str(refused.value)
    assert motor_stopped(board)
    board.remove("current_sensor_open")
    board_sleep(0.1)
    wait_until(lambda: clears(ready_pen), 2.0, "clear accepted once the sensor reads again")


@pytest.mark.profile("body")
def test_depth_jam_trips_following_error(running_pen, board):
    board.inject("depth_jam")
    running_pen.set(depth_mm=1.5)
    wait_until(lambda: motor_stopped(board), 2.0, "motor off after jam")
    st = running_pen.status()
    assert "DEPTH_FOLLOWING" in st.faults
    board.remove("depth_jam")
    assert running_pen.clear() == "IDLE"  # position no longer trusted: home again


def test_estop_cuts_driver_in_hardware_and_firmware(running_pen, board):
    board.inject("estop")
    obs = board.observe()
    assert not obs["motor_enabled"]  # the loop cuts the driver before any software runs
    wait_until(lambda: motor_stopped(board), 1.0, "firmware layer drops PWM and enable")


def test_fault_retracts_needles(running_pen, board):
    wait_until(lambda: board.observe()["depth_mm"] > 0.4, 2, "needles out")
    board.inject("overcurrent")
    wait_until(lambda: board.observe()["depth_mm"] < 0.05, 3, "needles retracted")


def test_run_limit_stops_the_motor(ready_pen, board):
    ready_pen.set(run_limit=1)
    ready_pen.start()
    wait_until(lambda: "RUN_LIMIT" in ready_pen.status().faults, 3, "run limit")
    assert motor_stopped(board)
    assert ready_pen.clear() == "READY"


def test_every_short_estop_opening_is_latched(board, pen):
    # 0.3 ms openings, far shorter than a tick: the supervisor's level check never sees
    # them, the pin interrupt must (the ESP32's GPIO latches the edge, not the level)
    for n in range(20):
        opened_s = board.pulse("estop", seconds=0.0003)
        wait_until(lambda: pen.status().state == "ESTOP", 1,
                   "opening %d of 20 latched as ESTOP" % (n + 1))
        latched = pen.faults()
        # the latched fault once, with this opening's record, not every earlier one's;
        # the interrupt's record unless a busy host held the loop open for a millisecond
        # or more (then the tick's level check may see it first)
        assert len(latched) == 1
        assert "pin interrupt" in latched[0]["detail"] or opened_s >= 0.001, latched
        assert pen.clear() == "IDLE"  # the loop is closed again: CLEAR takes it


@pytest.mark.long
def test_a_starved_physics_thread_trips_no_false_tach_lost(board, pen):
    # The physics is a thread of this process: a busy host (here a CPU-bound thread and a
    # 30 ms GIL switch interval) starves it while the VM ticks on. The tach count must not
    # freeze into a TACH_LOST an operator would see next to a turning motor (hz=37).
    pen.home()
    # the longest link timeout: the client's keepalive thread starves as well, and a
    # LINK_LOST from a silent host is a true fault, not the one under test
    pen.set(depth_mm=0.5, rate_hz=37, link_timeout=2000)
    pen.start()
    wait_until(lambda: abs(pen.status().rate_hz - 37) < 3, 3, "motor at 37 Hz")
    stop = threading.Event()

    def hog():
        while not stop.is_set():
            sum(range(20000))

    hogger = threading.Thread(target=hog, daemon=True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.03)
    hogger.start()
    try:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            st = pen.status()
            assert "TACH_LOST" not in st.faults and "STALL" not in st.faults, pen.faults()
            time.sleep(0.1)
    finally:
        stop.set()
        hogger.join()
        sys.setswitchinterval(interval)
    st = pen.status()
    assert st.state == "RUNNING", pen.faults()
    pen.stop()


def test_a_temperature_at_the_warning_level_warns_once_not_on_every_noisy_sample(running_pen,
                                                                                 board):
    # one thermistor sample scatters ~0.25 C at 45 C: the HOT warning came and went with
    # the noise, a WARN event (and a log record) every few ticks
    board.inject("overtemp", celsius=board.definition["limits"]["temp_warn_c"])
    wait_until(lambda: "HOT" in running_pen.status().warnings, 2, "HOT warning")
    board_sleep(1.0)
    warns = [e for e in running_pen.events() if e[0] == "WARN" and "tc" in e[1]]
    assert len(warns) <= 3, warns  # HOT, and at most once gone and back
    assert running_pen.status().state == "RUNNING"
