"""The safety supervisor as pure logic: each interlock trips on its own condition,
only after its debounce, and only in the states where it applies."""

import pytest
from firmware_import import protocol as P
from firmware_import import supervisor
from penctl import boards

BOARD = boards.load("virtual")
LIMITS = BOARD["limits"]
TICK = BOARD["timing"]["tick_ms"]
LINK_MS = 500
RUN_LIMIT_MS = 900000


class Readings:
    """A healthy pen running at 100 Hz, 0.5 mm."""

    def __init__(self, **changes):
        self.now_ms = 0
        self.current_ma = 900
        self.current_mv = 840  # the sensor's 300 mV bias and 900 mA at 600 mV/A
        self.temp_mv = 1650
        self.temp_dc = 250
        self.supply_mv = 11900
        self.estop_open = 0
        self.cartridge = 1
        self.depth_mv = 650
        self.depth_um = 500
        self.cap_um = 500  # at the periorbital cap: allowed
        self.home_switch = 0
        self.rate_chz = 10000
        self.recent_pulses = 20
        self.drive_u16 = 38000
        self.pulses_total = 1000
        self.setpoint_chz = 10000
        self.following_um = 0
        self.link_age_ms = 10
        self.run_ms = 1000
        self.depth_active = 1
        self.ramping = 0
        self.host_run = 1
        self.__dict__.update(changes)


