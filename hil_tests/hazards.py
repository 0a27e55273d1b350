"""Hazard table: hazard -> cause -> interlock -> fault code -> tests.

Data, kept next to the tests that give the evidence. `test_hazard_table.py` fails if a
fault code defined in the protocol has no test that trips it, or if a test named here
does not exist; `make safety-report` prints the table with each test's last result.

`reaction` is the stated reaction time in control ticks from the hazard appearing to PWM 0
and driver enable low: "immediate" (judged in the tick under way or the next: 2 ticks), or
the board limit whose debounce applies (its milliseconds in whole ticks of the board's
period, 10 ms on the ESP32 boards), plus any rise time in milliseconds, plus those 2 ticks.
"""

import math

INTERLOCK_TEST = "hil_tests/test_interlocks.py::test_interlock_stops_latches_and_clears[%s]"
DEPLOY_TEST = "hil_tests/test_deploy.py::test_damaged_file_locks_the_motor_out_until_a_good" \
              "_deploy[%s]"
STRAY_TEST = "hil_tests/test_deploy.py::test_anything_on_the_flash_that_was_not_deployed_locks" \
             "_out_until_a_deploy_removes_it[%s]"

PROFILE_TEST = "hil_tests/test_profiles_settings.py::"
DEPTH_TEST = "hil_tests/test_depth_safety.py::"
LOG_TEST = "hil_tests/test_log_resets.py::"
KEYED_TEST = "hil_tests/test_keyed_access.py::"
CARTRIDGE_TEST = "hil_tests/test_cartridges.py::"

# injection name on the virtual board -> fault code, reaction, state after, cause visible at rest
INTERLOCKS = {
    "estop": ("ESTOP", "immediate", "ESTOP", True),
    "cartridge_removed": ("CARTRIDGE", "immediate", "FAULT", True),
    "stall": ("STALL", ("no_pulse_ms", 2), "FAULT", False),
    "tach_lost": ("TACH_LOST", ("no_pulse_ms", 2), "FAULT", False),
    "driver_short": ("SPEED", ("speed_error_ms", 1, 100), "FAULT", False),
    "overcurrent": ("OVERCURRENT", ("overcurrent_ms", 1), "FAULT", True),
    "overtemp": ("OVERTEMP", "immediate", "FAULT", True),
    "thermistor_open": ("THERMISTOR", "immediate", "FAULT", True),
    "thermistor_short": ("THERMISTOR", "immediate", "FAULT", True),
    "depth_sensor_open": ("DEPTH_SENSOR", "immediate", "FAULT", True),
    "current_sensor_open": ("CURRENT_SENSOR", ("current_sensor_ms", 1), "FAULT", True),
    "supply_low": ("SUPPLY_LOW", ("supply_ms", 1), "FAULT", True),
    "supply_high": ("SUPPLY_HIGH", ("supply_ms", 1), "FAULT", True),
    # the carriage knocked out at once: the needles retract as soon as it has tripped
    "depth_slip": ("OVERDEPTH", ("overdepth_ms", 1), "FAULT", False),
}

# The interlocks that judge an ADC reading, and the ends of the ESP32's ADC reference spread
# (1000-1200 mV among chips: ESP-IDF's ADC calibration guide; the eFuse holds each chip's):
# each must trip on a unit at either end as on a nominal one
ANALOG = ["current_sensor_open", "depth_sensor_open", "depth_slip", "overcurrent", "overtemp",
          "supply_high", "supply_low", "thermistor_open", "thermistor_short"]
ADC_VREF_ENDS = (1000, 1200)
SPREAD_TEST = "hil_tests/test_interlocks.py::test_analog_interlocks_trip_at_either_end_of_the" \
              "_adc_reference_spread[%s-%d]"


def spread_tests(*injections):
    return [SPREAD_TEST % (name, vref) for name in injections for vref in ADC_VREF_ENDS]


