"""What a new user tripped over (issue 14): --port after the command's name, JSON errors,
Ctrl-C's exit code, recording a treatment, a start that homed, fresh telemetry, refusal
text, `pen faults` with none, the CONFIG warning's way out, a stable `pen sim` port."""

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import board_sleep, patient_pen, wait_until
from penctl.cli.monitor_cmds import _Monitor
from penctl.record import read

USAGE, REFUSED, LINK, INTERRUPTED = 2, 3, 5, 130


def pen_cmd(port, *args):
    return [sys.executable, "-m", "penctl"] + (["--port", port] if port else []) + list(args)


def pen(port, *args, timeout=60, env=None):
    return subprocess.run(pen_cmd(port, *args), capture_output=True, text=True,
                          timeout=timeout, env=env)


def end(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def test_port_is_taken_after_the_command_name_too(port, tmp_path):
    done = pen(None, "status", "--port", port, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] in ("IDLE", "READY")
    # after the name it wins over the one before it (and over PEN_PORT)
    done = pen(str(tmp_path / "ttyNONE"), "status", "--json", "--port", port)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("args, to, code, exit_code", [
    (["status", "--json"], "missing", "OPEN", LINK),
    (["--json", "status", "--foo"], None, "USAGE", USAGE),
    (["--json", "status"], None, "USAGE", USAGE),
    (["set", "--depth", "9", "--json"], "board", "RANGE", REFUSED),
])
def test_errors_under_json_are_json_on_stderr_with_the_exit_code(port, tmp_path, args, to,
                                                                  code, exit_code):
    where = {"missing": str(tmp_path / "ttyNONE"), "board": port, None: None}[to]
    done = pen(where, *args)
    assert done.returncode == exit_code, done.stderr
    error = json.loads(done.stderr)
    assert error["error"] == code and error["exit"] == exit_code and error["message"]
    assert done.stdout == ""


@pytest.mark.injects  # reads the motor's duty from the physics
@pytest.mark.parametrize("command, exit_code", [
    (["run", "--depth", "0.5", "--rate", "100", "--for", "60s"], INTERRUPTED),
    (["start", "--for", "60s"], INTERRUPTED),
    (["start"], 0),  # open-ended: Ctrl-C is its planned end, as for `pen record`
])
def test_ctrl_c_in_a_pass_shows_the_summary_and_exits_130_if_it_cut_the_plan(board, command,
                                                                             exit_code):
    assert pen(board.url, "set", "--depth", "0.5", "--rate", "100").returncode == 0
    run = subprocess.Popen(pen_cmd(board.url, "--json", *command),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: board.observe()["motor_duty"] > 0, 30, "the run to start")
        board_sleep(0.3)
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=30)
    finally:
        end(run)
    assert run.returncode == exit_code, err
    report = json.loads(out)
    assert report["ended_by"] == "operator" and report["final_state"] == "READY"
    if exit_code == INTERRUPTED:
        assert json.loads(err)["error"] == "INTERRUPTED"


@pytest.mark.long
def test_run_records_the_treatment_and_plot_draws_it(port, tmp_path):
    csv_path, png = tmp_path / "pass.csv", tmp_path / "pass.png"
    done = pen(port, "run", "--depth", "0.5", "--rate", "100", "--for", "1.5s",
               "--record", str(csv_path))
    assert done.returncode == 0, done.stderr
    rows = read(csv_path)
    telemetry = [r for r in rows if r["kind"] == "telemetry"]
    assert len(telemetry) >= 10 and "recorded %d lines" % len(rows) in done.stderr
    running = [r for r in telemetry if r["state"] == "RUNNING"]
    assert running and max(r["rate_hz"] for r in running) > 80
    assert any(r["event"] == "STATE" and "to=RUNNING" in r["detail"] for r in rows)
    assert [r["time_s"] for r in rows] == sorted(r["time_s"] for r in rows)
    assert pen(None, "plot", str(csv_path), "-o", str(png)).returncode == 0
    assert png.stat().st_size > 10_000


