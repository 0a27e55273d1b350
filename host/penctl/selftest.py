"""`pen selftest`: whether the hardware and the firmware agree, in one pass at rest. Each
sensor as the board's ADC reads it (SENSE: mV, with the range the firmware itself holds it
to), the e-stop loop and the cartridge switch, the latched faults, a homing of the depth
actuator, and, with a cartridge fitted and only once the operator confirms, a brief spin of
the motor through the board's own interlocked path: START at the lowest stroke rate with the
needles in and a run limit of a few seconds, then STOP, whatever happens meanwhile. Library
code: it never prints; the CLI draws the report (views.selftest_table) and asks to confirm."""

import time
from dataclasses import dataclass, field

from . import boards
from .errors import FaultError, LinkError, PenError, RefusedError, UsageError
from .firmware import protocol as P

SPIN_HZ = P.PARAMS[P.P_RATE][3] / 100  # the lowest stroke rate the board takes: its lowest duty
SPIN_LIMIT_S = 5  # the spin's own run limit: the board stops it there if this host cannot
SPIN_S = 2.0  # the longest the spin lasts; it ends as soon as the rate has held
SPIN_HELD = 3  # readings in a row within SPIN_TOLERANCE of SPIN_HZ: the motor and tach work
SPIN_TOLERANCE = 0.1

FAULT_TEXT = dict(P.FAULTS)
# What to look at when a fault ended a spin or a homing, by the fault's code
FAULT_HINTS = {
    # at the spin's low duty a locked rotor draws less than the stall current: the board
    # sees no pulses, and cannot tell a motor that does not turn from a tach that is silent
    "TACH_LOST": "driven, but no tachometer pulses: either the motor does not turn (check "
                 "it, its connector, the driver ({motor_pwm}, enable {motor_enable}) and the "
                 "cartridge's mechanism) or the tachometer is silent (check it, its supply and "
                 "wiring, {tach})",
    "STALL": "the motor was driven but did not turn: check the motor, its connector, the "
             "driver ({motor_pwm}, enable {motor_enable}) and the cartridge's mechanism",
    "OVERCURRENT": "the motor drew more than the limit: check the driver for a short and the "
                   "motor's winding",
    "SPEED": "the stroke rate did not follow its target: check the motor and its supply",
    "DEPTH_FOLLOWING": "the actuator did not reach or leave the home switch in time: check the "
                       "actuator, its H-bridge ({depth_pwm}, direction {depth_dir}) and the "
                       "home switch ({home_switch})",
    "DEPTH_SENSOR": "the depth sensor read outside its range at the home switch: check the "
                    "sensor's mounting and offset ({depth_adc})",
}


@dataclass
class Check:
    name: str  # the check's id: current, thermistor, temperature, ... (what --json keys on)
    input: str  # what it checks, for people, with its pin where the board definition says
    value: str = ""  # as read: raw mV, a switch's level, a fault's name
    range: str = ""  # what the firmware holds it to
    result: str = "pass"  # "pass", "fail" or "skip"
    hint: str = ""  # what to check when it fails; why it was skipped


@dataclass
class SelftestReport:
    board: str
    checks: list = field(default_factory=list)
    passed: bool = True

    def failed(self):
        return [c for c in self.checks if c.result == "fail"]


def _triple(text, cast=int):
    """SENSE's "value,low,high" as three numbers."""
    value, low, high = (cast(x) for x in text.split(","))
    return value, low, high


def _pins(board):
    """{pin name: "GPIO n"} of the board's definition, if this host has it."""
    try:
        pins = boards.load(board).get("pins", {})
    except UsageError:
        pins = {}
    return _Pins({name: "GPIO %d" % gpio for name, gpio in pins.items()})


class _Pins(dict):
    def __missing__(self, key):
        return "its pin"


def _analog(name, label, text, unit, low_hint, high_hint, cast=int, fmt="%d"):
    value, low, high = _triple(text, cast)
    check = Check(name, label, "%s %s" % (fmt % value, unit),
                  "%s..%s %s" % (fmt % low, fmt % high, unit))
    if value < low:
        check.result, check.hint = "fail", low_hint
    elif value > high:
        check.result, check.hint = "fail", high_hint
    return check


