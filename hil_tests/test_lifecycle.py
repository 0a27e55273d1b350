"""What happens around the firmware: Ctrl-C, the main.py finally, crashes."""

import os
import shutil
import time

import pytest
from conftest import motor_stopped, start_run, wait_until
from penctl import Pen, VirtualBoardError
from penctl.paths import FIRMWARE_DIR
from penctl.sim import VirtualBoard

pytestmark = pytest.mark.injects


# main.py's except and finally replaced by a bare re-raise: Ctrl-C ends at the REPL
MAIN_WITHOUT_FINALLY = ("except BaseException as e:  # printed before the reset below, where a "
                        "board shows it\n    sys.print_exception(e)\nfinally:\n    #",
                        "except KeyboardInterrupt:\n    raise\nif 0:\n    #")


def test_ctrl_c_stops_the_motor_and_resets_the_board_never_to_the_repl(board):
    # outside service mode main.py never ends at the REPL (anyone could run anything
    # there): the outputs are made safe, then the board resets into the firmware
    pen = start_run(Pen(board.port), board)
    pen._stop_keepalive()
    pen.link.write_raw(b"\x03")
    wait_until(lambda: motor_stopped(board), 2.0, "motor off after Ctrl-C")
    wait_until(lambda: 2 in board.observe()["resets"], 5.0, "the reset")  # HARD
    pen.link.close()
    with Pen(board.port) as pen:
        assert pen.status().state == "IDLE" and pen.info["reset"] == "HARD"
    assert ">>> " not in board.output() and motor_stopped(board)


def patched_firmware(tmp_path, name, old, new):
    """A copy of the firmware with one edit, deployed like the real one."""
    fw = tmp_path / "fw"
    if not fw.exists():  # on top of a mutant's firmware when `make safety-mutants` runs
        shutil.copytree(os.environ.get("PEN_FIRMWARE_DIR") or FIRMWARE_DIR, fw)
    src = (fw / name).read_text()
    assert old in src, "the patch no longer matches %s" % name
    (fw / name).write_text(src.replace(old, new))
    return fw


def test_missing_finally_is_caught_by_pwm_persistence(tmp_path):
    # A firmware whose main.py and app.run() lack the finally: on an ESP32 the PWM
    # keeps running at the REPL, and the virtual board must show exactly that.
    patched_firmware(tmp_path, "main.py", MAIN_WITHOUT_FINALLY[0], MAIN_WITHOUT_FINALLY[1])
    fw = patched_firmware(tmp_path, "app.py", "    finally:\n        app.safe()\n",
                          "    except KeyboardInterrupt:\n        raise\n")
    with VirtualBoard(firmware_dir=fw) as board:
        pen = start_run(Pen(board.port), board)
        pen._stop_keepalive()
        pen.link.write_raw(b"\x03")
        wait_until(lambda: ">>> " in board.output(), 2.0, "REPL prompt")
        assert board.observe()["motor_duty"] > 0  # the hazard a missing finally leaves
        pen.link.close()


def test_crashed_vm_surfaces_as_error(board):
    board.proc.kill()
    wait_until(lambda: board.crash, 2.0, "crash noticed")
    with pytest.raises(VirtualBoardError, match="VM exited"):
        board.check()
    board.crash = None  # the fixture's own check must not fail this test


def test_watchdog_reset_is_reported_after_a_hang(board):
    with Pen(board.port) as pen:
        board.inject("hang")  # the firmware stops being scheduled
        wait_until(lambda: 3 in board.observe()["resets"], 5.0, "watchdog reset")
    with Pen(board.port) as pen:
        assert pen.info["reset"] == "WATCHDOG"
        assert "WATCHDOG" in pen.status().faults
        assert motor_stopped(board)


def test_unexpected_exception_stops_motor_and_reports_internal(tmp_path):
    # a bug that only bites at 133 Hz, planted in a deployed copy of the controller
    fw = patched_firmware(tmp_path, "controller.py", "        sp = r.setpoint_chz\n",
                          "        sp = r.setpoint_chz\n        if self.rate_target == 13300:\n"
                          "            raise ZeroDivisionError('planted bug')\n")
    with VirtualBoard(firmware_dir=fw) as board, Pen(board.port) as pen:
        pen.use_profile("body")
        start_run(pen, board)
        pen.set(rate_hz=133)
        wait_until(lambda: motor_stopped(board), 1, "motor off after the exception")
        st = pen.status()
        assert st.state == "FAULT" and "INTERNAL" in st.faults
        assert "planted bug" in pen.faults()[0]["detail"]
        time.sleep(0.3)
        assert motor_stopped(board)  # stays off although the tick keeps raising
        board.check()


def test_estop_pin_interrupt_alone_stops_and_latches(tmp_path):
    # second layer on its own: the supervisor's e-stop check removed, the IRQ remains
    fw = patched_firmware(tmp_path, "supervisor.py", "        if r.estop_open:\n",
                          "        if False:\n")
    with VirtualBoard(firmware_dir=fw) as board, Pen(board.port) as pen:
        start_run(pen, board)
        board.inject("estop")
        wait_until(lambda: motor_stopped(board), 1, "motor off from the pin interrupt")
        assert "ESTOP" in pen.status().faults
        assert "pin interrupt" in pen.faults()[0]["detail"]
