# Settings that survive power cuts: the active treatment profile, the boot values of
# telemetry, link timeout and run limit, and this unit's sensor calibration (P.SAVED).
# One protocol frame (so a CRC guards it) with a version, written atomically: write a new
# file, read it back, then rename it over the old one. A cut at any moment leaves the old or
# the new settings; a file that is missing or fails its checks gives the safe defaults
# (first profile) and a reason for the warning.
import errno
import os

import protocol as P
import wire
from micropython import const

FILE = "settings.txt"
NEW = "settings.new"
VERSION = 1  # a file without the calibration (it came later) reads with its defaults
_MAX = const(512)  # bytes read at most: a good file is about 120 (a 24 KB one ran the heap out)


def defaults(board):
    lim = board["limits"]
    return {"profile": 0, "telemetry": 20, "link_timeout": lim["link_timeout_ms"],
            "run_limit": lim["run_limit_s"], "current_zero": 0, "supply_gain": 1000,
            "test_mode": 0}


def fields(values):
    """[(name, text), ...] of the saved values: profile, then P.SAVED."""
    parts = [("profile", P.PROFILES[values["profile"]][0])]
    for name in P.SAVED:
        parts.append((name, P.format_fixed(values[name], P.spec(name)[2])))
    return parts


def encode(values):
    return wire.frame(wire.text("SETTINGS", [("v", VERSION)] + fields(values))) + "\n"


def parse(args, into):
    """Apply [(name, text)] to the dict `into`, every value checked; ProtocolError if one
    is unknown or out of bounds (nothing applied then)."""
    found = {}
    for name, text in args:
        if name == "profile":
            i = P.index_of(P.PROFILES, text)
            if i < 0:
                raise P.ProtocolError("RANGE", "no profile %r; profiles: %s" % (
                    text[:16], ",".join(p[0] for p in P.PROFILES)))
            found["profile"] = i
            continue
        if name not in P.SAVED:
            raise P.ProtocolError("UNKNOWN_PARAM", "%r is not a saved setting; saved: %s" % (
                name[:16], ",".join(P.SAVED)))
        entry = P.spec(name)
        found[name] = P.parse_fixed(text, entry[2])
        P.check_value(entry, found[name])
    into.update(found)
    return into


def decode(text, board):
    name, args, _ = wire.split_text(wire.unframe(text.strip()))
    if name != "SETTINGS" or args[:1] != [("v", str(VERSION))]:
        raise P.ProtocolError("MALFORMED", "not settings version %d" % VERSION)
    return parse(args[1:], defaults(board))


def _read(name, board):
    with open(name) as f:
        text = f.read(_MAX + 1)
    if len(text) > _MAX:
        raise P.ProtocolError("MALFORMED", "longer than %d bytes" % _MAX)
    return decode(text, board)


def load(board):
    """(values, problem): problem is None, or why the safe defaults are in use. Never
    raises: whatever is wrong with the files, the board boots with the safe defaults."""
    try:
        return _read(FILE, board), None
    except OSError as e:
        problem = "no settings saved" if e.errno == errno.ENOENT else "settings unreadable"
    except P.ProtocolError as e:
        problem = "settings file rejected: %s" % e.message
    except Exception:  # not text, MemoryError, anything: the board must boot
        problem = "settings file rejected: not text"
    # settings.new may be finished only where the save's own steps prove its rename was cut
    # short. A save writes NEW, reads it back, then renames it over FILE; on FAT it removes
    # FILE first. So FILE gone and a complete NEW is exactly the cut between that remove and
    # the rename: NEW was read back before FILE was removed, the save had decided. Any other
    # NEW (beside a FILE, even a corrupt one) is a save that never reached its rename: never
    # confirmed, and the board kept using FILE after it. Using it now would bring back
    # values the operator never saw accepted; the safe defaults and the warning instead.
    if problem == "no settings saved":
        try:
            values = _read(NEW, board)
            os.rename(NEW, FILE)
            return values, None
        except Exception:  # whatever it is, it is not a proven interrupted rename
            pass
    return defaults(board), problem


def save(values):
    write_atomic(FILE, NEW, [encode(values)])


def write_atomic(name, new, lines):
    """`lines` (each ending in a newline) into file `name` whole or not at all: written to
    `new`, read back, renamed over `name` (the treatment record too). A line at a time: a
    whole file's text is a block a fragmented heap may not have."""
    with open(new, "w") as f:
        for line in lines:
            f.write(line)
    with open(new) as f:
        for line in lines:
            if f.readline() != line:
                raise OSError("%s did not read back as written" % name)
        if f.readline():
            raise OSError("%s did not read back as written" % name)
    try:
        os.rename(new, name)  # replaces it at once on LittleFS
    except OSError:  # FAT will not rename over a file
        os.remove(name)
        os.rename(new, name)


def apply(ctl, values, problem):
    """Saved settings into the controller (ctl): the profile, three parameters' boot values
    and the sensors' calibration; problem, if any, is why they are the safe defaults."""
    ctl.require_still("changing settings")
    caps = ctl.caps
    was = caps.profile
    caps.choose(values["profile"])
    r = ctl.r
    # Another profile only while the needles are known to be within its cap: at the home
    # switch, or measured within it on a trusted actuator (OVERDEPTH would trip, and a
    # failed sensor reads shallow). Refused, nothing changes. At boot the saved profile
    # is taken as it is: the boot brings the needles in before anything can run.
    if was != caps.profile and ctl.state != P.BOOT and not r.home_switch and (
            r.depth_um > caps.depth_um() or not ctl.depth.home_mv
            or ctl.faults & P.ACTUATOR_FAULTS):
        caps.choose(was)
        raise P.ProtocolError("STATE", "profile %s refused while the needles stand out (%s): "
                              "wait until they are in" % (
                                  P.PROFILES[values["profile"]][0],
                                  "position unknown" if ctl.faults & P.ACTUATOR_FAULTS else
                                  "%s mm" % P.format_fixed(r.depth_um, 3)))
    if was != caps.profile:
        ctl.post("PROFILE", [("name", P.PROFILES[caps.profile][0])])
    for i in (P.P_DEPTH, P.P_RATE):  # a value nobody chose for this profile is never used
        if caps.beyond(i, ctl.params[i]):
            ctl.unset(i)
    # their boot values (no caps on them: set() refuses none)
    ctl.set([(P.P_TELEMETRY, values["telemetry"]), (P.P_LINK_TIMEOUT, values["link_timeout"]),
             (P.P_RUN_LIMIT, values["run_limit"])])
    ctl.sensors.calibrate(values["current_zero"], values["supply_gain"])
    ctl.warn(P.W_CONFIG, "%s; safe defaults in use" % problem if problem else None)
