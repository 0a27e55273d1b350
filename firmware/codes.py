# The protocol's tables: versions, states, fault, warning and error codes, parameters with
# units and bounds, commands, profiles, status fields. protocol.py re-exports them with
# the functions that use them; this module holds no function, so on the board its
# compiled code (and every operator's text in it) is freed once it has run.
import sys

ON_BOARD = sys.implementation.name == "micropython"  # not the host, nor a CPython test
try:
    from micropython import const
except ImportError:  # CPython: the host

    def const(x):  # type: ignore[misc]
        return x


PROTOCOL_VERSION = const(1)
FIRMWARE_VERSION = "0.2.0"
SEQ_MAX = const(65535)
MAX_LINE = const(160)
TRAILER = const(10)  # ' *' and the CRC's 8 hex digits that end every frame

# Board states, in the order of a normal session.
STATES = ("BOOT", "IDLE", "HOMING", "READY", "RUNNING", "FAULT", "ESTOP")
BOOT = const(0)
IDLE = const(1)
HOMING = const(2)
READY = const(3)
RUNNING = const(4)
FAULT = const(5)
ESTOP = const(6)

# Fault codes: the index is the bit in a fault mask, so codes are appended, never
# renamed or reordered. Text is what an operator reads next to the code.
FAULTS = (
    ("ESTOP", ("e-stop loop open")),
    ("CARTRIDGE", ("needle cartridge absent")),
    ("OVERCURRENT", ("motor current above limit")),
    ("STALL", ("motor driven but not turning")),
    ("TACH_LOST", ("no tachometer pulses from a turning motor")),
    ("SPEED", ("stroke rate far from target")),
    ("DEPTH_FOLLOWING", ("depth actuator not following its target")),
    ("DEPTH_SENSOR", ("depth sensor reading out of range")),
    ("OVERTEMP", ("handpiece over temperature")),
    ("THERMISTOR", ("thermistor open or shorted")),
    ("SUPPLY_LOW", ("supply voltage below limit")),
    ("SUPPLY_HIGH", ("supply voltage above limit")),
    ("LINK_LOST", ("host link silent during a run")),
    ("RUN_LIMIT", ("continuous run limit reached")),
    ("WATCHDOG", ("firmware hang reset by the watchdog")),
    ("INTERNAL", ("unexpected firmware error")),
    ("INTEGRITY", ("deployed files do not match their manifest")),
    ("OVERDEPTH", ("needles measured beyond the active depth cap")),
    ("CURRENT_SENSOR", ("motor current sensor reads below its bias: open or dead")),
)
F_ESTOP = const(0)
F_CARTRIDGE = const(1)
F_OVERCURRENT = const(2)
F_STALL = const(3)
F_TACH_LOST = const(4)
F_SPEED = const(5)
F_DEPTH_FOLLOWING = const(6)
F_DEPTH_SENSOR = const(7)
F_OVERTEMP = const(8)
F_THERMISTOR = const(9)
F_SUPPLY_LOW = const(10)
F_SUPPLY_HIGH = const(11)
F_LINK_LOST = const(12)
F_RUN_LIMIT = const(13)
F_WATCHDOG = const(14)
F_INTERNAL = const(15)
F_INTEGRITY = const(16)
F_OVERDEPTH = const(17)
F_CURRENT_SENSOR = const(18)
# Faults after which the depth actuator is not trusted to move: it stays where it is
ACTUATOR_FAULTS = const((1 << F_DEPTH_FOLLOWING) | (1 << F_DEPTH_SENSOR))

# Why the board last restarted, indexed by machine.reset_cause() (ESP32 port values).
# BROWNOUT is not one of them: the ESP32 port reports a brown-out as PWRON, and the
# firmware names it when its log shows the supply had fallen (app.py).
RESET_CAUSES = ("?", "PWRON", "HARD", "WATCHDOG", "DEEPSLEEP", "SOFT", "BROWNOUT")


# Warnings do not stop the needles; they are reported as events and in status.
WARNINGS = (("HOT", ("handpiece temperature at warning level")),
            ("CONFIG", ("saved settings missing or corrupt: safe defaults in use")),
            ("LOG", ("the event log could not be written to the flash")))
W_HOT = const(0)
W_CONFIG = const(1)
W_LOG = const(2)

