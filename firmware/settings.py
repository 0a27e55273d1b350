# Settings that survive power cuts: the active treatment profile and the defaults for
# telemetry, link timeout and run limit. One protocol frame (so a CRC guards it) with a
# version, written atomically: write a new file, read it back, then rename it over the old
# one. A cut at any moment leaves the old or the new settings; a file that is missing or
# fails its checks gives the safe defaults (first profile) and a reason for the warning.
import os

import protocol as P

FILE = "settings.txt"
NEW = "settings.new"
VERSION = 1
SAVED = (P.P_TELEMETRY, P.P_LINK_TIMEOUT, P.P_RUN_LIMIT)  # besides the profile


def defaults(board):
    lim = board["limits"]
    return {"profile": 0, P.P_TELEMETRY: 20, P.P_LINK_TIMEOUT: lim["link_timeout_ms"],
            P.P_RUN_LIMIT: lim["run_limit_s"]}


def encode(values):
    parts = ["SETTINGS v=%d profile=%s" % (VERSION, P.PROFILES[values["profile"]][0])]
    for i in SAVED:
        parts.append("%s=%s" % (P.PARAMS[i][0], P.format_fixed(values[i], P.PARAMS[i][2])))
    return P.frame(" ".join(parts)) + "\n"


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
        i = P.index_of(P.PARAMS, name)
        if i not in SAVED:
            raise P.ProtocolError("UNKNOWN_PARAM", "%r is not a saved setting" % name[:16])
        found[i] = P.parse_fixed(text, P.PARAMS[i][2])
        P.check_param(i, found[i])
    into.update(found)
    return into


def decode(text, board):
    body = P.unframe(text.strip())
    parts = body.split()
    if len(parts) < 2 or parts[0] != "SETTINGS" or parts[1] != "v=%d" % VERSION:
        raise P.ProtocolError("MALFORMED", "not settings version %d" % VERSION)
    args = []
    for part in parts[2:]:
        name, _, text = part.partition("=")
        args.append((name, text))
    return parse(args, defaults(board))


def _read(name, board):
    with open(name) as f:
        return decode(f.read(), board)


def load(board):
    """(values, problem): problem is None, or why the safe defaults are in use."""
    try:
        return _read(FILE, board), None
    except OSError:
        problem = "no settings saved"
    except P.ProtocolError as e:
        problem = "settings file rejected: %s" % e.message
    except ValueError:
        problem = "settings file rejected: not text"
    try:  # a cut between removing the old file and renaming the new one (FAT)
        values = _read(NEW, board)
        os.rename(NEW, FILE)
        return values, None
    except (OSError, P.ProtocolError, ValueError):
        return defaults(board), problem


def save(values):
    line = encode(values)
    with open(NEW, "w") as f:
        f.write(line)
    with open(NEW) as f:
        if f.read() != line:
            raise OSError("settings did not read back as written")
    try:
        os.rename(NEW, FILE)  # replaces FILE at once on LittleFS
    except OSError:  # FAT will not rename over a file
        os.remove(FILE)
        os.rename(NEW, FILE)
