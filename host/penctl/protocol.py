"""The wire protocol, shared with the firmware.

The single definition is firmware/protocol.py (it runs on the board too), imported here
as penctl.firmware.protocol so host and firmware cannot drift apart.
"""

from .firmware import protocol as _wire
from .firmware.protocol import *  # noqa: F403 (the shared tables and functions)

STATE_NAMES = _wire.STATES
FAULT_NAMES = tuple(name for name, _ in _wire.FAULTS)
ERROR_NAMES = tuple(name for name, _ in _wire.ERRORS)
PARAM_NAMES = tuple(p[0] for p in _wire.PARAMS)


# ---- host-only helpers (kept off the board to save its RAM) ----

def names_mask(text, table):
    mask = 0
    if text != "-":
        for name in text.split(","):
            mask |= 1 << _wire.index_of(table, name)
    return mask


def parse_line(line):
    """Host side: classify a board line. Returns (kind, seq_or_name, fields, message).

    kind is "reply" (seq, fields incl. 'ok' or 'err'), "event" (event name) or "telemetry".
    """
    body = _wire.unframe(line)
    head, _, message = body.partition(" : ")
    parts = head.split()
    if not parts:
        raise _wire.ProtocolError("MALFORMED", "empty frame")
    if parts[0] == "~":
        return "telemetry", None, _pairs(parts[1:]), message
    if parts[0] == "!" and len(parts) >= 2:
        return "event", parts[1], _pairs(parts[2:]), message
    if len(parts) >= 2 and (parts[0].isdigit() or parts[0] == "-"):
        seq = int(parts[0]) if parts[0].isdigit() else None
        if parts[1] == "ERR" and len(parts) >= 3:
            return "reply", seq, {"err": parts[2]}, message
        if parts[1] == "OK":
            return "reply", seq, _pairs(parts[2:]), message
    raise _wire.ProtocolError("MALFORMED", "unrecognised board line")


def _pairs(tokens):
    out = {}
    for tok in tokens:
        name, _, value = tok.partition("=")
        out[name] = value
    return out
