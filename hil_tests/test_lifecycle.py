"""What happens around the firmware: Ctrl-C as a realtime STOP, the main.py finally,
exceptions, a VM that dies (a panic), the watchdog."""

import os
import shutil
import time

import pytest
from conftest import board_sleep, motor_stopped, patient_pen, start_run, wait_until
from penctl import VirtualBoardError
from penctl.firmware.wire import frame
from penctl.paths import FIRMWARE_DIR
from penctl.sim import VirtualBoard

pytestmark = pytest.mark.injects


# main.py's except and finally replaced by a bare re-raise of the planted bug: the board
# ends at the REPL, as a firmware without them would
MAIN_WITHOUT_FINALLY = [("main.py", "    except BaseException as e:  # printed before the reset "
                         "below, where a board shows it\n        sys.print_exception(e)\n"
                         "    finally:\n        #", "    except ValueError:\n        raise\n"
                         "    if 0:\n        #"),
                        ("main.py", "finally:\n    if not service:\n", "finally:\n    if 0:\n")]


def test_a_ctrl_c_flood_across_resets_never_reaches_the_repl_nor_kills_the_board(board):
    # Ctrl-C every millisecond of the host's time, from before each reset until the firmware
    # has run a while, over 3 resets. MicroPython turns Ctrl-C on as each boot file starts
    # (sim_start.py models pyexec.c): main.py turns it off first, and a Ctrl-C that lands
    # before that is raised inside its try, whose finally resets, so the worst is one more
    # reset, never the REPL. Before the boot files run (the ROM, MicroPython's start-up, the
    # frozen _boot.py) Ctrl-C is off: the byte waits in the UART, and no SIGINT may reach the
    # VM process before it is MicroPython (a CPython child's SIGINT killed it: a panic).
    import serial
    from penctl.sim.vm import simhw

    with serial.serial_for_url(board.url, timeout=0) as port:
        for _ in range(3):
            resets = len(board.observe()["resets"])
            board.reset()
            for _ in range(30000):  # a ceiling against a hang: ~30 s of the host's time
                port.write(b"\x03")
                time.sleep(0.001)
                if board.regs[simhw.H_WDT_FEEDS] > 30:  # the app's first 300 ms, flooded
                    break
            assert board.regs[simhw.H_WDT_FEEDS] > 30, board.diagnosis()
            assert board.crash is None, board.crash
            assert len(board.observe()["resets"]) >= resets + 1, board.observe()["resets"]
            assert not board.bridge.at_repl and ">>> " not in board.output(), board.output()[-600:]
        board_sleep(0.3)
        with patient_pen(board.url) as pen:  # the firmware, not the REPL
            assert pen.status().state in ("BOOT", "IDLE")
    assert ">>> " not in board.output() and "raw REPL" not in board.output()


def test_ctrl_c_bursts_while_running_are_a_realtime_stop_and_never_leave_the_app(board):
    # Ctrl-C interrupts nothing while the app runs (kbd_intr(-1)): a second one could land
    # in main.py's finally before the motor is off. The byte is a realtime STOP instead,
    # acted on even with a partial line in the buffer, and the VM never dies of it.
    pen = start_run(patient_pen(board.url), board)
    wait_until(lambda: board.observe()["motor_hz"] > 50, 3, "motor up to speed")
    resets = board.observe()["resets"]
    pen.link.write_raw(b"7 STA")  # a frame cut short: the STOP does not wait for its end
    seen = []
    for _ in range(10):
        pen.link.write_raw(b"\x03" * 16)
        time.sleep(0.02)
        seen.append(board.observe())
    assert all(o["vm_running"] for o in seen), "the VM died of a Ctrl-C"
    wait_until(lambda: motor_stopped(board), 3, "motor off after the realtime STOP")
    assert board.crash is None and board.observe()["resets"] == resets
    assert ">>> " not in board.output()  # still in the app, never at the REPL
    pen.link.write_raw(b"\r\n")  # the cut frame ends: refused as malformed, nothing runs
    # the board still answers frames, and ramps down to READY as after a STOP command
    st = wait_until(lambda: (lambda st: st.state == "READY" and st)(pen.status()), 3, "READY")
    assert not st.faults
    # a second run stops the same way: the realtime STOP is the STOP command
    pen.start()
    wait_until(lambda: board.observe()["motor_duty"] > 0, 2, "motor running again")
    pen.link.write_raw(b"\x03")
    wait_until(lambda: motor_stopped(board), 3, "motor off after one Ctrl-C")
    wait_until(lambda: pen.status().state == "READY", 3, "READY after one Ctrl-C")
    pen.close()
    assert board.observe()["vm_running"] and board.observe()["resets"] == resets


def test_ctrl_c_during_homing_stops_homing(board):
    # a jammed carriage keeps homing under way (it takes ~60 ms when free: a busy host
    # saw it over before the Ctrl-C arrived); once the jam is gone, a homing that went on
    # would drive the needles out to leave the switch
    board.inject("depth_jam")
    with patient_pen(board.url) as pen:
        pen.request("HOME")
        wait_until(lambda: pen.status().state == "HOMING", 2, "homing under way")
        pen.link.write_raw(b"\x03\x03")
        wait_until(lambda: pen.status().state == "IDLE", 2, "homing stopped by Ctrl-C")
        depth = board.observe()["depth_mm"]
        board.remove("depth_jam")
        board_sleep(0.3)
        # homing left where it stood, then the needles driven in to the switch, never out
        assert board.observe()["depth_mm"] <= min(depth, 0.0) + 0.005
        assert pen.status().state == "IDLE"
    assert board.crash is None and board.observe()["resets"] == [1]