# parameters an injection takes for its interlock's own test. SPEED's evidence is a driver
# failed into a resistive short (2.5 ohm beside the motor's 2): the motor overspeeds with
# its current under the limit from any point of a run. A dead short (the default) surges
# 3.5 A for 27 ms from 100 Hz against OVERCURRENT's 30 ms debounce, longer from lower
# speeds: it would trip SPEED or OVERCURRENT by a few milliseconds, and a test of SPEED
# that ends in OVERCURRENT shows nothing of SPEED.
INJECTIONS = {"driver_short": {"ohm": 2.5}}


def stated_reaction_ticks(injection, board):
    """Ticks within which the motor must be off: 2 for immediate checks; for debounced
    ones, the debounce in ticks times how many windows it spans, plus any rise time the
    reading needs to cross its limit (ms, in ticks), plus 2."""
    reaction = INTERLOCKS[injection][1]
    if reaction == "immediate":
        return 2
    limit, windows, *rise = reaction
    tick = board["timing"]["tick_ms"]
    return (math.ceil(board["limits"][limit] / tick) * windows
            + (math.ceil(rise[0] / tick) if rise else 0) + 2)


HAZARDS = [
    {
        "hazard": "needles run with no cartridge (exposed drive, wrong needle stop)",
        "cause": "cartridge not fitted, or pulled out while running",
        "interlock": "cartridge switch: start precondition; trips while running",
        "faults": ["CARTRIDGE"],
        "tests": [INTERLOCK_TEST % "cartridge_removed",
                  "hil_tests/test_refusals.py::test_start_refused_without_cartridge"],
    },
    {
        "hazard": "needles run too deep, or stand out at rest",
        "cause": "operator sets a depth beyond the area's safe depth; a stricter profile "
                 "chosen with a deeper depth stored or the needles still out; power lost "
                 "mid-run; carriage knocked out; actuator jams or its sensor fails",
        "interlock": "the board's cap and the active treatment profile's depth and rate "
                     "caps enforced on the board at set and at start (CAP), the profile "
                     "locked while running, the most restrictive profile as the fallback; "
                     "one guarded path to the actuator's target (the set depth only while "
                     "running, clamped to the caps; 0 in every other state); a stricter "
                     "profile clears a stored value beyond its caps and is refused while "
                     "the needles stand beyond them; START checks the measured depth; "
                     "OVERDEPTH on the measured depth in every state; retract to the home "
                     "switch at boot; closed depth loop with following-error and "
                     "sensor-range checks; retract on any fault; mechanical hard stop",
        "faults": ["DEPTH_FOLLOWING", "DEPTH_SENSOR", "OVERDEPTH"],
        "tests": ["hil_tests/test_refusals.py::test_bad_values_refused_and_nothing_changes"
                  "[params1-CAP-words1]",
                  PROFILE_TEST + "test_each_profile_caps_depth_and_rate_on_the_board"
                  "[cheeks-1500-15000-cheeks]",
                  PROFILE_TEST + "test_start_beyond_a_newly_chosen_profile_is_refused",
                  PROFILE_TEST + "test_switching_profile_while_running_is_refused",
                  PROFILE_TEST + "test_the_fallback_profile_is_the_most_restrictive",
                  "hil_tests/test_interlocks.py::test_depth_jam_trips_following_error",
                  INTERLOCK_TEST % "depth_sensor_open",
                  "hil_tests/test_session.py::test_depth_holds_within_tolerance",
                  "hil_tests/test_interlocks.py::test_fault_retracts_needles",
                  INTERLOCK_TEST % "depth_slip", *spread_tests("depth_sensor_open", "depth_slip"),
                  DEPTH_TEST + "test_a_failed_sensor_reads_the_adcs_floor_or_full_scale_and"
                  "_trips_at_once[depth_sensor_open-1000]",
                  DEPTH_TEST + "test_a_failed_sensor_reads_the_adcs_floor_or_full_scale_and"
                  "_trips_at_once[depth_sensor_open-1200]",
                  DEPTH_TEST + "test_the_depth_actuator_holds_still_on_a_noisy_sensor[1000]",
                  DEPTH_TEST + "test_the_depth_actuator_holds_still_on_a_noisy_sensor[1200]",
                  DEPTH_TEST + "test_a_stricter_profile_never_runs_the_needles_beyond_its_cap",
                  DEPTH_TEST + "test_a_stricter_profile_clears_a_deeper_stored_depth",
                  DEPTH_TEST + "test_the_needles_are_retracted_at_rest_and_out_only_while"
                  "_running",
                  DEPTH_TEST + "test_the_board_retracts_the_needles_at_boot_before_it_reports"
                  "_ready[3.1]",
                  DEPTH_TEST + "test_a_jammed_actuator_at_boot_latches_instead_of_retracting",
                  DEPTH_TEST + "test_overdepth_trips_in_any_state_and_names_the_depth"],
    },
    {
        "hazard": "needles run too fast, or drag and tear skin when slowed or stalled",
        "cause": "shorted driver transistor; locked rotor; skin drag",
        "interlock": "closed-loop rate with speed-error check; stall detection (drive, no "
                     "tach pulses, high current); two means to stop: PWM 0 and enable low",
        "faults": ["SPEED", "STALL", "OVERCURRENT"],
        "tests": [INTERLOCK_TEST % "driver_short", INTERLOCK_TEST % "stall",
                  INTERLOCK_TEST % "overcurrent", *spread_tests("overcurrent")],
    },
    {
        "hazard": "overcurrent and stall go unseen: the motor drags or overheats unstopped",
        "cause": "motor current sensor open, unpowered or dead (its input at 0 V)",
        "interlock": "the sensor idles at a 300 mV bias: a reading below 190 mV for 20 ms "
                     "(the ADC's floor is ~142 mV) trips in every state, so START is refused; "
                     "the calibration cannot take a sound unit's zero within 30 mV of it",
        "faults": ["CURRENT_SENSOR"],
        "tests": [INTERLOCK_TEST % "current_sensor_open", *spread_tests("current_sensor_open"),
                  "hil_tests/test_interlocks.py::test_a_dead_current_sensor_at_rest_refuses"
                  "_start",
                  PROFILE_TEST + "test_a_unit_at_the_lowest_current_calibration_runs_without_a"
                  "_sensor_fault"],
    },
    {
        "hazard": "handpiece overheats against the skin",
        "cause": "long run, overload, cooling blocked",
        "interlock": "thermistor: warning level, then trip level",
        "faults": ["OVERTEMP"],
        "tests": [INTERLOCK_TEST % "overtemp", *spread_tests("overtemp"),
                  "hil_tests/test_session.py::test_warm_handpiece_warns_without_stopping",
                  "hil_tests/test_interlocks.py::test_a_temperature_at_the_warning_level_warns"
                  "_once_not_on_every_noisy_sample"],
    },
    {
        "hazard": "needles keep running with the e-stop pressed",
        "cause": "operator hits the e-stop",
        "interlock": "e-stop loop cuts the driver enable in hardware; firmware Pin.irq and "
                     "the supervisor latch ESTOP",
        "faults": ["ESTOP"],
        "tests": [INTERLOCK_TEST % "estop",
                  "hil_tests/test_interlocks.py::test_estop_cuts_driver_in_hardware_and_firmware",
                  "hil_tests/test_lifecycle.py::test_estop_pin_interrupt_alone_stops_and_latches",
                  "hil_tests/test_interlocks.py::test_every_short_estop_opening_is_latched"],
    },
    {
        "hazard": "needles keep running after the operator lost control",
        "cause": "host program hangs or the cable is pulled; firmware hangs; firmware bug; "
                 "Ctrl-C bursts from a terminal or mpremote; a flood on the link; a second "
                 "program on the port answering for STOP",
        "interlock": "link timeout during host-started runs; a heartbeat toggled once a "
                     "tick after the supervisor ran gates both drivers' enables in hardware "
                     "(a retriggerable monostable: a hung firmware loses them within 40 ms); "
                     "watchdog fed only after the supervisor ran; exceptions end in the "
                     "safe state, and outside service mode in a reset, never the REPL; "
                     "repeated failed boots end in a minimal lockout that imports no motor "
                     "module; continuous run limit; Ctrl-C never interrupts the app "
                     "(kbd_intr(-1)), it is a realtime STOP; the link's work bounded per "
                     "pass of the loop; retries matched on the whole frame, and stop() "
                     "confirmed by the board's state",
        "faults": ["LINK_LOST", "WATCHDOG", "INTERNAL", "RUN_LIMIT"],
        "tests": ["hil_tests/test_link.py::test_silent_host_during_run_stops_motor_within"
                  "_link_timeout",
                  "hil_tests/test_link.py::test_cut_link_during_run_stops_motor",
                  "hil_tests/test_lifecycle.py::test_watchdog_reset_is_reported_after_a_hang",
                  DEPTH_TEST + "test_a_hang_loses_both_drivers_within_the_heartbeat_window",
                  DEPTH_TEST + "test_heavy_load_on_the_host_never_drops_the_drivers",
                  LOG_TEST + "test_a_hang_is_reset_by_the_watchdog_with_the_motor_off_and"
                  "_logged",
                  "hil_tests/test_lifecycle.py::test_unexpected_exception_stops_motor_and"
                  "_reports_internal",
                  "hil_tests/test_interlocks.py::test_run_limit_stops_the_motor",
                  "hil_tests/test_lifecycle.py::test_an_exception_out_of_the_app_leaves_the"
                  "_motor_off_and_resets_never_to_the_repl",
                  "hil_tests/test_lifecycle.py::test_ctrl_c_bursts_while_running_are_a_realtime"
                  "_stop_and_never_leave_the_app",
                  "hil_tests/test_lifecycle.py::test_ctrl_c_during_homing_stops_homing",
                  "hil_tests/test_deploy.py::test_a_firmware_that_cannot_boot_resets_into_the"
                  "_minimal_lockout_never_the_repl",
                  "hil_tests/test_link.py::test_a_flood_on_the_link_does_not_starve_the_control"
                  "_tick[lines-100]",
                  "hil_tests/test_link.py::test_a_flood_on_the_link_does_not_starve_the_control"
                  "_tick[bytes-100]",
                  "hil_tests/test_link.py::test_a_second_writer_taking_the_pens_next_numbers"
                  "_cannot_fake_a_stop"],
    },
    {
        "hazard": "needles run on a failed sensor",
        "cause": "thermistor open or shorted, depth sensor open, tachometer stuck, "
                 "current-sense offset drifted",
        "interlock": "range checks on every reading, inside the ESP32 ADC's linear range "
                     "(150-2450 mV at 11 dB) at either end of its reference spread; an open "
                     "or shorted input reads the ADC's floor (142 mV) or full scale "
                     "(3060-3209 mV), well outside the valid range; no-pulse check while "
                     "driving; "
                     "calibration saved per unit within bounds; no calibration hides a trip "
                     "(past a trip level the untrimmed reading counts when it is further out)",
        "faults": ["THERMISTOR", "DEPTH_SENSOR", "TACH_LOST"],
        "tests": [PROFILE_TEST + "test_calibration_is_saved_bounded_and_applied_to_the_readings",
                  PROFILE_TEST + "test_no_allowed_current_calibration_hides_an_overcurrent[150]",
                  PROFILE_TEST + "test_no_allowed_current_calibration_hides_an_overcurrent[-80]",
                  PROFILE_TEST + "test_no_allowed_supply_trim_hides_a_supply_fault"
                  "[1030-supply_low-10.4-SUPPLY_LOW]",
                  PROFILE_TEST + "test_no_allowed_supply_trim_hides_a_supply_fault"
                  "[970-supply_high-13.7-SUPPLY_HIGH]",
                  INTERLOCK_TEST % "thermistor_open", INTERLOCK_TEST % "thermistor_short",
                  INTERLOCK_TEST % "depth_sensor_open", INTERLOCK_TEST % "tach_lost",
                  *spread_tests("thermistor_open", "thermistor_short", "depth_sensor_open"),
                  DEPTH_TEST + "test_a_failed_sensor_reads_the_adcs_floor_or_full_scale_and"
                  "_trips_at_once[thermistor_short-1000]",
                  DEPTH_TEST + "test_a_failed_sensor_reads_the_adcs_floor_or_full_scale_and"
                  "_trips_at_once[thermistor_open-1200]"],
    },
    {
        "hazard": "needles run on a bad supply (weak strokes, erratic control)",
        "cause": "flat battery, wrong adapter",
        "interlock": "supply voltage window, debounced",
        "faults": ["SUPPLY_LOW", "SUPPLY_HIGH"],
        "tests": [INTERLOCK_TEST % "supply_low", INTERLOCK_TEST % "supply_high",
                  *spread_tests("supply_low", "supply_high"),
                  LOG_TEST + "test_a_brownout_is_reported_as_such_and_a_power_on_as_power_on"],
    },
    {
        "hazard": "needles run on firmware other than the one verified",
        "cause": "a file on the board edited, a deploy interrupted half-way, a stale .py "
                 "or a package folder shadowing a deployed .mpy, anything else left on the "
                 "flash in service mode",
        "interlock": "at boot every deployed file is checked against the SHA-256 manifest "
                     "that pen deploy writes last, and the whole flash: any file or folder "
                     "neither listed nor the firmware's own data is a mismatch; on a mismatch "
                     "no module that drives the motor is imported (the lockout only "
                     "reports), until a good deploy, which removes what it did not put there",
        "faults": ["INTEGRITY"],
        "tests": [DEPLOY_TEST % "supervisor-edited", DEPLOY_TEST % "controller-half-copied",
                  DEPLOY_TEST % "protocol-half-copied",
                  STRAY_TEST % "package-shadowing-caps", STRAY_TEST % "folder",
                  STRAY_TEST % "file",
                  KEYED_TEST + "test_files_and_a_manifest_rewritten_without_the_key_lock_the"
                  "_motor_out"],
    },
    {
        "hazard": "someone with the USB cable drives the needles around the firmware "
                  "(interlocks bypassed from the REPL)",
        "cause": "Ctrl-C or service mode giving the REPL, code run through the protocol",
        "interlock": "Ctrl-C off from main.py's first statement to its reset, no boot.py "
                     "(a Ctrl-C flood across resets never reaches the REPL); the app never "
                     "ends at the REPL; no command runs code; SERVICE only with the board's "
                     "key (HMAC-SHA256 answer to a fresh nonce, bound to the board and the "
                     "command; a growing wait after wrong answers; every attempt logged). "
                     "Open: the ROM loader on the same cable (docs/security.md)",
        "faults": [],
        "tests": ["hil_tests/test_lifecycle.py::test_a_ctrl_c_flood_across_resets_never"
                  "_reaches_the_repl_nor_kills_the_board",
                  KEYED_TEST + "test_mpremote_gets_nothing_from_application_mode_and_changes"
                  "_nothing",
                  KEYED_TEST + "test_service_without_the_key_is_refused_naming_the_key_and_the"
                  "_way_back",
                  KEYED_TEST + "test_a_wrong_answer_is_refused_logged_and_the_next_challenge"
                  "_waits",
                  KEYED_TEST + "test_an_answer_counts_once_a_replay_is_refused",
                  KEYED_TEST + "test_both_lockouts_want_the_key_for_service[lockout]",
                  KEYED_TEST + "test_both_lockouts_want_the_key_for_service[minimal-lockout]"],
    },
    {
        "hazard": "an operator trims the calibration so that a trip comes late",
        "cause": "current_zero or supply_gain changed from the operator's protocol",
        "interlock": "the calibration is keyed (CONFIG with the key's answer); bounded; past "
                     "a trip level the untrimmed reading counts",
        "faults": [],
        "tests": [KEYED_TEST + "test_calibration_needs_the_key_and_the_profile_does_not"],
    },
    {
        "hazard": "corrupted settings or commands move the needles wrongly",
        "cause": "line noise, half-written frames, a retried command running twice, a "
                 "settings file damaged or cut short by a power failure",
        "interlock": "CRC on every frame; bounds and step grid checked before anything is "
                     "applied; repeated sequence numbers answered, not re-run, and never "
                     "resent across a board restart; settings saved with a version and a "
                     "CRC, atomically (new file, read back, rename); unusable settings give "
                     "the safe defaults and a CONFIG warning",
        "faults": [],
        "tests": [PROFILE_TEST + "test_a_power_cut_at_every_write_point_of_a_save_leaves_old"
                  "_or_new_settings",
                  PROFILE_TEST + "test_unusable_settings_fall_back_to_safe_defaults_with_a"
                  "_config_warning[corrupt]",
                  PROFILE_TEST + "test_bad_saved_values_are_refused_and_nothing_is_saved",
                  "hil_tests/test_link.py::test_corrupted_frame_refused_and_not_executed",
                  "hil_tests/test_link.py::test_repeated_sequence_number_gets_first_answer"
                  "_without_running_twice",
                  "hil_tests/test_link.py::test_a_reused_sequence_number_is_refused_and_hello"
                  "_forgets_the_numbers",
                  "hil_tests/test_refusals.py::test_unknown_and_malformed_commands_refused"],
    },
    {
        "hazard": "a used cartridge is run again (cross-contamination; worn needles tear skin)",
        "cause": "cartridge not replaced between clients, moved to another pen, or run past "
                 "its life",
        "interlock": "the cartridge's 1-Wire ID chip read at every START: refused (PRECONDITION) "
                     "without a valid id (CRC, family), if used in an earlier, ended session "
                     "(this board's record on the flash; the mark a pen writes on the chip "
                     "before the needles first move), or at its stroke limit; a run stops at "
                     "the limit; the record written atomically; a session ends with the "
                     "power (test cartridges only in keyed test mode)",
        "faults": [],
        "tests": [CARTRIDGE_TEST + "test_a_cartridge_from_an_ended_session_is_refused",
                  CARTRIDGE_TEST + "test_a_wiped_cartridge_is_still_refused_by_the_boards_record",
                  CARTRIDGE_TEST + "test_a_cartridge_another_pen_marked_is_refused",
                  CARTRIDGE_TEST + "test_a_cartridge_without_a_good_id_is_refused[bad_crc]",
                  CARTRIDGE_TEST + "test_a_cartridge_without_a_good_id_is_refused[no_chip]",
                  CARTRIDGE_TEST + "test_the_stroke_limit_refuses_a_spent_cartridge_and_stops_a"
                  "_run",
                  CARTRIDGE_TEST + "test_a_power_cut_at_every_write_point_of_the_record_leaves_it"
                  "_consistent",
                  "hil_tests/test_sessions.py::test_a_reset_keeps_the_session_and_a_power_off"
                  "_ends_it[power-off]",
                  "hil_tests/test_sessions.py::test_a_test_cartridge_runs_only_in_test_mode_and"
                  "_again_in_each_session"],
    },
    {
        "hazard": "a fault goes unrecorded, so its cause is never found",
        "cause": "power cut, watchdog reset or brown-out before the record reaches flash",
        "interlock": "fault and event log: CRC-framed records in a fixed ring, queued in RAM "
                     "and written whenever the needles are still (after every fault, since a "
                     "fault stops them); the boot record written first; a torn record is "
                     "skipped; at most the unflushed queue (16 records) is lost",
        "faults": [],
        "tests": [LOG_TEST + "test_the_log_survives_a_power_cut_at_every_write_point_of_a"
                  "_flush",
                  LOG_TEST + "test_faults_and_clears_are_logged_with_their_readings",
                  LOG_TEST + "test_the_boot_counter_survives_a_reset"],
    },
]