# Treatment profiles: an area with its depth cap (um) and stroke-rate cap (cHz), enforced
# on the board (FDA's special controls for these pens ask for the maximum safe penetration
# depth per labeled indication). The first is the most restrictive: the board's fallback.
PROFILES = (
    ("periorbital", 500, 12000, ("around the eyes, thin skin")),
    ("forehead", 750, 13000, ("forehead and temples")),
    ("cheeks", 1500, 15000, ("cheeks")),
    ("scars", 2000, 15000, ("acne scars")),
    ("body", 2500, 15000, ("body and stretch marks")),
)

# Error codes in "ERR" replies: the command was refused and changed nothing.
ERRORS = (
    ("BAD_CRC", ("frame checksum does not match; resend")),
    ("MALFORMED", ("frame is not '<seq> <CMD> [name=value ...]'")),
    ("UNKNOWN_CMD", ("no such command")),
    ("UNKNOWN_PARAM", ("no such parameter")),
    ("BAD_VALUE", ("value is not a decimal number")),
    ("RANGE", ("value outside its bounds")),
    ("STEP", ("value not on its step grid")),
    ("CAP", ("value beyond the active cap")),
    ("STATE", ("command not allowed in this state")),
    ("PRECONDITION", ("start refused: a precondition does not hold")),
    ("CAUSE_PERSISTS", ("clear refused: the fault's cause is still present")),
    ("INTERNAL", ("unexpected firmware error")),
    ("STORAGE", ("the board could not save to or read from its flash")),
    ("RESTARTED", ("the board restarted since this host's HELLO; nothing was run: HELLO again")),
    ("SEQ_REUSED", ("sequence number already answered for another frame; nothing was run: "
                    "send it with a new number")),
    ("AUTH", ("keyed command refused: the board has no key, no fresh challenge, a wrong "
              "answer, or the wait after wrong answers")),
)

# Settable parameters: name, unit, decimals on the wire, min, max, step (all in
# wire units times 10**decimals, which is also the firmware's internal unit).
PARAMS = (
    ("depth", "mm", 3, 0, 3000, 50),  # internal: micrometres
    ("rate", "Hz", 2, 2500, 15000, 10),  # internal: centi-hertz
    ("telemetry", "Hz", 0, 0, 100, 1),  # 0 turns telemetry off
    ("link_timeout", "ms", 0, 100, 2000, 10),
    ("run_limit", "s", 0, 1, 1800, 1),
)
# This unit's sensor calibration, saved with the settings (CONFIG), never SET: shaped as
# PARAMS. The bounds keep the trims plausible (up to 250 mA of current offset, 3 % of supply
# divider); they alone cannot stop a trim from hiding a trip (+150 mV read a true 2.70 A as
# 2450 mA against 2500), so sensors.read() reports the untrimmed reading wherever it is past
# a trip level and further out than the trimmed one. current_zero goes down only to -80 mV:
# an amplifier idling lower (the 300 mV bias less 80) comes within 30 mV, 6 of the ADC's
# ~5 mV rms, of CURRENT_SENSOR's 190 mV floor for a dead sensor; a unit below is not one
# a trim can make sound.
# test_mode (keyed with them, kept by DEFAULTS) lets test cartridges run: HIL tests on a real
# board with the one cartridge of its rig (docs/sessions.md); every other cartridge keeps its
# rules.
CALIBRATION = (
    ("current_zero", "mV", 0, -80, 150, 1),  # zero-current output off its nominal bias
    ("supply_gain", "permille", 0, 970, 1030, 1),  # supply divider trim
    ("test_mode", "", 0, 0, 1, 1),  # 1: test cartridges accepted
)

# What CONFIG saves besides the profile: three parameters' boot values and the keyed ones.
SAVED = ("telemetry", "link_timeout", "run_limit", "current_zero", "supply_gain", "test_mode")

P_DEPTH = const(0)
P_RATE = const(1)
P_TELEMETRY = const(2)
P_LINK_TIMEOUT = const(3)
P_RUN_LIMIT = const(4)

