"""Start refused for each missing precondition; bad input refused with a clear error
and no change of state or parameters."""

import pytest
from conftest import motor_stopped, wait_until
from penctl import RefusedError
from penctl.firmware import wire


def refused(call, code, *words):
    with pytest.raises(RefusedError) as info:
        call()
    assert info.value.code == code
    for word in words:
        assert word in str(info.value)


def test_start_refused_before_homing(pen, board):
    pen.set(depth_mm=0.5, rate_hz=100)
    refused(pen.start, "PRECONDITION", "not homed", "IDLE")
    assert pen.status().state == "IDLE"


def test_start_refused_without_settings(pen, board):
    pen.home()
    refused(pen.start, "PRECONDITION", "depth not set", "rate not set")
    pen.set(depth_mm=0.5)
    refused(pen.start, "PRECONDITION", "rate not set")
    assert pen.status().state == "READY"


@pytest.mark.injects
def test_start_refused_without_cartridge(ready_pen, board):
    board.inject("cartridge_removed")
    refused(ready_pen.start, "PRECONDITION", "no cartridge")
    assert motor_stopped(board)
    board.remove("cartridge_removed")
    ready_pen.start()
    assert ready_pen.status().state == "RUNNING"


@pytest.mark.injects
def test_start_refused_with_estop_open_and_fault_latched(ready_pen, board):
    board.inject("estop")
    refused(ready_pen.start, "PRECONDITION", "e-stop open")
    wait_until(lambda: ready_pen.status().state == "ESTOP", 1, "ESTOP state")
    board.remove("estop")
    refused(ready_pen.start, "PRECONDITION", "faults latched: ESTOP")
    assert motor_stopped(board)


@pytest.mark.parametrize("params, code, words", [
    ({"depth_mm": 3.5}, "RANGE", ["depth", "0.000..3.000"]),
    pytest.param({"depth_mm": 2.6}, "CAP", ["cap of 2.500 mm"], marks=pytest.mark.profile("body")),
    ({"depth_mm": 0.55}, "CAP", ["periorbital profile's cap of 0.500 mm"]),
    ({"rate_hz": 125}, "CAP", ["periorbital profile's cap of 120.00 Hz"]),
    ({"depth_mm": 0.52}, "STEP", ["0.050"]),
    ({"depth_mm": float("nan")}, "BAD_VALUE", ["nan"]),
    ({"depth_mm": float("inf")}, "BAD_VALUE", ["inf"]),
    ({"depth_mm": -0.5}, "RANGE", []),
    ({"rate_hz": 10}, "RANGE", ["25.00..150.00 Hz"]),
    ({"rate_hz": 1e9}, "RANGE", []),
    ({"rate_hz": 1e-9}, "BAD_VALUE", []),
    ({"telemetry": 500}, "RANGE", []),
    ({"nonsense": 1}, "UNKNOWN_PARAM", ["nonsense"]),
    ({"depth_mm": 0.5, "rate_hz": 999}, "RANGE", ["rate"]),  # nothing applied, not even depth
])
def test_bad_values_refused_and_nothing_changes(pen, params, code, words):
    before = pen.get()
    refused(lambda: pen.set(**params), code, *words)
    assert pen.get() == before
    assert pen.status().state == "IDLE"


def raw_reply(pen, body):
    seq = pen._next_seq()
    pen.link.write_line(wire.frame(body % seq if "%d" in body else body))
    return pen.link.wait_reply(seq, 1.0)


def test_a_value_with_float_noise_is_the_value_the_user_meant(pen):
    # 0.1 + 0.2 is 0.30000000000000004 as a float: sent as such, the board refused it
    # (BAD_VALUE: more decimals than depth has); the host writes each parameter with its own
    pen.set(depth_mm=0.1 + 0.2, rate_hz=100.1 - 0.1)
    assert (pen.get()["depth"], pen.get()["rate"]) == ("0.300", "100.00")


def test_unknown_and_malformed_commands_refused(pen):
    fields, message = raw_reply(pen, "%d LAUNCH")
    assert fields["err"] == "UNKNOWN_CMD" and "LAUNCH" in message
    fields, message = raw_reply(pen, "%d SET depth")
    assert fields["err"] == "MALFORMED"
    fields, message = raw_reply(pen, "%d HOME now=1")
    assert fields["err"] == "MALFORMED"
    assert pen.status().state == "IDLE"


def test_a_command_the_firmware_lacks_is_refused_under_its_number_not_left_unanswered(pen):
    # a host newer than the board's firmware: the refusal comes back under the request's
    # number at the first try (under '-' it read as a damaged frame, resent until the host
    # gave up with "no answer")
    with pytest.raises(RefusedError, match="UNKNOWN_CMD") as refusal:
        pen.request("LAUNCH", retries=0)
    assert refusal.value.code == "UNKNOWN_CMD"
    with pytest.raises(RefusedError, match="MALFORMED"):
        pen.request("HOME", retries=0, now=1)
    assert pen.status().state == "IDLE"


def test_home_refused_while_running(running_pen):
    refused(running_pen.home, "STATE", "RUNNING")
    assert running_pen.status().state == "RUNNING"