def read_sensors(pen, pins):
    """The checks SENSE and STATUS answer at rest, and the SENSE reply they came from."""
    try:
        sense, _ = pen.request("SENSE")
    except LinkError as e:
        if e.code != "NO_ANSWER":
            raise
        # a firmware without SENSE refuses it as a frame it could not read (seq "-"), and
        # the client's resends of it run out as if the line were silent
        raise LinkError("%s; a board that answers other commands runs a firmware without "
                        "SENSE: compare `pen version`, then `pen deploy`" % e.message,
                        e.code) from e
    st = pen.status()
    cal = pen.config()
    checks = []
    current = _analog("current", "motor current sensor, %s" % pins["current_adc"],
                      sense["current"], "mV", "", "")
    value, low, high = _triple(sense["current"])
    if current.result == "fail":
        zero = (low + high) // 2
        new = int(cal.get("current_zero", 0)) + value - zero
        lo, hi = P.CALIBRATION[0][3:5]
        current.hint = ("with the motor off it reads %+d mV from its zero (%d mV): " % (
            value - zero, zero)) + (
            "if the amplifier is sound, calibrate it: `pen config set --current-zero %d`" % new
            if lo <= new <= hi else
            "beyond any calibration: check the current-sense amplifier, its supply and "
            "whether the motor draws current while off (a driver short)")
        if "CURRENT_SENSOR" in st.faults:  # below the firmware's floor for a live sensor
            current.hint = ("it reads %d mV, below its bias: the sensor is open or dead "
                            "(CURRENT_SENSOR); check its wiring, supply and amplifier" % value)
    checks.append(current)
    thermistor = _analog(
        "thermistor", "handpiece thermistor, %s" % pins["temp_adc"], sense["temp"], "mV",
        "reads near 0 V: the thermistor or its lead is shorted",
        "reads near the 3.3 V rail: the thermistor is open or unplugged")
    checks.append(thermistor)
    temperature = _analog("temperature", "handpiece temperature", sense["tc"], "C",
                          "colder than plausible: check the thermistor's type (R25, beta) "
                          "against the board definition",
                          "above the warning level: let the handpiece cool; if it is "
                          "cool, check the thermistor's type against the board definition",
                          cast=float, fmt="%.1f")
    if thermistor.result == "fail":
        temperature.result, temperature.hint = "skip", "not judged: the thermistor reads wrong"
    checks.append(temperature)
    supply = _analog("supply", "supply voltage through its divider, %s" % pins["supply_adc"],
                     sense["supply"], "mV",
                     "the supply (%.2f V) is below its limit: check the power supply, its "
                     "cable and the divider" % st.supply_v,
                     "the supply (%.2f V) is above its limit: check the power supply's "
                     "rating and the divider" % st.supply_v)
    supply.value += " (%.2f V)" % st.supply_v
    checks.append(supply)
    checks.append(_analog(
        "depth_sensor", "depth position sensor, %s" % pins["depth_adc"], sense["depth"], "mV",
        "reads the ADC's floor: the sensor is open, unpowered or unplugged",
        "reads near the rail: the sensor's output is shorted to 3.3 V, or the needles stand "
        "beyond its range"))
    estop = sense["estop"] == "1"
    checks.append(Check("estop", "e-stop loop, %s" % pins["estop"],
                        "open" if estop else "closed", "closed",
                        "fail" if estop else "pass",
                        "the loop is open: release the e-stop; check its switch, wiring and "
                        "connector" if estop else ""))
    fitted = sense["cartridge"] == "1"
    checks.append(Check("cartridge", "cartridge switch, %s" % pins["cartridge"],
                        "fitted" if fitted else "absent", "fitted",
                        "pass" if fitted else "fail",
                        "" if fitted else "no cartridge seen: fit one; if one is fitted, "
                        "check the switch and its wiring"))
    checks.append(Check("faults", "latched faults", ", ".join(st.faults) or "none", "none",
                        "fail" if st.faults else "pass",
                        "; ".join("%s: %s" % (f, FAULT_TEXT.get(f, "?")) for f in st.faults)
                        + ("; `pen faults` has their readings, `pen clear` clears them once "
                           "the cause is gone" if st.faults else "")))
    return checks, sense, st


def _fault_hint(code, pins):
    return FAULT_HINTS.get(code, FAULT_TEXT.get(code, "see `pen faults`")).format_map(pins)