def ticks_for(ms):
    return max(1, -(-ms // TICK))


def run(sup, r, ticks, running=True, faults=0):
    result = -1
    for _ in range(ticks):
        result = sup.check(r, running, LINK_MS, RUN_LIMIT_MS, faults)
    return result


def test_healthy_readings_trip_nothing():
    sup = supervisor.Supervisor(BOARD)
    assert run(sup, Readings(), 500) == -1
    assert sup.warnings == 0


IMMEDIATE = [
    ("ESTOP", {"estop_open": 1}),
    ("THERMISTOR", {"temp_mv": 3100}),
    ("THERMISTOR", {"temp_mv": 0}),
    ("OVERTEMP", {"temp_dc": LIMITS["temp_trip_c"] * 10}),
    ("DEPTH_SENSOR", {"depth_mv": 0}),
    ("CARTRIDGE", {"cartridge": 0}),
    ("LINK_LOST", {"link_age_ms": LINK_MS + 1}),
    ("RUN_LIMIT", {"run_ms": RUN_LIMIT_MS + 1}),
]


@pytest.mark.parametrize("code, changes", IMMEDIATE)
def test_immediate_interlocks(code, changes):
    sup = supervisor.Supervisor(BOARD)
    assert sup.check(Readings(**changes), True, LINK_MS, RUN_LIMIT_MS) == getattr(P, "F_" + code)
    assert sup.detail


DEBOUNCED = [
    ("SUPPLY_LOW", {"supply_mv": LIMITS["supply_low_mv"] - 1}, LIMITS["supply_ms"]),
    ("SUPPLY_HIGH", {"supply_mv": LIMITS["supply_high_mv"] + 1}, LIMITS["supply_ms"]),
    ("OVERCURRENT", {"current_ma": LIMITS["overcurrent_ma"]}, LIMITS["overcurrent_ms"]),
    # a dead current sensor: the ADC's floor, ~142 mV, in every state
    ("CURRENT_SENSOR", {"current_mv": 142, "current_ma": 0}, LIMITS["current_sensor_ms"]),
    ("STALL", {"current_ma": LIMITS["stall_ma"], "recent_pulses": 0}, LIMITS["no_pulse_ms"]),
    ("TACH_LOST", {"current_ma": 500, "recent_pulses": 0}, LIMITS["no_pulse_ms"]),
    ("SPEED", {"rate_chz": 8000}, LIMITS["speed_error_ms"]),
    ("DEPTH_FOLLOWING", {"following_um": 300}, LIMITS["depth_following_ms"]),
    ("OVERDEPTH", {"depth_um": 500 + int(BOARD["depth"]["tolerance_mm"] * 1000) + 1},
     LIMITS["overdepth_ms"]),
]


@pytest.mark.parametrize("code, changes, ms", DEBOUNCED)
def test_debounced_interlocks_trip_after_their_time_not_before(code, changes, ms):
    sup = supervisor.Supervisor(BOARD)
    r = Readings(**changes)
    assert run(sup, r, ticks_for(ms) - 1) == -1
    assert sup.check(r, True, LINK_MS, RUN_LIMIT_MS) == getattr(P, "F_" + code)


@pytest.mark.parametrize("changes", [
    {"cartridge": 0}, {"link_age_ms": 10**6}, {"run_ms": 10**7}, {"rate_chz": 0},
    {"current_ma": 500, "recent_pulses": 0},
])
def test_running_only_interlocks_stay_quiet_at_rest(changes):
    sup = supervisor.Supervisor(BOARD)
    assert run(sup, Readings(**changes), 500, running=False) == -1


def test_speed_error_ignored_while_ramping_and_link_ignored_without_host_run():
    sup = supervisor.Supervisor(BOARD)
    assert run(sup, Readings(rate_chz=5000, ramping=1), 500) == -1
    assert run(sup, Readings(link_age_ms=10**6, host_run=0), 10) == -1


def test_a_glitch_shorter_than_the_debounce_resets_it():
    sup = supervisor.Supervisor(BOARD)
    over = Readings(current_ma=LIMITS["overcurrent_ma"])
    n = ticks_for(LIMITS["overcurrent_ms"]) - 1
    for _ in range(5):
        assert run(sup, over, n) == -1
        assert run(sup, Readings(), 1) == -1


def test_overcurrent_without_pulses_is_called_a_stall():
    # a locked rotor draws overcurrent too; at rest the no-pulse check does not run,
    # so the overcurrent check itself must tell the two apart
    sup = supervisor.Supervisor(BOARD)
    r = Readings(current_ma=LIMITS["overcurrent_ma"], recent_pulses=0)
    assert run(sup, r, ticks_for(LIMITS["overcurrent_ms"]), running=False) == P.F_STALL


@pytest.mark.parametrize("running", [True, False])
def test_overdepth_trips_in_every_state_and_not_within_the_tolerance(running):
    tolerance_um = int(BOARD["depth"]["tolerance_mm"] * 1000)
    sup = supervisor.Supervisor(BOARD)
    assert run(sup, Readings(depth_um=500 + tolerance_um), 100, running) == -1
    deep = Readings(depth_um=500 + tolerance_um + 1, depth_active=0)  # homed or not
    assert run(sup, deep, ticks_for(LIMITS["overdepth_ms"]) - 1, running) == -1
    assert sup.check(deep, running, LINK_MS, RUN_LIMIT_MS) == P.F_OVERDEPTH


@pytest.mark.parametrize("latched, persisting, new, ms", [
    # a persisting OVERDEPTH once kept DEPTH_FOLLOWING from stopping an actuator in a jam
    ("OVERDEPTH", {"depth_um": 2000}, {"following_um": 1500}, LIMITS["depth_following_ms"]),
    ("ESTOP", {"estop_open": 1}, {"temp_dc": LIMITS["temp_trip_c"] * 10}, 0),
    ("SUPPLY_LOW", {"supply_mv": 9000}, {"depth_um": 2000}, LIMITS["overdepth_ms"]),
    ("STALL", {"current_ma": 4000, "recent_pulses": 0}, {"supply_mv": 15000},
     LIMITS["supply_ms"]),
])
def test_a_latched_fault_whose_cause_persists_hides_no_new_one(latched, persisting, new, ms):
    sup = supervisor.Supervisor(BOARD)
    mask = 1 << getattr(P, "F_" + latched)
    r = Readings(**persisting)
    assert run(sup, r, 100, False, mask) == -1  # latched already: nothing new to report
    r.__dict__.update(new)
    found = run(sup, r, ticks_for(ms), False, mask)
    assert found != -1 and P.FAULTS[found][0] != latched


def test_warning_level_warns_without_tripping():
    sup = supervisor.Supervisor(BOARD)
    assert run(sup, Readings(temp_dc=LIMITS["temp_warn_c"] * 10), 10) == -1
    assert sup.warnings & (1 << P.W_HOT)


@pytest.mark.parametrize("code, bad, good", [
    ("ESTOP", {"estop_open": 1}, {}),
    ("CARTRIDGE", {"cartridge": 0}, {}),
    ("OVERCURRENT", {"current_ma": 4000}, {"current_ma": 0}),
    ("OVERTEMP", {"temp_dc": LIMITS["temp_warn_c"] * 10}, {"temp_dc": 300}),
    ("THERMISTOR", {"temp_mv": 3300}, {}),
    ("DEPTH_SENSOR", {"depth_mv": 0}, {}),
    ("SUPPLY_LOW", {"supply_mv": 9000}, {}),
    ("SUPPLY_HIGH", {"supply_mv": 15000}, {}),
    ("OVERDEPTH", {"depth_um": 700}, {"depth_um": 300}),
    ("CURRENT_SENSOR", {"current_mv": 142}, {"current_mv": 300}),
])
def test_clear_refused_while_cause_present(code, bad, good):
    sup = supervisor.Supervisor(BOARD)
    index = getattr(P, "F_" + code)
    assert sup.cause_present(index, Readings(**bad))
    assert sup.cause_present(index, Readings(**good)) == ""
