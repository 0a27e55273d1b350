"""The `pen` command as an operator or a script meets it: human and --json output, one
clear sentence per failure, a distinct exit code per failure class."""

import csv
import json
import subprocess
import sys

import pytest
from conftest import board_sleep, motor_stopped, wait_until
from penctl.record import COLUMNS

USAGE, REFUSED, FAULT, LINK = 2, 3, 4, 5


def pen(port, *args, timeout=60):
    cmd = [sys.executable, "-m", "penctl"] + (["--port", port] if port else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_status_set_and_get_as_json(port):
    done = pen(port, "status", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["state"] in ("IDLE", "READY")
    done = pen(port, "--json", "set", "--depth", "0.5", "--rate", "120")
    values = json.loads(done.stdout)
    assert done.returncode == 0 and values["depth"] == "0.500" and values["rate"] == "120.00"


def test_timed_run_reports_what_was_delivered(port):
    done = pen(port, "--json", "run", "--depth", "0.5", "--rate", "110", "--for", "1.5s")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ended_by"] == "time" and 1.5 <= report["ran_s"] < 3
    assert report["strokes"] > 60 and abs(report["mean_rate_hz"] - 110) < 3
    assert report["final_state"] == "READY" and report["faults"] == []


@pytest.mark.injects
def test_run_ends_on_a_fault_with_exit_code_4(board):
    run = subprocess.Popen([sys.executable, "-m", "penctl", "--port", board.url, "--json",
                            "run", "--depth", "0.5", "--rate", "100", "--for", "30s"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: board.observe()["motor_duty"] > 0, 10, "the run to start")
        board.inject("overtemp")
        out, err = run.communicate(timeout=20)
    finally:
        run.kill()
    assert run.returncode == FAULT
    assert json.loads(out)["ended_by"] == "fault" and "OVERTEMP" in err
    assert motor_stopped(board)


def test_refusals_usage_and_link_errors_have_their_codes(port, tmp_path):
    refused = pen(port, "set", "--depth", "9")
    assert refused.returncode == REFUSED and "outside" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one sentence, no traceback
    assert pen(port, "set").returncode == USAGE
    assert pen(port, "run", "--depth", "0.5", "--rate", "100", "--for", "soon").returncode \
        == USAGE
    no_port = pen(None, "status")
    assert no_port.returncode == USAGE and "pen ports" in no_port.stderr
    missing = pen(str(tmp_path / "ttyNONE"), "status")
    assert missing.returncode == LINK and "cannot open" in missing.stderr


def test_ports_lists_without_a_board():
    done = pen(None, "ports", "--json")
    assert done.returncode == 0 and isinstance(json.loads(done.stdout), list)


def test_faults_and_clear(port):
    found = json.loads(pen(port, "faults", "--json").stdout)
    assert found["faults"] == [] and set(found["warnings"]) <= {"CONFIG"}
    pen(port, "config", "reset")  # saved settings: the CONFIG warning ends
    assert pen(port, "faults").stdout.splitlines() == ["no faults latched", "no warnings"]
    board_sleep(0.1)
    done = pen(port, "--json", "clear")
    assert done.returncode == 0 and json.loads(done.stdout)["state"] in ("IDLE", "READY")


def test_log_shows_boots_and_states_and_pages_from_a_record(port):
    pen(port, "home")
    done = pen(port, "log", "--json")
    records = json.loads(done.stdout)
    assert done.returncode == 0 and records[0]["event"] == "BOOT"
    assert "STATE from=HOMING to=READY" in [r["text"] for r in records]
    later = json.loads(pen(port, "log", "--json", "--since", str(records[-2]["seq"])).stdout)
    assert later == records[-2:]
    human = pen(port, "log", "--boots", "1").stdout
    assert "BOOT" in human and "reset=" in human
    assert pen(port, "log", "--since", "-1").returncode == USAGE


@pytest.mark.parametrize("args, words", [
    (["--foo"], ["no such option '--foo'", "`pen --help`"]),
    (["status", "--foo"], ["no such option '--foo'", "`pen status --help`"]),
    (["nosuch"], ["no such command 'nosuch'", "`pen --help`"]),
    (["set", "--depth", "deep"], ["'deep' is not a valid float", "`pen set --help`"]),
    (["plot"], ["missing argument 'SESSION.CSV'", "`pen plot --help`"]),
    (["status"], ["no port", "pen ports"]),
])
def test_a_usage_error_is_one_sentence_with_exit_code_2(args, words):
    done = pen(None, *args)
    assert done.returncode == USAGE
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("cells", [{}, {"rate_hz": "nan", "temperature_c": "nan"}])
def test_plot_of_telemetry_rows_without_readings_is_an_error(tmp_path, cells):
    path, png = tmp_path / "blank.csv", tmp_path / "blank.png"
    rows = []
    for i in range(3):
        row = dict.fromkeys(COLUMNS, "")
        row.update(cells, time_s="%.3f" % (0.05 * i), kind="telemetry", state="IDLE")
        rows.append([row[c] for c in COLUMNS])
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([COLUMNS, *rows])
    done = pen(None, "plot", str(path), "-o", str(png))
    assert done.returncode == USAGE and "no telemetry rows with readings" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "plotted" not in done.stdout
    assert not png.exists()


def test_bench_prints_the_boards_diag_figures_with_units(port):
    done = pen(port, "--json", "bench", "--for", "0.5")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)["figures"]
    assert figures["tick_us_mean"]["unit"] == "us" and figures["tick_us_mean"]["value"] > 0
    assert figures["tick_us_max"]["value"] >= figures["tick_us_mean"]["value"]
    assert figures["mem_free"]["unit"] == "B" and figures["mem_free"]["value"] > 10000
    assert figures["alloc_ms"]["unit"] == "ms" and figures["alloc_ms"]["value"] > 0
    assert figures["alloc_per_s"]["unit"] == "B/s" and figures["alloc_per_s"]["value"] >= 0
    text = pen(port, "bench", "--for", "0.5").stdout
    assert "tick_us_mean" in text and "mem_free" in text and " us" in text
