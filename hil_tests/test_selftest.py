"""`pen selftest` through the real `pen` command: it passes on a healthy board, and for each
fault the virtual board can inject into a sensor, a switch, the depth actuator or the motor
it fails, naming that input, with the motor off at the end; the spin needs the operator's
yes and stops on Ctrl-C. SENSE, the command it reads the sensors with, answers each input as
read with the range the firmware judges it by.

Not injected here: link_cut, hang, starve and brownout are faults of the link, the
firmware and the chip, not of an input (the selftest then ends as any command does on a
dead link, exit 5); depth_slip knocks the needles out with a working actuator, which the
boot's retract puts right before a selftest can see it."""

import json
import signal
import subprocess
import sys

import pytest
from conftest import motor_stopped, wait_until
from penctl import Pen, RefusedError
from penctl.selftest import SPIN_HZ, run_selftest

CHECKS = ["current", "thermistor", "temperature", "supply", "depth_sensor", "estop",
          "cartridge", "faults", "homing", "motor"]
FAULT = 4


def selftest(port, *args, stdin=subprocess.DEVNULL):
    return subprocess.run([sys.executable, "-m", "penctl", "--port", port, "selftest", *args],
                          capture_output=True, text=True, timeout=120,
                          stdin=stdin if stdin is subprocess.DEVNULL else None,
                          input=None if stdin is subprocess.DEVNULL else stdin)


def results(done):
    return {c["name"]: c for c in json.loads(done.stdout)["checks"]}


def test_sense_reads_each_input_with_the_firmwares_range(pen, board):
    fields, _ = pen.request("SENSE")
    triples = {k: [float(x) for x in v.split(",")] for k, v in fields.items() if "," in v}
    assert sorted(triples) == ["current", "depth", "home", "supply", "tc", "temp"]
    limits = (board.definition if board else {}).get("limits")
    if limits:  # the ranges are the firmware's own figures from its board definition
        depth = board.definition["depth"]
        assert triples["temp"][1:] == [limits["thermistor_mv_min"], limits["thermistor_mv_max"]]
        assert triples["depth"][1:] == [depth["sensor_valid_mv_min"],
                                        depth["sensor_valid_mv_max"]]
        assert triples["home"][1:] == [depth["sensor_home_mv_min"], depth["sensor_home_mv_max"]]
        assert triples["tc"][2] == limits["temp_warn_c"]
        physics = board.definition["physics"]  # and the values as the ADC reads the pins
        assert abs(triples["depth"][0] - physics["depth_sensor_offset_mv"]) < 30
        cal = board.definition["calibration"]
        assert abs(triples["supply"][0] - physics["supply_v"] * 1000
                   / cal["supply_divider"]) < 30
    assert all(low <= value <= high for key, (value, low, high) in triples.items()
               if key != "home")  # the zero of a homing: none yet
    assert triples["home"][0] == 0
    assert {k: fields[k] for k in ("estop", "cartridge", "switch")} == {
        "estop": "0", "cartridge": "1", "switch": "1"}
    pen.home()
    assert 0 < float(pen.request("SENSE")[0]["home"].split(",")[0])
    pen.set(depth_mm=0.5, rate_hz=100)
    pen.start()
    with pytest.raises(RefusedError, match="SENSE refused while RUNNING") as e:
        pen.request("SENSE")  # at rest only: its reads and import come between two ticks
    assert e.value.code == "STATE"


