"""The needles never stand out beyond the active profile's cap, and never stand out at rest.

Read from the physics side (`board.observe()`, the actuator's true position) every 10 ms
while the firmware is driven through profile switches, SET, HOME, CLEAR, START, STOP,
DEFAULTS, resets and injected faults. The depth actuator's target comes from one guarded
path (the set depth while running, clamped to the lower of the board's and the profile's
cap; 0 in every other state), the supervisor trips OVERDEPTH on a measured depth beyond
the cap, the board retracts the needles on its own at boot, and a heartbeat the firmware
toggles every tick gates both drivers in hardware, so a hang loses them within its window.
"""

import re
import time

import pytest
from conftest import (
    DepthWatch,
    board_sleep,
    clears,
    motor_stopped,
    patient_pen,
    vm_kept_waiting,
    wait_until,
)
from hazards import ADC_VREF_ENDS, stated_reaction_ticks
from penctl import RefusedError
from penctl.firmware.protocol import PROFILES

pytestmark = pytest.mark.injects

MARGIN_MM = 0.05  # the sensor tolerance the acceptance allows beyond a cap
CAP_MM = {name: cap_um / 1000 for name, cap_um, _, _ in PROFILES}


def use_profile(pen, watch, name):
    """Switch the profile; the watch judges the needles against its cap from then on."""
    pen.use_profile(name)
    watch.cap_mm = CAP_MM[name]


def homed_with_a_body_depth_stored(pen, watch):
    """Where findings 1 and 2 start: body profile, 2.5 mm and 100 Hz set, homed."""
    use_profile(pen, watch, "body")
    pen.set(depth_mm=2.5, rate_hz=100)
    pen.home()


def test_a_stricter_profile_never_runs_the_needles_beyond_its_cap(pen, board):
    # finding 1: START checked the stored settings, not where the actuator stood
    with DepthWatch(board) as watch:
        homed_with_a_body_depth_stored(pen, watch)
        board_sleep(0.5)
        use_profile(pen, watch, "periorbital")
        pen.set(depth_mm=0.5, rate_hz=100)
        pen.start()
        wait_until(lambda: board.observe()["motor_hz"] > 50, 8, "motor running")
        board_sleep(1.5)
        pen.stop()
    watch.check()


def test_a_stricter_profile_clears_a_deeper_stored_depth(pen, board):
    # finding 2: the stored 2.500 mm outlived the switch and any SET, HOME or CLEAR
    # copied it to the actuator
    with DepthWatch(board) as watch:
        homed_with_a_body_depth_stored(pen, watch)
        use_profile(pen, watch, "periorbital")
        values = pen.get()
        assert values["depth"] == "0.000" and values["cap"] == "0.500"
        with pytest.raises(RefusedError, match="depth not set"):
            pen.start()
        pen.set(rate_hz=100)
        pen.home()
        board.inject("overtemp")
        wait_until(lambda: "OVERTEMP" in pen.status().faults, 8, "OVERTEMP latched")
        board.remove("overtemp")
        wait_until(lambda: clears(pen), 8, "clear accepted")
        pen.defaults()
        board_sleep(0.5)
    watch.check()
    assert watch.deepest_mm <= MARGIN_MM  # never out at all: at rest


def test_the_needles_are_retracted_at_rest_and_out_only_while_running(pen, board):
    pen.use_profile("cheeks")
    pen.set(depth_mm=1.0, rate_hz=100)
    with DepthWatch(board) as watch:
        watch.cap_mm = CAP_MM["cheeks"]
        watch.resting = True
        pen.home()
        board_sleep(0.3)
        watch.resting = False
        pen.start()
        wait_until(lambda: board.observe()["depth_mm"] > 0.9, 10, "needles out to 1.0 mm")
        st = pen.stop()
        assert st.state == "READY"
        # READY comes once the motor stopped and the needles are in
        assert board.observe()["depth_mm"] <= MARGIN_MM and motor_stopped(board)
        watch.resting = True
        board_sleep(0.3)
    watch.check()
    assert watch.at_rest_mm <= MARGIN_MM