def patched_firmware(tmp_path, name, old, new):
    """A copy of the firmware with one edit, deployed like the real one."""
    fw = tmp_path / "fw"
    if not fw.exists():  # on top of a mutant's firmware when `make safety-mutants` runs
        shutil.copytree(os.environ.get("PEN_FIRMWARE_DIR") or FIRMWARE_DIR, fw)
    src = (fw / name).read_text()
    assert old in src, "the patch no longer matches %s" % name
    (fw / name).write_text(src.replace(old, new))
    return fw


# an exception that escapes the app (control_task is the one main() awaits): a planted bug
PLANTED_ESCAPE = ("app.py", "            due = time.ticks_add(due, period)\n",
                  "            if self.ctl.params[P.P_TELEMETRY] == 7:\n"
                  "                raise ValueError('planted bug')\n"
                  "            due = time.ticks_add(due, period)\n")


def escape_from_the_app(board, pen, until, what):
    """Trip PLANTED_ESCAPE on a running board: the app ends; wait until `until()`."""
    pen.keepalive.stop()
    pen.link.write_line(frame("99 SET telemetry=7"))  # no reply comes: the app is gone
    wait_until(until, 3, what)
    pen.link.close()


def test_an_exception_out_of_the_app_leaves_the_motor_off_and_resets_never_to_the_repl(
        tmp_path):
    # main.py's and app.run()'s finally make the outputs safe; then, outside service mode,
    # main.py resets the board into the firmware: the REPL would let anyone run anything
    fw = patched_firmware(tmp_path, *PLANTED_ESCAPE)
    with VirtualBoard(firmware_dir=fw) as board:
        escape_from_the_app(board, start_run(patient_pen(board.url), board),
                            lambda: 2 in board.observe()["resets"], "the reset")  # HARD
        assert "planted bug" in board.output()
        assert motor_stopped(board)
        with patient_pen(board.url) as pen:
            assert pen.info["reset"] == "HARD" and pen.status().state == "IDLE"
        assert ">>> " not in board.output() and motor_stopped(board)
        board.check()


def test_missing_finally_is_caught_by_pwm_persistence(tmp_path):
    # A firmware whose main.py and app.run() lack the finally: on an ESP32 the PWM
    # keeps running at the REPL, and the virtual board must show exactly that.
    patched_firmware(tmp_path, *PLANTED_ESCAPE)
    for patch in MAIN_WITHOUT_FINALLY:
        patched_firmware(tmp_path, *patch)
    fw = patched_firmware(tmp_path, "app.py", "    finally:\n        app.safe()\n",
                          "    except ValueError:\n        raise\n")
    with VirtualBoard(firmware_dir=fw) as board:
        escape_from_the_app(board, start_run(patient_pen(board.url), board),
                            lambda: ">>> " in board.output(), "the REPL prompt")
        assert board.observe()["motor_duty"] > 0  # the hazard a missing finally leaves


def test_a_vm_that_dies_is_a_panic_outputs_reset_at_once_and_the_board_boots_again(board):
    pen = start_run(patient_pen(board.url), board)
    pen.keepalive.stop()
    board.proc.kill()  # the chip panics
    wait_until(lambda: board.crash, 2.0, "crash noticed")
    # noticed and reset in one pass of the board: whoever sees the crash sees the outputs off
    assert motor_stopped(board)
    with pytest.raises(VirtualBoardError, match="VM exited"):
        board.check()  # recorded: a test cannot miss it although the board rebooted
    pen.link.close()
    with patient_pen(board.url) as pen:
        assert pen.info["reset"] == "HARD"  # what an ESP32 reports after a panic
        assert pen.status().state == "IDLE"
    assert board.observe()["resets"] == [1, 2] and motor_stopped(board)
    board.crash = None  # the fixture's own check must not fail this test


def test_watchdog_reset_is_reported_after_a_hang(board):
    with patient_pen(board.url) as pen:
        board.inject("hang")  # the firmware stops being scheduled
        wait_until(lambda: 3 in board.observe()["resets"], 5.0, "watchdog reset")
    with patient_pen(board.url) as pen:
        assert pen.info["reset"] == "WATCHDOG"
        assert "WATCHDOG" in pen.status().faults
        assert motor_stopped(board)


def test_unexpected_exception_stops_motor_and_reports_internal(tmp_path):
    # a bug that only bites at 133 Hz, planted in a deployed copy of the controller
    fw = patched_firmware(tmp_path, "controller.py", "        sp = r.setpoint_chz\n",
                          "        sp = r.setpoint_chz\n        if self.rate_target == 13300:\n"
                          "            raise ZeroDivisionError('planted bug')\n")
    with VirtualBoard(firmware_dir=fw) as board, patient_pen(board.url) as pen:
        pen.use_profile("body")
        start_run(pen, board)
        pen.set(rate_hz=133)
        wait_until(lambda: motor_stopped(board), 1, "motor off after the exception")
        st = pen.status()
        assert st.state == "FAULT" and "INTERNAL" in st.faults
        assert "planted bug" in pen.faults()[0]["detail"]
        board_sleep(0.3)
        assert motor_stopped(board)  # stays off although the tick keeps raising
        board.check()


def test_estop_pin_interrupt_alone_stops_and_latches(tmp_path):
    # second layer on its own: the supervisor's e-stop check removed, the IRQ remains
    fw = patched_firmware(tmp_path, "supervisor.py",
                          "        if r.estop_open and not f & (1 << P.F_ESTOP):\n",
                          "        if False:\n")
    with VirtualBoard(firmware_dir=fw) as board, patient_pen(board.url) as pen:
        start_run(pen, board)
        board.inject("estop")
        wait_until(lambda: motor_stopped(board), 1, "motor off from the pin interrupt")
        assert "ESTOP" in pen.status().faults
        assert "pin interrupt" in pen.faults()[0]["detail"]