def test_monitor_records_what_it_shows(port, tmp_path):
    csv_path = tmp_path / "watched.csv"
    proc = subprocess.Popen(pen_cmd(port, "monitor", "--record", str(csv_path)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("h\n")  # homing: STATE events
        proc.stdin.flush()
        wait_until(lambda: csv_path.exists() and len(csv_path.read_text().splitlines()) > 15,
                   30, "recorded lines")
        out, err = proc.communicate("q\n", timeout=30)
    finally:
        end(proc)
    assert proc.returncode == 0, err
    rows = read(csv_path)
    assert sum(r["kind"] == "telemetry" for r in rows) >= 10
    events = [r for r in rows if r["kind"] == "event"]
    assert any("to=HOMING" in r["detail"] for r in events)
    assert "HOMING" in out  # shown by the monitor too, not taken from it by the recording


@pytest.mark.fresh
def test_a_start_that_homed_and_was_refused_says_so_once(port):
    # a fresh board: not homed, no depth or rate set
    done = pen(port, "start", "--for", "1s")
    assert done.returncode == REFUSED
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and line.count("refused") == 1, line
    assert "START refused (PRECONDITION): depth not set" in line
    assert "homed the needles first" in line
    assert json.loads(pen(port, "status", "--json").stdout)["state"] == "READY"


def test_telemetry_gives_fresh_lines_by_default(port):
    with patient_pen(port) as p:
        board_sleep(1.0)  # telemetry lines queue up unread
        asked_at = p.status().uptime_ms
        first = next(p.telemetry(timeout=10))
        assert first.uptime_ms >= asked_at
        stale = p.telemetry(timeout=10, fresh=False)  # the queue, for whoever wants it
        board_sleep(0.5)
        asked_at = p.status().uptime_ms
        assert next(stale).uptime_ms < asked_at


@pytest.mark.fresh
def test_faults_with_none_says_so_and_the_config_warning_says_how_to_clear_it(port):
    for command in ("status", "faults"):
        out = pen(port, command).stdout
        assert "warning CONFIG" in out and "pen config reset" in out, out
    assert pen(port, "faults").stdout.splitlines()[0] == "no faults latched"
    assert pen(port, "config", "reset").returncode == 0
    assert pen(port, "faults").stdout.splitlines() == ["no faults latched", "no warnings"]
    assert "pen config reset" not in pen(port, "status").stdout


def test_help_says_what_pen_is():
    done = pen(None, "--help")
    assert done.returncode == 0
    description = done.stdout.split("\n\n")[1].strip()
    assert description.startswith("Drive a microneedling pen"), done.stdout


def start_sim(env, *args):
    proc = subprocess.Popen([sys.executable, "-m", "penctl", "--json", "sim", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    if not line:
        end(proc)
        raise AssertionError("pen sim said nothing: %s" % proc.stderr.read())
    return proc, json.loads(line)["port"]


def stop_sim(proc):
    proc.send_signal(signal.SIGTERM)  # by the pid it holds: it cleans up as on Ctrl-C
    try:
        proc.wait(timeout=60)
    finally:
        end(proc)


@pytest.mark.long
def test_sim_has_a_stable_port_and_ports_lists_the_running_ones(tmp_path):
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    home = tmp_path / "penctl"
    # a board that was killed left its entry and link behind: neither is listed
    home.mkdir(mode=0o700)
    gone = subprocess.Popen(["true"])
    gone.wait()
    os.symlink("/dev/pts/nonesuch", home / "virtual-7")
    (home / ("sim-%d.json" % gone.pid)).write_text(json.dumps(
        {"port": str(home / "virtual-7"), "board": "virtual", "pid": gone.pid}))
    first, port = start_sim(env)
    try:
        assert port == str(home / "virtual")
        second, other = start_sim(env, "--link", str(tmp_path / "mypen"))
        try:
            assert other == str(tmp_path / "mypen")
            listed = json.loads(pen(None, "ports", "--json", env=env).stdout)
            virtual = sorted(r["port"] for r in listed if r.get("virtual"))
            assert virtual == sorted([port, other])
            assert not (home / "virtual-7").is_symlink()  # the stale one is cleaned up
            assert not (home / ("sim-%d.json" % gone.pid)).exists()
            taken = pen(None, "sim", "--link", other, env=env)
            assert taken.returncode == USAGE and "already runs" in taken.stderr
            assert pen(other, "status").returncode == 0
        finally:
            stop_sim(second)
    finally:
        stop_sim(first)
    assert not os.path.lexists(port) and not os.path.lexists(tmp_path / "mypen")
    assert not [r for r in json.loads(pen(None, "ports", "--json", env=env).stdout)
                if r.get("virtual")]
    again, port_again = start_sim(env)  # the same path at the next start
    stop_sim(again)
    assert port_again == port


@pytest.mark.injects
def test_the_log_keeps_a_faults_whole_text(ready_pen, board):
    ready_pen.start()
    wait_until(lambda: board.observe()["motor_hz"] > 50, 30, "the motor to run")
    board.inject("tach_lost")
    wait_until(lambda: ready_pen.status().state == "FAULT", 30, "TACH_LOST")
    detail = next(f["detail"] for f in ready_pen.faults() if f["code"] == "TACH_LOST")
    wait_until(lambda: any(r["event"] == "FAULT" for r in ready_pen.log()), 30,
               "the FAULT record on the flash")
    fault = next(r for r in ready_pen.log() if r["event"] == "FAULT")
    assert fault["text"].startswith("FAULT code=TACH_LOST ")
    assert fault["text"].endswith(": " + detail), fault["text"]  # "motor turns, no pulses"


@pytest.mark.fresh
def test_the_monitor_says_refused_once_and_how_to_clear_the_config_warning(board):
    with patient_pen(board.url) as p:
        watched = _Monitor(p, board.url)
        snap = watched.refresh()
        assert [w for w in snap.warnings if "CONFIG" in w and "pen config reset" in w]
        assert watched.press("s")  # a fresh board: not homed, nothing set
        message = watched.snap.message
        assert message.count("refused") == 1 and "(PRECONDITION)" in message, message
