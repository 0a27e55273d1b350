"""What the Pen says when no firmware answers: the board's real state (service mode, the
raw or the friendly REPL, no firmware deployed) and a way out that works, tried here."""

import shlex
import threading

import pytest
import serial
from conftest import board_sleep, mpremote, patient_pen, wait_until
from penctl import LinkError, Pen
from penctl.transport import Transport

pytestmark = pytest.mark.injects


def to_service_mode(board):
    with patient_pen(board.url) as pen:
        pen.service()
    wait_until(lambda: "service mode" in board.output(), 5, "service-mode boot")


def raw_repl(board):
    with serial.serial_for_url(board.url, timeout=0.5) as s:
        s.write(b"\x01")
        wait_until(lambda: board.bridge.raw_repl, 2, "the raw REPL")


def refusal(board):
    with pytest.raises(LinkError) as info:
        Pen(board.url, connect_timeout=2, timeout=0.5, retries=1)  # a real board's patience
    return info.value


def advised_mpremote(message):
    """The `mpremote connect ...` command the message gives, as arguments."""
    command = message.split("`mpremote connect ", 1)[1].split("`", 1)[0]
    args = shlex.split(command)
    return args[0], args[1:]


def firmware_runs_again(board):
    board_sleep(0.5)
    with patient_pen(board.url) as pen:
        assert pen.status().state == "IDLE"


@pytest.mark.parametrize("raw", [False, True])
def test_service_mode_is_named_with_its_way_out(board, raw):
    to_service_mode(board)
    if raw:  # where mpremote leaves a board it was stopped in
        raw_repl(board)
    e = refusal(board)
    assert e.code == "REPL"
    assert "service mode" in e.message and "soft-reset" not in e.message
    port, args = advised_mpremote(e.message)
    mpremote(port, *args)
    firmware_runs_again(board)


@pytest.mark.parametrize("raw", [False, True])
def test_a_repl_is_named_with_its_way_out(board, raw):
    to_service_mode(board)
    mpremote(board.url, "fs", "rm", ":service")  # the flag is gone, no reset yet
    if raw:
        raw_repl(board)
        e = refusal(board)
        assert e.code == "REPL" and "raw REPL" in e.message and "service" not in e.message
        port, args = advised_mpremote(e.message)
        mpremote(port, *args)
    else:
        e = refusal(board)
        assert e.code == "REPL" and "MicroPython REPL" in e.message
        assert "raw" not in e.message and "service" not in e.message
        assert "Ctrl-D" in e.message
        with serial.serial_for_url(board.url) as s:
            s.write(b"\x04")
    firmware_runs_again(board)


@pytest.mark.injects
def test_a_friendly_repl_that_answers_late_is_named_so_and_left_as_it_was(board):
    # a busy board answers the probe's line feed after the probe has gone on to Ctrl-A,
    # which takes a friendly REPL into the raw one: the probe must see that it did
    to_service_mode(board)
    link = Transport(board.url)
    try:
        board.inject("starve")
        sent = board.bridge.stats["to_vm"]
        found = []
        probe = threading.Thread(target=lambda: found.append(link.probe_repl(wait=2.0)))
        probe.start()
        wait_until(lambda: board.bridge.stats["to_vm"] >= sent + 3, 10, "line feed and Ctrl-A")
        board.remove("starve")
        probe.join(timeout=30)
        assert found and found[0][0] == "repl", found
        wait_until(lambda: board.output().endswith(">>> "), 5, "the friendly REPL again")
    finally:
        board.remove("starve")
        link.close()


def test_a_board_without_the_firmware_is_told_to_deploy(board):
    to_service_mode(board)
    mpremote(board.url, "fs", "rm", ":service", "+", "fs", "rm", ":main.py", "+", "reset")
    wait_until(lambda: ">>> " in board.output()[-10:], 5, "a bare MicroPython REPL")
    e = refusal(board)
    assert e.code == "REPL" and "no pen firmware" in e.message and "pen deploy" in e.message


def test_silence_is_no_answer(board):
    board.inject("link_cut")
    e = refusal(board)
    assert e.code == "NO_ANSWER" and "check the cable" in e.message