# a unit at each end of the ESP32 ADC's reference spread (the board fixture takes it)
@pytest.mark.parametrize("adc_vref_mv", [1000, 1200])
def test_selftest_passes_on_a_healthy_board_and_leaves_it_at_rest(pen, board, port,
                                                                  adc_vref_mv):
    pen.home()
    pen.set(depth_mm=0.25, rate_hz=90)
    before = pen.get()
    pen.close()  # one program holds a real board's port: the command's now
    done = selftest(port, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = results(done)
    assert list(report) == CHECKS
    assert [name for name, c in report.items() if c["result"] != "pass"] == []
    assert "Hz" in report["motor"]["value"] and report["motor"]["range"].startswith(
        "%g Hz" % SPIN_HZ)
    with Pen(port) as again:
        assert again.get() == before  # the spin's depth, rate and run limit are gone again
        st = again.status()
    assert st.state == "READY" and st.faults == []
    if board is not None:
        assert board.observe()["revolutions"] > 3  # it spun
        assert motor_stopped(board) and board.observe()["depth_mm"] < 0.05
    human = selftest(port, "--yes")
    assert human.returncode == 0, human.stderr
    assert "selftest passed" in human.stdout
    assert all(name in human.stdout for name in CHECKS)


# fault, its parameters, the checks that fail, the fault the board latches at rest (if any)
INJECTED = [
    ("thermistor_open", {}, {"thermistor", "faults"}, "THERMISTOR"),
    ("thermistor_short", {}, {"thermistor", "faults"}, "THERMISTOR"),
    ("overtemp", {}, {"temperature", "faults"}, "OVERTEMP"),
    ("depth_sensor_open", {}, {"depth_sensor", "faults"}, "DEPTH_SENSOR"),
    ("current_sensor_open", {}, {"current", "faults"}, "CURRENT_SENSOR"),
    ("supply_low", {}, {"supply", "faults"}, "SUPPLY_LOW"),
    ("supply_high", {}, {"supply", "faults"}, "SUPPLY_HIGH"),
    ("current_offset", {}, {"current"}, None),
    ("current_offset", {"mv": -80.0}, {"current"}, None),
    ("overcurrent", {}, {"current", "faults"}, "OVERCURRENT"),
    ("estop", {}, {"estop", "faults"}, "ESTOP"),
    ("cartridge_removed", {}, {"cartridge"}, None),
    ("depth_jam", {}, {"homing"}, None),
    ("tach_lost", {}, {"motor"}, None),
    ("stall", {}, {"motor"}, None),
    ("driver_short", {}, {"motor"}, None),
]


@pytest.mark.injects
@pytest.mark.parametrize("fault,params,failing,latched", INJECTED,
                         ids=["%s%s" % (c[0], "".join("-%s=%g" % kv for kv in c[1].items()))
                              for c in INJECTED])
def test_selftest_fails_naming_the_input_of_each_injected_fault(pen, board, port, fault,
                                                                params, failing, latched):
    board.inject(fault, **params)
    if latched:  # the board's own verdict first, so the table is the same on every run
        wait_until(lambda: latched in pen.status().faults, 2, "%s latched" % latched)
    done = selftest(port, "--yes", "--json")
    assert done.returncode == FAULT, done.stderr
    report = results(done)
    assert {name for name, c in report.items() if c["result"] == "fail"} == failing
    assert all(report[name]["hint"] for name in failing)  # each says what to check
    error = json.loads(done.stderr)
    assert error["error"] == "SELFTEST" and all(name in error["message"] for name in failing)
    if latched:
        assert latched in report["faults"]["value"]
    assert motor_stopped(board)


@pytest.mark.injects
def test_the_spin_needs_a_yes(board, port):
    for args, answer in ((("--json",), None), ((), "n\n"), ((), "")):
        done = selftest(port, *args, stdin=subprocess.DEVNULL if answer is None else answer)
        assert done.returncode == 0, done.stderr
        if args:  # a script is not asked, and the spin is skipped
            assert results(done)["motor"]["result"] == "skip"
        else:
            assert "Spin the motor" in done.stderr and "SKIP" in done.stdout
        assert board.observe()["revolutions"] == 0
    done = selftest(port, stdin="y\n")
    assert done.returncode == 0, done.stderr
    assert board.observe()["revolutions"] > 3 and motor_stopped(board)


@pytest.mark.injects
def test_ctrl_c_at_the_prompt_exits_130_with_the_motor_never_started(board, port):
    run = subprocess.Popen([sys.executable, "-m", "penctl", "--port", port, "selftest"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        asked = ""
        while "[y/N]" not in asked:
            ch = run.stderr.read(1)
            assert ch, "pen ended before it asked: %r" % asked
            asked += ch
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=30)
    finally:
        run.kill()
    assert run.returncode == 130
    assert board.observe()["revolutions"] == 0 and motor_stopped(board)


class _OperatorPressesCtrlC(Pen):
    """The real client; the operator's Ctrl-C arrives while the motor turns."""

    board = None
    pressed = False

    def status(self):
        st = super().status()
        if not self.pressed and st.state == "RUNNING" and self.board.observe()["motor_hz"] > 1:
            self.pressed = True
            raise KeyboardInterrupt
        return st


@pytest.mark.injects
def test_ctrl_c_during_the_spin_stops_the_motor_and_restores_the_settings(pen, board, port):
    pen.home()
    pen.set(depth_mm=0.25, rate_hz=90)
    before = pen.get()
    _OperatorPressesCtrlC.board = board
    with _OperatorPressesCtrlC(port, connect_timeout=60, retries=30) as interrupted:
        with pytest.raises(KeyboardInterrupt):
            run_selftest(interrupted, confirm=lambda: True)
        assert board.observe()["revolutions"] > 0  # it was turning
        # stopped by the selftest's STOP, not by the link timeout (that would latch
        # LINK_LOST) nor the run limit (RUN_LIMIT)
        wait_until(lambda: motor_stopped(board), 2, "the motor stopped")
        st = pen.status()
        assert st.state == "READY" and st.faults == []
    assert pen.get() == before