def home(pen, st, pins):
    """Homing, then the zero it took at the switch and the switch itself."""
    check = Check("homing", "depth actuator and home switch, %s" % pins["home_switch"],
                  range="homed, switch closed")
    if st.faults or st.state not in ("IDLE", "READY"):
        check.result = "skip"
        check.hint = "not run: the board is %s%s; clear the cause first" % (
            st.state, " with %s latched" % ", ".join(st.faults) if st.faults else "")
        return check
    try:
        pen.home()
    except FaultError as e:
        check.result, check.value = "fail", "fault %s" % e.code
        check.hint = _fault_hint(e.code, pins)
        return check
    except LinkError as e:
        if e.code != "TIMEOUT":
            raise
        check.result, check.value = "fail", "not READY in time"
        check.hint = "homing did not end: check the actuator and the home switch (%s)" % (
            pins["home_switch"])
        return check
    sense, _ = pen.request("SENSE")
    value, low, high = _triple(sense["home"])
    check.value = "%d mV, switch %s" % (value, "closed" if sense["switch"] == "1" else "open")
    check.range = "%d..%d mV, closed" % (low, high)
    if sense["switch"] != "1":
        check.result = "fail"
        check.hint = "homed, yet the switch reads open: check the home switch (%s)" % (
            pins["home_switch"])
    return check


def motor_check(pins):
    return Check("motor", "needle motor %s, enable %s, tachometer %s" % (
        pins["motor_pwm"], pins["motor_enable"], pins["tach"]),
        range="%g Hz +-%d %%" % (SPIN_HZ, SPIN_TOLERANCE * 100))


def spin(pen, pins, confirm):
    """The motor at SPIN_HZ with the needles in, through START and STOP. confirm() is asked
    first (False: skipped). The motor is stopped on every way out, Ctrl-C included, and the
    depth, rate and run limit found are put back (depth and rate only if a rate was set)."""
    check = motor_check(pins)
    if not confirm():
        check.result, check.hint = "skip", "not confirmed (`--yes` runs it without asking)"
        return check
    before = pen.get()
    held = 0
    seen = []
    try:
        pen.set(depth_mm=0, rate_hz=SPIN_HZ, run_limit=SPIN_LIMIT_S)
        try:
            pen.start()
        except RefusedError as e:
            check.result, check.value, check.hint = "fail", "START refused", e.message
            return check
        deadline = time.monotonic() + SPIN_S
        while held < SPIN_HELD and time.monotonic() < deadline:
            st = pen.status()
            if st.state != "RUNNING":
                break
            seen.append(st)
            held = held + 1 if abs(st.rate_hz - SPIN_HZ) <= SPIN_HZ * SPIN_TOLERANCE else 0
            time.sleep(0.05)
    finally:
        final = pen.stop()
        _restore(pen, before)
    last = seen[-1] if seen else final
    check.value = "%.1f Hz, %.0f %% duty, %d mA" % (last.rate_hz, last.duty_pct,
                                                      last.current_ma)
    if final.faults:
        check.result, check.value = "fail", "fault %s" % ", ".join(final.faults)
        check.hint = "; ".join(_fault_hint(f, pins) for f in final.faults)
    elif held < SPIN_HELD:
        check.result = "fail"
        check.hint = "the rate did not hold at %g Hz within %g s: check the motor, its " \
                     "driver and the tachometer (%s)" % (SPIN_HZ, SPIN_S, pins["tach"])
    return check


def _restore(pen, before):
    values = {"run_limit": int(before["run_limit"])}
    if float(before["rate"]):  # a rate of 0 was never set: nothing to put back
        values.update(depth=float(before["depth"]), rate=float(before["rate"]))
    try:
        pen.request("SET", **values)
    except PenError:
        pass  # the stop above is what matters; the saved run limit returns at the next boot


def run_selftest(pen, confirm=lambda: False):
    """All checks on an open Pen; a SelftestReport. confirm() is asked before the motor
    spins (only when everything it needs passed)."""
    board = pen.info.get("board", "?")
    pins = _pins(board)
    report = SelftestReport(board)
    checks, _, st = read_sensors(pen, pins)
    checks.append(home(pen, st, pins))
    # what a spin needs, as START asks it (the board would refuse it otherwise)
    missing = [c.name for c in checks
               if c.name in ("estop", "cartridge", "faults", "homing") and c.result != "pass"]
    if missing:
        motor = motor_check(pins)
        motor.result = "skip"
        motor.hint = "not run: it needs %s to pass" % " and ".join(missing)
        checks.append(motor)
    else:
        checks.append(spin(pen, pins, confirm))
    report.checks = checks
    report.passed = not report.failed()
    return report