@pytest.mark.parametrize("depth_mm", [0.0, 1.2, 3.1])
def test_the_board_retracts_the_needles_at_boot_before_it_reports_ready(board, depth_mm):
    # power lost mid-run leaves the needles wherever they stood
    board.power_cycle(depth_mm=depth_mm)
    with patient_pen(board.url) as pen:
        st = pen.status()
        assert st.state == "IDLE" and st.faults == []
        assert board.observe()["depth_mm"] <= MARGIN_MM
        assert board.observe()["revolutions"] == 0  # the motor never turned


def test_a_jammed_actuator_at_boot_latches_instead_of_retracting(board):
    board.inject("depth_jam")
    board.power_cycle(depth_mm=1.2)
    with patient_pen(board.url) as pen:
        wait_until(lambda: "DEPTH_FOLLOWING" in pen.status().faults, 10, "jam latched")
        assert pen.status().state == "FAULT"
        with pytest.raises(RefusedError, match="PRECONDITION"):
            pen.start()
    assert motor_stopped(board)


def test_overdepth_trips_in_any_state_and_names_the_depth(pen, board):
    pen.set(depth_mm=0.5, rate_hz=100)
    pen.home()
    board.inject("depth_jam")
    board.inject("depth_slip", mm=1.0)  # the carriage knocked out to 1 mm, held there
    wait_until(lambda: "OVERDEPTH" in pen.status().faults, 6, "OVERDEPTH latched")
    with pytest.raises(RefusedError) as refused:
        pen.start()
    # named as measured: the 1.0 mm slip from where the carriage settled at home (within
    # 4 um, the depth loop's settling band) and the reading's noise (~4 um rms)
    named = re.search(r"needles at ([0-9.]+) mm measured, beyond the cap of 0\.500 mm",
                      str(refused.value))
    assert named and abs(float(named.group(1)) - 1.0) <= 0.02, str(refused.value)
    with pytest.raises(RefusedError, match="CAUSE_PERSISTS"):
        pen.clear()
    assert motor_stopped(board)


def test_a_hang_loses_both_drivers_within_the_heartbeat_window(running_pen, board):
    # finding 3: a hung firmware kept its last drive; the needles drifted to 1.28 mm and
    # the motor stroked for ~2 s until the watchdog
    running_pen.set(depth_mm=0.5)
    wait_until(lambda: 0.1 < board.observe()["depth_mm"], 8, "needles moving out")
    before = board.observe()["depth_mm"]
    board.inject("hang")
    window_s = board.definition["timing"]["heartbeat_ms"] / 1000
    wait_until(lambda: not board.observe()["motor_enabled"], 10 * window_s + 1,
               "the drivers disabled by the heartbeat monostable")
    assert board.heartbeat_lost_after_s() <= window_s * 1.2
    time.sleep(0.3)
    obs = board.observe()
    assert not obs["motor_enabled"] and not obs["depth_enabled"]
    assert abs(obs["depth_mm"] - before) < 0.1


def test_heavy_load_on_the_host_never_drops_the_drivers(running_pen, board):
    # the monostable runs in the board's time: a VM waiting for a host CPU is not hung.
    # Only this VM is kept waiting: burners for the whole host starved the other
    # workers of a parallel run as well (their keepalives, LINK_LOST)
    with vm_kept_waiting(board, "run_queue"):
        time.sleep(1.5)
    assert board.heartbeat_drops() == 0
    assert running_pen.status().state == "RUNNING"


def test_a_vm_the_host_keeps_from_running_does_not_let_the_world_run_ahead(pen, board):
    # a busy host keeps the VM from running for a second, mid-ramp: the world must wait
    # with it, not drive the depth actuator on its last outputs meanwhile (nor count the
    # second against the watchdog or the heartbeat)
    pen.use_profile("cheeks")
    pen.set(depth_mm=0.5, rate_hz=100)
    pen.home()
    with DepthWatch(board, cap_mm=0.5) as watch:
        pen.start()
        wait_until(lambda: board.observe()["depth_mm"] > 0.1, 10, "needles on their way out")
        before = board.observe()["depth_mm"]
        board.inject("starve")
        time.sleep(1.0)  # the host's second, not the board's
        during = board.observe()["depth_mm"]
        board.remove("starve")
        wait_until(lambda: abs(pen.status().depth_mm - 0.5) < 0.02, 5, "needles at 0.5 mm")
        board_sleep(0.3)
    watch.check()
    assert abs(during - before) < 0.1, "the needles moved %.3f mm while the VM waited" % (
        during - before)
    st = pen.status()
    assert st.state == "RUNNING" and not st.faults, pen.faults()
    assert board.heartbeat_drops() == 0 and board.observe()["resets"] == [1]


