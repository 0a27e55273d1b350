"""Service mode: the watchdog cannot be stopped once the firmware started it, so file
transfers need a boot that never starts it. mpremote (unmodified) then owns the REPL."""

import time

import pytest
from conftest import board_sleep, motor_stopped, mpremote, mpremote_fails, patient_pen, wait_until
from penctl import RefusedError

pytestmark = pytest.mark.injects


@pytest.mark.long
def test_service_mode_frees_the_repl_for_mpremote_and_is_left_by_reset(board, tmp_path):
    with patient_pen(board.port) as pen:
        pen.service()
    wait_until(lambda: "service mode" in board.output(), 5, "service-mode boot")
    listing = mpremote(board.port, "fs", "ls")
    assert "main.py" in listing and "service" in listing
    assert mpremote(board.port, "exec", "print(6 * 7)").strip() == "42"
    note = tmp_path / "note.txt"
    note.write_text("hello board\n")
    mpremote(board.port, "fs", "cp", str(note), ":note.txt")
    assert (board.flash_dir / "note.txt").read_text() == "hello board\n"
    script = tmp_path / "script.py"
    script.write_text("print(open('note.txt').read().strip().upper())\nkept = 41\n")
    assert mpremote(board.port, "run", str(script)).strip() == "HELLO BOARD"
    mpremote(board.port, "soft-reset")
    mpremote(board.port, "exec", "kept = 42")
    assert mpremote(board.port, "resume", "exec", "print(kept)").strip() == "42"  # no reset
    time.sleep(2.5)  # longer than the watchdog's 2 s: in service mode nothing resets
    assert board.observe()["resets"][-1] != 3
    assert motor_stopped(board)
    # anything left on the flash would lock the firmware out (the whole-flash check)
    mpremote(board.port, "fs", "rm", ":note.txt")
    mpremote(board.port, "fs", "rm", ":service")
    mpremote(board.port, "reset")
    board_sleep(0.5)
    with patient_pen(board.port) as pen:
        assert pen.status().state == "IDLE"  # the firmware runs again
    mpremote_fails(board.port, "exec", "print(6 * 7)")  # and application mode is closed again


def test_service_refused_while_running(running_pen, board):
    with pytest.raises(RefusedError) as refused:
        running_pen.service()
    assert refused.value.code == "STATE"
    assert board.observe()["motor_duty"] > 0
