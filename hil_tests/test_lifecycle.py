"""What happens around the firmware: Ctrl-C to the REPL, the main.py finally, crashes."""

import shutil
import time

import pytest
from conftest import motor_stopped, wait_until
from penctl import Pen, VirtualBoardError
from penctl.paths import FIRMWARE_DIR
from penctl.sim import VirtualBoard

pytestmark = pytest.mark.injects


def start_run(port):
    pen = Pen(port)
    pen.home()
    pen.set(depth_mm=0.5, rate_hz=100)
    pen.start()
    time.sleep(0.6)
    return pen


def test_ctrl_c_leaves_motor_off_and_board_at_repl(board):
    pen = start_run(board.port)
    pen._stop_keepalive()
    pen.link.write_raw(b"\x03")
    wait_until(lambda: motor_stopped(board), 2.0, "motor off after Ctrl-C")
    wait_until(lambda: ">>> " in board.output(), 2.0, "REPL prompt")
    pen.link.close()


def test_missing_finally_is_caught_by_pwm_persistence(tmp_path):
    # A firmware whose main.py and app.run() lack the finally: on an ESP32 the PWM
    # keeps running at the REPL, and the virtual board must show exactly that.
    fw = tmp_path / "fw"
    shutil.copytree(FIRMWARE_DIR, fw)
    (fw / "main.py").write_text("import app\napp.run()\n")
    app_src = (fw / "app.py").read_text()
    unsafe = app_src.replace("    finally:\n        app.safe()\n",
                             "    except KeyboardInterrupt:\n        raise\n")
    assert unsafe != app_src
    (fw / "app.py").write_text(unsafe)
    with VirtualBoard(firmware_dir=fw) as board:
        pen = start_run(board.port)
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
        board.proc.send_signal(__import__("signal").SIGSTOP)  # the firmware stops running
        wait_until(lambda: 3 in board.observe()["resets"], 5.0, "watchdog reset")
    with Pen(board.port) as pen:
        assert pen.info["reset"] == "WATCHDOG"
        assert "WATCHDOG" in pen.status().faults
        assert motor_stopped(board)