def test_a_watchdog_reset_mid_run_brings_the_needles_in(pen, board):
    # the boot after a hang latches WATCHDOG at once: the needles come in all the same
    pen.use_profile("cheeks")
    pen.set(depth_mm=1.5, rate_hz=100)
    pen.home()
    pen.start()
    wait_until(lambda: board.observe()["depth_mm"] > 0.8, 10, "needles out")
    board.inject("hang")
    wait_until(lambda: 3 in board.observe()["resets"], 10, "watchdog reset")
    pen.link.close()
    with patient_pen(board.url) as again:
        assert "WATCHDOG" in again.status().faults
        wait_until(lambda: board.observe()["depth_mm"] <= MARGIN_MM, 8, "needles in")
    assert motor_stopped(board)


def run_out(pen, board, profile="cheeks", depth_mm=1.0):
    pen.use_profile(profile)
    pen.set(depth_mm=depth_mm, rate_hz=100)
    pen.home()
    pen.start()
    # out within the loop's tolerance: the loop rests until the reading is 30 um off, and
    # the ADC's reading of the truth carries its calibration's error and noise besides
    tolerance_mm = board.definition["depth"]["tolerance_mm"]
    wait_until(lambda: board.observe()["depth_mm"] > depth_mm - tolerance_mm, 10, "needles out")


def test_a_stricter_profile_is_refused_while_the_needles_position_is_unknown(pen, board):
    # a failed depth sensor reads shallow: the switch to periorbital was accepted with the
    # needles at 2.4 mm, and OVERDEPTH then kept CLEAR refused for good
    run_out(pen, board)
    board.inject("depth_sensor_open")
    wait_until(lambda: "DEPTH_SENSOR" in pen.status().faults, 6, "DEPTH_SENSOR latched")
    with pytest.raises(RefusedError, match="position unknown") as refused:
        pen.use_profile("periorbital")
    assert refused.value.code == "STATE" and pen.config()["profile"] == "cheeks"


def test_needles_beyond_the_cap_on_a_stopped_actuator_come_in_once_it_is_cleared(pen, board):
    run_out(pen, board, "periorbital", 0.5)
    board.inject("depth_jam")
    pen.stop(timeout=0)
    wait_until(lambda: "DEPTH_FOLLOWING" in pen.status().faults, 10, "DEPTH_FOLLOWING latched")
    board.inject("depth_slip", mm=0.5)  # and then knocked out beyond the cap
    wait_until(lambda: "OVERDEPTH" in pen.status().faults, 6, "OVERDEPTH latched")
    board.remove("depth_jam")
    wait_until(lambda: clears(pen) and board.observe()["depth_mm"] <= MARGIN_MM
               and not pen.status().faults, 6, "cleared, needles in")
    assert motor_stopped(board)


def test_needles_that_do_not_come_in_after_stop_are_a_fault_not_a_stop_for_ever(pen, board):
    # a jam short of the following error's 0.2 mm threshold once left the board in
    # RUNNING (stopping), refusing RESET and START, until the 900 s run limit
    run_out(pen, board, "periorbital", 0.15)
    board.inject("depth_jam")  # 0.15 mm out: less than the following error's threshold
    pen.stop(timeout=0)
    timeout_s = board.definition["depth"]["home_timeout_ms"] / 1000
    wait_until(lambda: "DEPTH_FOLLOWING" in pen.status().faults, timeout_s + 6,
               "DEPTH_FOLLOWING latched")
    assert pen.status().state == "FAULT" and motor_stopped(board)


def test_a_refused_config_or_defaults_changes_and_saves_nothing(pen, board):
    # the refusal once came after the save: refused, yet in force after the next reset
    run_out(pen, board)
    board.inject("depth_jam")  # the needles stay out at 0.9 mm
    board.inject("overtemp")
    wait_until(lambda: "OVERTEMP" in pen.status().faults, 6, "OVERTEMP latched")
    before = pen.config()
    saved = (board.flash_dir / "settings.txt").read_text()
    for refused_call in (lambda: pen.config(profile="periorbital", run_limit=60), pen.defaults):
        with pytest.raises(RefusedError) as refused:
            refused_call()
        assert refused.value.code == "STATE"
    assert (board.flash_dir / "settings.txt").read_text() == saved  # nothing refused saved
    assert pen.config() == before
    pen.config(current_zero=3)  # the same profile: a calibration is no profile switch
    board.remove("depth_jam")
    board.remove("overtemp")
    pen.reset()
    after = pen.config()
    assert (after["profile"], after["run_limit"], after["current_zero"]) == ("cheeks", "900", "3")


