"""A normal treatment session, checked from the physics side where it can be."""

import statistics
import time

import pytest
from conftest import board_sleep, motor_stopped, wait_until


def test_boot_state_is_idle_with_motor_off(pen, board):
    st = pen.status()
    assert st.state == "IDLE"
    assert st.faults == []
    assert pen.info["reset"] in ("PWRON", "HARD")  # HARD: reset between tests on a real board
    if board:
        assert motor_stopped(board)


def test_homing_reaches_ready_at_zero_depth(pen, board):
    st = pen.home()
    assert st.state == "READY"
    assert abs(st.depth_mm) <= 0.05
    if board:
        assert abs(board.observe()["depth_mm"]) <= 0.05


def mean_telemetry(pen, seconds):
    while not pen.link.telemetry.empty():  # only lines from now on
        pen.link.telemetry.get_nowait()
    deadline = time.monotonic() + seconds
    samples = []
    for st in pen.telemetry():
        samples.append(st)
        if time.monotonic() > deadline:
            return samples


@pytest.mark.parametrize("rate", [25, 100, 150])
@pytest.mark.profile("body")
def test_rate_holds_within_2_percent(ready_pen, board, rate):
    ready_pen.set(rate_hz=rate)
    ready_pen.start()
    wait_until(lambda: abs(ready_pen.status().rate_hz - rate) < rate * 0.05, 4, "settling")
    board_sleep(0.5)
    samples = mean_telemetry(ready_pen, 1.0)
    measured = statistics.mean(s.rate_hz for s in samples)
    assert abs(measured - rate) <= rate * 0.02, ready_pen.faults()
    if board:
        actual = board.observe()["motor_hz"]
        assert abs(actual - rate) <= rate * 0.02


@pytest.mark.profile("body")
def test_depth_holds_within_tolerance(ready_pen, board):
    ready_pen.set(depth_mm=1.25)
    ready_pen.start()
    wait_until(lambda: ready_pen.status().target_depth_mm == 1.25, 5, "setpoint ramps to target")
    board_sleep(0.3)
    assert abs(ready_pen.status().depth_mm - 1.25) <= 0.05, ready_pen.faults()
    if board:
        assert abs(board.observe()["depth_mm"] - 1.25) <= 0.05


def test_stop_ramps_down_to_ready_and_motor_off(running_pen, board):
    st = running_pen.stop()
    assert st.state == "READY"
    assert st.faults == []
    if board:
        wait_until(lambda: motor_stopped(board), 1, "motor off")


def test_strokes_counted_match_shaft_revolutions(running_pen, board):
    board_sleep(1.0)
    st = running_pen.status()
    if board:
        revs = board.observe()["revolutions"]
        assert abs(st.strokes - revs) <= max(5, revs * 0.02)
    assert st.strokes > 50


@pytest.mark.profile("body")
def test_depth_change_while_running_is_rate_limited(running_pen, board):
    running_pen.set(depth_mm=1.5)
    board_sleep(0.4)
    st = running_pen.status()
    # run_rate_mm_per_s is 0.5 mm/s: after 0.4 s the setpoint cannot be past ~0.72 mm
    assert st.target_depth_mm < 0.8
    assert st.state == "RUNNING"


@pytest.mark.injects
def test_closing_the_client_while_running_stops_the_motor(port, board):
    from penctl import Pen

    with Pen(port) as pen:
        pen.home()
        pen.set(depth_mm=0.5, rate_hz=100)
        pen.start()
        wait_until(lambda: board.observe()["motor_duty"] > 0, 2, "motor running")
    with Pen(port) as pen:
        assert pen.wait_for("READY", 3).faults == []  # a clean stop, not a link-lost fault
    assert motor_stopped(board)


@pytest.mark.injects
def test_warm_handpiece_warns_without_stopping(running_pen, board):
    board.inject("overtemp", celsius=47.0)
    wait_until(lambda: "HOT" in running_pen.status().warnings, 2, "HOT warning")
    assert any(e[0] == "WARN" for e in running_pen.events())
    assert running_pen.status().state == "RUNNING"
    assert board.observe()["motor_duty"] > 0