# Commands: name, parameters it takes ("*" = any settable parameter), what it does.
COMMANDS = (
    ("HELLO", "*", ("identify: protocol and firmware version, board name, chip id, reset cause; "
                    "time=<unix s> sets the board's clock")),
    ("STATUS", "", ("state, faults, targets and readings")),
    ("HOME", "", ("home the depth actuator at its retracted end")),
    ("SET", "*", ("set one or more parameters")),
    ("GET", "", ("every parameter's value and the depth cap")),
    ("START", "", ("start the needles (READY, homed, settings accepted)")),
    ("STOP", "", ("ramp the motor down, back to READY")),
    ("CLEAR", "", ("clear latched faults whose cause is gone")),
    ("FAULTS", "", ("latched faults with the readings that tripped them")),
    ("KA", "", ("keepalive: refreshes the link timeout")),
    ("DIAG", "", ("control-loop figures: tick time, bytes allocated, free heap")),
    ("RESET", "", ("restart the board, as the EN button does (refused while running)")),
    ("SERVICE", "*", ("keyed (mac=, the answer to a CHALLENGE): restart into service mode: no "
                      "app, no watchdog, REPL free for mpremote")),
    ("CONFIG", "*", ("saved settings (profile, telemetry, link_timeout, run_limit, "
                    "current_zero, supply_gain): read, or set and save")),
    ("DEFAULTS", "", ("save the safe default settings (first profile) and apply them; "
                      "the calibration is kept")),
    ("LOG", "*", ("event log records from since=<n> on: seq boot uptime_ms event, "
                 "oldest first, a few per reply; next= is where to go on")),
    ("SENSE", "", ("each sensor as read (mV, the mean of 8 samples) with the range the board "
                   "judges it by, and the switches (refused while running or homing)")),
    ("SESSION", "*", ("the treatment session: number, open, cartridge, time needling, strokes; "
                      "end=1 ends it (refused while running or homing)")),
    ("CHALLENGE", "", ("a fresh nonce for one keyed command (SERVICE, CONFIG of the "
                       "calibration): its mac= is the HMAC-SHA256 under the board's key of "
                       "'<nonce> <uid> <command>'")),
)

# Status and telemetry fields, the one definition of the status schema, in the order they
# are sent: wire key; the attribute of the board's Readings it is read from; what the value
# is: its decimals on the wire (the board holds it in wire units times 10**decimals), or
# "state" (an index into STATES), "faults" or "warnings" (a bit mask of their names, "-" for
# none); then, for the host: the wire unit, the attribute of penctl's Status it becomes, the
# divisor from the wire's unit to that attribute's, and what it is.
FIELDS = (
    ("st", "state", "state", "", "state", 1, "board state"),
    ("f", "faults", "faults", "", "faults", 1, "latched faults"),
    ("w", "warnings", "warnings", "", "warnings", 1, "active warnings"),
    ("hz", "rate_chz", 2, "Hz", "rate_hz", 1, "stroke rate"),
    ("thz", "setpoint_chz", 2, "Hz", "target_rate_hz", 1, "stroke rate setpoint (ramped)"),
    ("dep", "depth_um", 3, "mm", "depth_mm", 1, "needle depth"),
    ("tdep", "setpoint_um", 3, "mm", "target_depth_mm", 1, "needle depth setpoint"),
    ("ma", "current_ma", 0, "mA", "current_ma", 1, "motor current"),
    ("tc", "temp_dc", 1, "C", "temperature_c", 1, "handpiece temperature"),
    ("mv", "supply_mv", 0, "mV", "supply_v", 1000, "supply voltage"),
    ("duty", "duty_pm", 1, "%", "duty_pct", 1, "motor PWM duty"),
    ("n", "strokes", 0, "", "strokes", 1, "strokes since boot"),
    ("up", "up_ms", 0, "ms", "uptime_ms", 1, "time since boot"),
)
# The readings a fault's record carries (FAULT events, FAULTS replies)
FAULT_READINGS = ("ma", "tc", "mv", "hz", "dep")

if ON_BOARD:  # the texts are for the host's operators; the board keeps the names (5 KB)
    FAULTS = tuple((f[0], "") for f in FAULTS)  # type: ignore[assignment]
    WARNINGS = tuple((w[0], "") for w in WARNINGS)  # type: ignore[assignment]
    ERRORS = tuple((e[0], "") for e in ERRORS)  # type: ignore[assignment]
    COMMANDS = tuple(c[:2] for c in COMMANDS)  # type: ignore[assignment]
    PROFILES = tuple((p[0], p[1], p[2], "") for p in PROFILES)  # type: ignore[assignment]
    FIELDS = tuple(f[:3] for f in FIELDS)  # type: ignore[assignment]
