"""`make safety-mutants`: each interlock disabled in a deployed copy of the firmware must
make its test fail. A mutant that survives means a test that cannot see its interlock.

Runs every mutant's tests in a fresh pytest on the virtual board; prints a table; exits
non-zero if any mutant survived.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hazards import DEPLOY_TEST, DEPTH_TEST, INTERLOCK_TEST, STRAY_TEST  # noqa: E402
from penctl.paths import FIRMWARE_DIR  # noqa: E402

ROOT = Path(__file__).parents[1]


KEYED = "hil_tests/test_keyed_access.py::%s"
CARTRIDGE = "hil_tests/test_cartridges.py::"
CTRL_C_TEST = ("hil_tests/test_lifecycle.py::test_ctrl_c_bursts_while_running_are_a_realtime"
               "_stop_and_never_leave_the_app")


def no_trip(code):
    """Every place the supervisor would trip `code` returns 'no fault' instead."""
    old = "return P.F_%s\n" % code
    return ("supervisor.py", old, "return _NONE\n")


MUTANTS = [
    ("ESTOP: supervisor check and pin IRQ removed",
     [no_trip("ESTOP"),
      ("controller.py", 'self.trip(P.F_ESTOP, "e-stop input opened (pin interrupt)")', "pass")],
     [INTERLOCK_TEST % "estop"]),
    ("CARTRIDGE: trip while running removed", [no_trip("CARTRIDGE")],
     [INTERLOCK_TEST % "cartridge_removed"]),
    ("CARTRIDGE: start precondition removed",
     [("controller.py", 'missing.append("no cartridge")', "pass")],
     ["hil_tests/test_refusals.py::test_start_refused_without_cartridge"]),
    ("OVERCURRENT", [no_trip("OVERCURRENT")], [INTERLOCK_TEST % "overcurrent"]),
    ("STALL", [no_trip("STALL")], [INTERLOCK_TEST % "stall"]),
    ("TACH_LOST", [no_trip("TACH_LOST")], [INTERLOCK_TEST % "tach_lost"]),
    ("SPEED", [no_trip("SPEED")], [INTERLOCK_TEST % "driver_short"]),
    ("OVERTEMP", [no_trip("OVERTEMP")], [INTERLOCK_TEST % "overtemp"]),
    ("THERMISTOR", [no_trip("THERMISTOR")], [INTERLOCK_TEST % "thermistor_open"]),
    ("DEPTH_SENSOR", [no_trip("DEPTH_SENSOR")], [INTERLOCK_TEST % "depth_sensor_open"]),
    ("DEPTH_FOLLOWING", [no_trip("DEPTH_FOLLOWING")],
     ["hil_tests/test_interlocks.py::test_depth_jam_trips_following_error"]),
    ("SUPPLY_LOW", [no_trip("SUPPLY_LOW")], [INTERLOCK_TEST % "supply_low"]),
    ("SUPPLY_HIGH", [no_trip("SUPPLY_HIGH")], [INTERLOCK_TEST % "supply_high"]),
    ("LINK_LOST", [no_trip("LINK_LOST")],
     ["hil_tests/test_link.py::test_silent_host_during_run_stops_motor_within_link_timeout"]),
    ("RUN_LIMIT", [no_trip("RUN_LIMIT")],
     ["hil_tests/test_interlocks.py::test_run_limit_stops_the_motor"]),
    ("WATCHDOG: never started or fed",
     [("app.py", 'machine.WDT(timeout=t["watchdog_ms"])', "None"),
      ("app.py", "self.wdt.feed()", "pass")],
     ["hil_tests/test_lifecycle.py::test_watchdog_reset_is_reported_after_a_hang"]),
    ("INTERNAL: exceptions in the tick ignored",
     [("app.py", "            self.ctl.internal_fault(e)\n", "            pass\n")],
     ["hil_tests/test_lifecycle.py::test_unexpected_exception_stops_motor_and_reports_internal"]),
    ("Exceptions: no finally in app.run(), none in main.py nor its reset",
     [("main.py", "    except BaseException as e:  # printed before the reset below, where a "
       "board shows it\n        sys.print_exception(e)\n    finally:\n        #",
       "    except KeyboardInterrupt:\n        raise\n    if 0:\n        #"),
      ("main.py", "finally:\n    if not service:\n", "finally:\n    if 0:\n"),
      ("app.py", "    finally:\n        app.safe()\n",
       "    except KeyboardInterrupt:\n        raise\n")],
     ["hil_tests/test_lifecycle.py::test_an_exception_out_of_the_app_leaves_the_motor_off_and"
      "_resets_never_to_the_repl"]),
    ("Ctrl-C: kbd_intr(-1) removed (Ctrl-C interrupts the app)",
     [("main.py", "\nmicropython.kbd_intr(-1)\n", "\n")],
     [CTRL_C_TEST, "hil_tests/test_lifecycle.py::test_a_ctrl_c_flood_across_resets_never_reaches"
      "_the_repl_nor_kills_the_board"]),
    ("Ctrl-C: realtime STOP byte ignored",
     [("link.py", "            if c == _ETX:\n                return STOP\n", "")],
     [CTRL_C_TEST]),
    ("AUTH: any answer opens service mode",
     [("auth.py", "    elif not _same(mac, answer(key, nonce, uid, name, rest)):\n",
       "    elif 0:\n")],
     [KEYED % "test_a_wrong_answer_is_refused_logged_and_the_next_challenge_waits"]),
    ("AUTH: the calibration open to any operator",
     [("admin_cmds.py", 'if pair[0] == "mac" or P.index_of(P.CALIBRATION, pair[0]) >= 0:',
       'if pair[0] == "mac":')],
     [KEYED % "test_calibration_needs_the_key_and_the_profile_does_not"]),
    ("AUTH: any answer opens the minimal lockout's service mode",
     [("main.py", "        if mac and args[2:] == [mac]:\n", "        if 1:\n")],
     [KEYED % "test_both_lockouts_want_the_key_for_service[minimal-lockout]"]),
    ("INTEGRITY: the manifest's MAC not checked",
     [("integrity.py", "    if mac != manifest_mac(key, text):\n", "    if 0:\n")],
     [KEYED % "test_files_and_a_manifest_rewritten_without_the_key_lock_the_motor_out"]),
    ("INTEGRITY: boot check finds nothing wrong",
     [("integrity.py", "    return problems\n", "    return []\n")],
     [DEPLOY_TEST % "supervisor-edited"]),
    ("INTEGRITY: files and folders not in the manifest pass the boot check",
     [("integrity.py", "        if name not in listed and name != MANIFEST and name != MAC "
       "and name not in DATA:\n", "        if False:\n")],
     [STRAY_TEST % "package-shadowing-caps"]),
    ("Calibration: the trimmed current reading hides an overcurrent",
     [("sensors.py", "r.current_ma = raw if raw >= self.overcurrent_ma and raw > ma else ma",
       "r.current_ma = ma")],
     ["hil_tests/test_profiles_settings.py::test_no_allowed_current_calibration_hides_an"
      "_overcurrent[150]"]),
    ("Sequence numbers: repeated frames run again",
     [("link.py", "            if self.seqs[i] == seq:\n", "            if False:\n")],
     ["hil_tests/test_link.py::test_every_command_runs_exactly_once_through_a_lossy_link"]),
    ("Sequence numbers: matched on the number alone, not the whole frame",
     [("link.py", "                if self.crcs[i] == crc and self.replies[i] is not None:\n",
       "                if self.replies[i] is not None:\n")],
     ["hil_tests/test_link.py::test_a_reused_sequence_number_is_refused_and_hello_forgets_the"
      "_numbers"]),
    ("Link task: every waiting line handled before the control tick runs again",
     [("app.py", "            for _ in range(_LINK_LINES):\n", "            while True:\n"),
      ("link.py", "        while n and self.waiting():\n",
       "        while self.waiting():\n")],
     ["hil_tests/test_link.py::test_a_flood_on_the_link_does_not_starve_the_control_tick"]),
    ("CRC: frames accepted without checking it",
     [("wire.py", "    if int(digits, 16) != crc32(body.encode()):\n", "    if False:\n")],
     ["hil_tests/test_link.py::test_corrupted_frame_refused_and_not_executed"]),
    ("Profile caps: only the board's own cap checked",
     [("caps.py", "        name = P.PROFILES[self.profile][0]\n", "        return None\n")],
     ["hil_tests/test_profiles_settings.py::test_start_beyond_a_newly_chosen_profile_is_refused"]),
    ("Settings: saved in place, not through a new file and a rename",
     [("settings.py", 'NEW = "settings.new"', 'NEW = "settings.txt"')],
     ["hil_tests/test_profiles_settings.py::test_a_power_cut_at_every_write_point_of_a_save"
      "_leaves_old_or_new_settings"]),
    ("Single use: this board's record of ended sessions ignored",
     [("treatment.py", "mine = [c for c in carts if c[0] == cart]", "mine = []")],
     [CARTRIDGE + "test_a_wiped_cartridge_is_still_refused_by_the_boards_record"]),
    ("Single use: the mark another pen left on the cartridge ignored",
     [("treatment.py", "elif row and row[1]:", "elif False:")],
     [CARTRIDGE + "test_a_cartridge_another_pen_marked_is_refused"]),
    ("Cartridge id: its CRC not checked",
     [("cartridge_mark.py", "if crc8(rom[:7]) != rom[7]:", "if False:")],
     [CARTRIDGE + "test_a_cartridge_without_a_good_id_is_refused[bad_crc]"]),
    ("Stroke limit: a run not stopped at the cartridge's limit",
     [("controller.py", "if n >= self.stroke_budget and not self.stopping:", "if False:")],
     [CARTRIDGE + "test_the_stroke_limit_refuses_a_spent_cartridge_and_stops_a_run"]),
    ("Sessions: a power-off does not end the session",
     [("treatment.py", 'if session["open"] and clock.mark() != _mark(session["n"]):',
       "if False:")],
     ["hil_tests/test_sessions.py::test_a_reset_keeps_the_session_and_a_power_off_ends_it"
      "[power-off]"]),
    ("Treatment record: saved in place, not through a new file and a rename",
     [("treatment.py", 'NEW = "treatment.new"', 'NEW = "treatment.txt"')],
     [CARTRIDGE + "test_a_power_cut_at_every_write_point_of_the_record_leaves_it_consistent"]),
    ("Event log: written while the needles run",
     [("app.py", "if not self.log.queue or not self.ctl.still():", "if not self.log.queue:")],
     ["hil_tests/test_log_resets.py::test_the_log_is_never_written_while_the_needles_run"]),
    ("Restart: a new boot runs commands before a HELLO",
     [("commands.py", 'if not self.greeted and name != "HELLO":', "if False:")],
     ["hil_tests/test_log_resets.py::test_a_board_answers_nothing_but_hello_after_a_restart"]),
    ("Guarded depth path: the set depth in every state, not only while running",
     [("controller.py", "        if st == P.RUNNING and not self.stopping:\n",
       "        if True:\n")],
     [DEPTH_TEST + "test_the_needles_are_retracted_at_rest_and_out_only_while_running"]),
    ("Profile switch: a stored value beyond the new caps kept",
     [("settings.py", "            ctl.unset(i)\n", "            pass\n")],
     [DEPTH_TEST + "test_a_stricter_profile_clears_a_deeper_stored_depth"]),
    ("START: the measured depth not checked",
     [("controller.py", "        if r.depth_um > self.caps.depth_um():\n", "        if False:\n")],
     [DEPTH_TEST + "test_overdepth_trips_in_any_state_and_names_the_depth"]),
    ("OVERDEPTH", [no_trip("OVERDEPTH")], [INTERLOCK_TEST % "depth_slip"]),
    ("CURRENT_SENSOR", [no_trip("CURRENT_SENSOR")], [INTERLOCK_TEST % "current_sensor_open"]),
    ("HOT warning: no hysteresis (raised and cleared on the thermistor's noise)",
     [("supervisor.py", "self.warnings and r.temp_dc >= self.warn_dc - 10", "0")],
     ["hil_tests/test_interlocks.py::test_a_temperature_at_the_warning_level_warns_once_not_on"
      "_every_noisy_sample"]),
    ("Retract where the position is unknown (boot, watchdog reset) removed",
     [("controller.py", "            d.retract(now_ms)\n", "            pass\n")],
     [DEPTH_TEST + "test_the_board_retracts_the_needles_at_boot_before_it_reports_ready[1.2]"]),
    ("Heartbeat: never toggled (the monostable never enables the drivers)",
     [("app.py", "        self.motor.heartbeat.value(self.stats.ticks & 1)\n", "")],
     [DEPTH_TEST + "test_a_stricter_profile_never_runs_the_needles_beyond_its_cap"]),
    ("STOP: both means of stopping reduced to PWM only",
     [("motor.py", "        self.pwm.duty_u16(0)\n        self.enable.value(0)\n",
       "        self.pwm.duty_u16(0)\n")],
     [INTERLOCK_TEST % "driver_short"]),
]


def build(patches, into):
    shutil.copytree(FIRMWARE_DIR, into)
    for name, old, new in patches:
        src = (into / name).read_text()
        if old not in src:
            raise SystemExit("mutant patch no longer matches %s: %r" % (name, old))
        (into / name).write_text(src.replace(old, new))


def run(name, patches, tests):
    with tempfile.TemporaryDirectory(prefix="pen-mutant-") as tmp:
        fw = Path(tmp) / "fw"
        build(patches, fw)
        env = dict(os.environ, PEN_FIRMWARE_DIR=str(fw))
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist",
                               "-p", "no:cacheprovider", *tests], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        # killed means a test failed on its assertions; a firmware that no longer boots
        # or a test that errors in setup proves nothing about the interlock
        if " failed" in summary:
            verdict = "killed"
        elif done.returncode == 0:
            verdict = "SURVIVED"
        else:
            verdict = "BROKEN (%s)" % summary
        return verdict, time.monotonic() - t0


def main():
    print("| mutant | test | result | s |")
    print("|---|---|---|---|")
    survivors = 0
    for name, patches, tests in MUTANTS:
        verdict, seconds = run(name, patches, tests)
        survivors += verdict != "killed"
        short = ", ".join(t.split("::", 1)[1] for t in tests)
        print("| %s | %s | %s | %.1f |" % (name, short, verdict, seconds), flush=True)
    print("\n%d mutants, %d killed, %d not killed" % (len(MUTANTS), len(MUTANTS) - survivors,
                                                       survivors))
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
