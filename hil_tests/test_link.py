"""Integrity of the serial link: CRC, duplicate sequence numbers, silent host."""

import os
import time

import pytest
from conftest import motor_stopped, wait_until
from penctl import protocol as P


def test_corrupted_frame_refused_and_not_executed(pen):
    line = P.frame("%d HOME" % pen._next_seq())
    corrupted = line[:-1] + ("0" if line[-1] != "0" else "1")
    pen.link.write_line(corrupted)
    reply = pen.link.wait_reply(-1, 1.0)
    assert reply[0]["err"] == "BAD_CRC" and reply[0]["garbled"]
    time.sleep(0.1)
    assert pen.status().state == "IDLE"


def test_garbage_and_overlong_lines_do_not_break_the_link(pen):
    pen.link.write_raw(b"\x00\xff garbage \x1b[2J\n" + b"x" * 500 + b"\n")
    time.sleep(0.2)
    assert pen.status().state == "IDLE"


def test_repeated_sequence_number_gets_first_answer_without_running_twice(pen):
    seq = pen._next_seq()
    line = P.frame("%d HOME" % seq)
    pen.link.write_line(line)
    first = pen.link.wait_reply(seq, 1.0)
    time.sleep(1.5)  # homing done; no other command in between, as in a real retry
    pen.link.write_line(line)  # a retry of a reply we "lost"
    again = pen.link.wait_reply(seq, 1.0)
    assert again == first
    time.sleep(0.2)
    assert pen.status().state == "READY"  # a second HOME would have gone back to HOMING
    homing = [e for e in pen.events() if e[0] == "STATE" and e[1]["to"] == "HOMING"]
    assert len(homing) == 1


@pytest.mark.injects
def test_silent_host_during_run_stops_motor_within_link_timeout(running_pen, board):
    running_pen._stop_keepalive()  # the host goes silent
    t0 = time.monotonic()
    wait_until(lambda: motor_stopped(board), 2.0, "motor off after link timeout")
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0
    assert "LINK_LOST" in running_pen.status().faults


@pytest.mark.injects
def test_cut_link_during_run_stops_motor(running_pen, board):
    board.inject("link_cut")
    wait_until(lambda: motor_stopped(board), 2.0, "motor off after link cut")
    board.remove("link_cut")
    assert "LINK_LOST" in running_pen.status().faults


LOSSY_COMMANDS = int(os.environ.get("PEN_LOSSY_COMMANDS", "200"))


def run_each_once(pen, board, name, values, retries, timeout, **link_faults):
    """SET `name` to each value through a degraded link; the client's retries must get
    every command through and the board's own counter must show each ran once."""
    pen.set(telemetry=0)
    before = pen.diag()["executed"]
    pen.retries, pen.timeout = retries, timeout
    board.link_faults(**link_faults)
    for value in values:
        pen.set(**{name: value})
    board.link_faults()
    pen.retries, pen.timeout = 4, 1.0
    assert pen.get()[name] == str(values[-1])
    assert pen.diag()["executed"] - before == len(values) + 2  # + the GET and this DIAG


@pytest.mark.injects
def test_every_command_runs_exactly_once_through_a_lossy_link(pen, board):
    # 1 % of bytes dropped and 1 % corrupted, both ways
    values = [100 + 10 * (i % 190) for i in range(LOSSY_COMMANDS)]
    run_each_once(pen, board, "link_timeout", values, 30, 0.1, drop=0.01, corrupt=0.01,
                  seed=11)
    stats = board.bridge.stats
    assert stats["corrupted"] > 0 and stats["dropped"] > 0


@pytest.mark.injects
def test_delayed_and_duplicated_bytes_still_run_each_command_once(pen, board):
    run_each_once(pen, board, "run_limit", list(range(100, 120)), 30, 0.3, duplicate=0.01,
                  delay_s=0.08, seed=5)