def test_service_waits_until_the_needles_are_in(pen, board):
    # service mode drives nothing: entered during a retract, it left the needles out
    run_out(pen, board, "cheeks", 1.5)  # the retract then takes 1 s
    board.inject("overtemp")
    # tripped, the needles on their way in (a SERVICE, or its CHALLENGE, still in RUNNING is
    # refused for that)
    wait_until(lambda: pen.status().state == "FAULT", 2, "the overtemp trip")
    with pytest.raises(RefusedError, match="moving in") as refused:
        pen.service()
    assert refused.value.code == "STATE"
    wait_until(lambda: board.observe()["depth_mm"] <= MARGIN_MM, 8, "needles in")


# What an ESP32 reads for an input at 0 V (the IDF line fitting's offset at 11 dB, whatever
# the reference) and at its full scale (raw 4095 through the lookup table, by the unit's
# eFuse reference: 1002 and 1198 mV for the spread's ends), less a few codes of noise
FLOOR_MV = {1000: (142, 142), 1200: (142, 142)}
FULL_SCALE_MV = {1000: (3040, 3061), 1200: (3185, 3207)}


# injection: the fault it trips, how the fault's text names the reading, what it reads
FAILED_SENSORS = {"depth_sensor_open": ("DEPTH_SENSOR", "depth sensor", FLOOR_MV),
                  "thermistor_short": ("THERMISTOR", "thermistor", FLOOR_MV),
                  "thermistor_open": ("THERMISTOR", "thermistor", FULL_SCALE_MV)}


@pytest.mark.parametrize("adc_vref_mv", ADC_VREF_ENDS)
@pytest.mark.parametrize("injection", FAILED_SENSORS)
def test_a_failed_sensor_reads_the_adcs_floor_or_full_scale_and_trips_at_once(
        running_pen, board, injection, adc_vref_mv):
    code, what, reads = FAILED_SENSORS[injection]
    # An open depth sensor (its pull-down holds the input at 0 V) reads the ADC's 142 mV
    # floor, not 0: against the old 100 mV limit it went unseen, and the depth loop drove
    # the needles from 0.49 to 1.77 mm, the motor on, for ~400 ms until DEPTH_FOLLOWING
    wait_until(lambda: board.observe()["depth_mm"] > 0.45, 8, "needles out at 0.5 mm")
    before = board.observe()["depth_mm"]
    board.inject(injection)
    wait_until(lambda: code in running_pen.status().faults, 2.0, "%s latched" % code)
    wait_until(lambda: motor_stopped(board), 1.0, "motor off")
    assert board.reaction_ticks() <= stated_reaction_ticks(injection, board.definition)
    assert board.observe()["depth_mm"] <= before + 0.02  # never driven out on a dead sensor
    detail = {f["code"]: f["detail"] for f in running_pen.faults()}[code]
    named = re.match(r"%s (\d+) mV outside" % what, detail)
    low, high = reads[adc_vref_mv]
    assert named and low <= int(named.group(1)) <= high, detail


@pytest.mark.parametrize("adc_vref_mv", ADC_VREF_ENDS)
def test_the_depth_actuator_holds_still_on_a_noisy_sensor(pen, board, adc_vref_mv):
    # one ADC sample scatters ~5 mV (8 um), as much as the old 8 um dead-band: the
    # actuator dithered at rest, and the log, which waits for it to be still, waited
    pen.use_profile("cheeks")
    pen.set(depth_mm=1.0, rate_hz=100)
    pen.home()
    board_sleep(0.3)
    for where in ("at rest, needles in", "running, needles held at 1.0 mm"):
        if where.startswith("running"):
            pen.start()
            wait_until(lambda: abs(pen.status().depth_mm - 1.0) < 0.02, 10, "needles at 1 mm")
            board_sleep(0.3)
        written = board.written_at_tick("depth_pwm")
        board_sleep(1.0)
        assert board.written_at_tick("depth_pwm") == written, "the actuator dithered " + where
    pen.stop()
