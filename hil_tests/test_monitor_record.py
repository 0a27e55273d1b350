"""`pen monitor`, `pen record` and `pen plot` as an operator meets them: a monitor driven by
keys in a terminal (and through a pipe), a recording that catches a fault, and its plot.

The serial port is held by one program at a time, so while a `pen` subprocess has it the
tests act on the board through its physics (inject, observe) only.
"""

import csv
import fcntl
import json
import os
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest
from conftest import motor_stopped, patient_pen, wait_until
from penctl import Pen
from penctl.cli.monitor_cmds import _Monitor
from penctl.client import Status
from penctl.errors import UsageError
from penctl.plot import fault_marks, render
from penctl.record import COLUMNS, Recorder, read, telemetry_row

USAGE = 2
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def pen_cmd(port, *args):
    return [sys.executable, "-m", "penctl"] + (["--port", port] if port else []) + list(args)


def pen(port, *args, timeout=60):
    return subprocess.run(pen_cmd(port, *args), capture_output=True, text=True, timeout=timeout)


def end(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def set_targets(port):
    # set before homing: the board keeps them
    with Pen(port) as p:
        p.set(depth_mm=0.5, rate_hz=100)


def start_once_homed(proc, board, timeout=10):
    """Type 's' until the motor runs: the board refuses START until homing is done."""
    def started():
        if proc.poll() is not None:
            raise AssertionError("pen monitor ended (exit %s) before the motor ran: %s"
                                 % (proc.returncode, proc.stderr.read()))
        proc.stdin.write("s\n")
        proc.stdin.flush()
        return board.observe()["motor_hz"] > 0 or time.sleep(0.3)

    wait_until(started, timeout, "the motor to run once homed")


class Terminal:
    """One process on a pseudo-terminal of a fixed size; everything it prints is kept."""

    def __init__(self, cmd, rows=50, cols=120):
        self.master, self.slave = os.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.settings = termios.tcgetattr(self.slave)
        self.output = bytearray()
        self._done = threading.Event()
        # rich takes LINES and COLUMNS over the terminal's size, and pytest-xdist workers
        # have them (80 x 24): the pty's size must win
        env = dict(os.environ, TERM="xterm-256color", LINES=str(rows), COLUMNS=str(cols))
        self.proc = subprocess.Popen(cmd, stdin=self.slave, stdout=self.slave,
                                     stderr=self.slave, env=env)
        # drained all along: a full pty buffer would block the monitor's screen writes
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while not self._done.is_set():
            if select.select([self.master], [], [], 0.05)[0]:
                try:
                    self.output += os.read(self.master, 65536)
                except OSError:
                    return

    def text(self, since=0):
        return bytes(self.output[since:]).decode("utf-8", "replace")

    def wait_for_text(self, text, since, timeout, what):
        try:
            wait_until(lambda: text in self.text(since), timeout, what)
        except AssertionError as e:
            screen = ANSI.sub("", self.text(since))[-3000:]
            raise AssertionError("%s; the screen since then:\n%s" % (e, screen)) from None

    def type(self, keys):
        os.write(self.master, keys.encode())

    def close(self):
        end(self.proc)
        self._done.set()
        self._reader.join(timeout=2)
        os.close(self.master)
        os.close(self.slave)


# ---- pen monitor ---------------------------------------------------------------------------
@pytest.mark.injects
def test_monitor_keys_home_start_stop_and_quit_in_a_terminal(board):
    set_targets(board.url)
    term = Terminal(pen_cmd(board.url, "monitor"))
    try:
        term.wait_for_text("pen monitor", 0, 10, "the monitor's first frame")
        mark = len(term.output)
        term.type("s")  # not homed yet: the board refuses, the monitor shows why
        term.wait_for_text("refused", mark, 5, "the refusal on screen")
        mark = len(term.output)
        term.type("h")
        term.wait_for_text("READY", mark, 10, "READY on screen after homing")
        term.type("s")
        wait_until(lambda: board.observe()["motor_hz"] > 0, 5, "the motor to run")
        term.type(" ")
        wait_until(lambda: motor_stopped(board), 5, "the motor to stop on space")
        term.type("q")
        assert term.proc.wait(timeout=10) == 0, term.text()[-2000:]
        assert termios.tcgetattr(term.slave) == term.settings  # cbreak mode undone
    finally:
        term.close()


@pytest.mark.injects
def test_monitor_through_a_pipe_stops_the_needles_when_it_quits(board):
    set_targets(board.url)
    proc = subprocess.Popen(pen_cmd(board.url, "monitor"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("h\n")
        proc.stdin.flush()
        start_once_homed(proc, board)
        out, err = proc.communicate("q\n", timeout=15)
    finally:
        end(proc)
    assert proc.returncode == 0, err
    # the last frame, printed at the end, knows the needles ran: RUNNING (the state, or a
    # repeated START's refusal), or the monitor's own "started" (a loaded run's monitor
    # quit before its first telemetry line of RUNNING arrived)
    assert "pen monitor" in out and ("RUNNING" in out or "\nstarted" in out), out
    wait_until(lambda: motor_stopped(board), 5, "quitting to stop the motor")


@pytest.mark.injects
def test_monitor_shows_a_board_restart_instead_of_ending(board):
    with patient_pen(board.url) as pen:
        watched = _Monitor(pen, board.url)
        watched.refresh()
        boots = pen.link.boots
        board.reset()  # EN pressed: the monitor's host did not ask for it
        wait_until(lambda: pen.link.boots > boots, 8, "the board's BOOT line")
        assert watched.press("s") and "the board restarted" in watched.snap.message
        assert watched.press("h") and watched.snap.message == "homing"  # and it goes on


# ---- pen record ----------------------------------------------------------------------------
def recorded_lines(path):
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.mark.injects
def test_record_catches_a_fault_in_telemetry_and_events(board, tmp_path):
    out = tmp_path / "session.csv"
    rec = subprocess.Popen(pen_cmd(board.url, "--json", "record", "-o", str(out),
                                   "--for", "2s"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: recorded_lines(out) > 3, 10, "the first recorded lines")
        board.inject("overtemp", celsius=60)
        stdout, stderr = rec.communicate(timeout=20)
    finally:
        end(rec)
    assert rec.returncode == 0, stderr
    rows = read(out)
    telemetry = [r for r in rows if r["kind"] == "telemetry"]
    events = [r for r in rows if r["kind"] == "event"]
    summary = json.loads(stdout)
    assert summary["ended_by"] == "time" and summary["rows"] == len(rows)
    assert summary["telemetry"] == len(telemetry) >= 5
    assert [r["time_s"] for r in rows] == sorted(r["time_s"] for r in rows)
    assert all(11 < r["supply_v"] < 13 and 10 < r["temperature_c"] < 70 for r in telemetry)
    assert telemetry[0]["state"] == "IDLE" and telemetry[0]["faults"] == []
    assert telemetry[-1]["state"] == "FAULT" and telemetry[-1]["faults"] == ["OVERTEMP"]
    assert abs(telemetry[-1]["temperature_c"] - 60.0) <= 1.5  # one noisy ADC sample
    faults = [r for r in events if r["event"] == "FAULT"]
    assert len(faults) == 1 and faults[0]["detail"].startswith("code=OVERTEMP ")
    assert any(r["event"] == "STATE" and "to=FAULT" in r["detail"] for r in events)


@pytest.mark.injects
def test_record_ends_on_ctrl_c_and_keeps_what_it_had(board, tmp_path):
    # started with SIGINT ignored, as a script's background job is (and as a harness may
    # run the suite): pen honours Ctrl-C all the same
    out = tmp_path / "open-ended.csv"
    command = " ".join(shlex.quote(a) for a in pen_cmd(board.url, "record", "-o", str(out)))
    rec = subprocess.Popen(["sh", "-c", "trap '' INT; exec " + command],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: recorded_lines(out) > 5, 10, "some recorded lines")
        rec.send_signal(signal.SIGINT)
        _, stderr = rec.communicate(timeout=15)
    finally:
        end(rec)
    assert rec.returncode == 0, stderr
    rows = read(out)
    assert len(rows) >= 5 and "recorded %d lines" % len(rows) in stderr


# ---- pen plot ------------------------------------------------------------------------------
@pytest.mark.injects
def test_plot_of_a_run_that_faulted(ready_pen, board, tmp_path):
    csv_path, png = tmp_path / "run.csv", tmp_path / "run.png"
    with Recorder(ready_pen, csv_path) as recorder:
        ready_pen.start()
        recorder.run(0.8)
        board.inject("overtemp", celsius=60)
        recorder.run(0.7)
    rows = read(csv_path)
    assert max(r["rate_hz"] or 0 for r in rows) > 50
    assert [code for _, code in fault_marks(rows)] == ["OVERTEMP"]
    done = pen(None, "plot", str(csv_path), "-o", str(png))
    assert done.returncode == 0, done.stderr
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 20_000
    assert struct.unpack(">II", data[16:24]) == (1000, 900)  # IHDR: 10 x 9 in at 100 dpi


def test_plot_of_an_empty_missing_or_foreign_csv_is_a_usage_error(tmp_path):
    empty, foreign = tmp_path / "empty.csv", tmp_path / "foreign.csv"
    empty.write_text(",".join(COLUMNS) + "\n")
    foreign.write_text("a,b\n1,2\n")
    cases = ((empty, "no telemetry rows"), (tmp_path / "missing.csv", "cannot read"),
             (foreign, "not a `pen record` CSV"))
    for path, why in cases:
        done = pen(None, "plot", str(path), "-o", str(tmp_path / "out.png"))
        assert done.returncode == USAGE and why in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1  # one sentence, no traceback
    assert not (tmp_path / "out.png").exists()


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    one_line = tmp_path / "one.csv"
    with open(one_line, "w", newline="") as f:
        csv.writer(f).writerows([COLUMNS, telemetry_row(0.0, Status("IDLE"))])
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(UsageError, match=r"pip install 'penctl\[plot\]'"):
        render(one_line, tmp_path / "out.png")
