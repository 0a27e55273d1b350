# The protocol's vocabulary, defined once: the tables of codes.py (states, faults, errors,
# parameters with their units and bounds, commands, status fields), fixed-point values and
# their checks. This file runs on the board (MicroPython) and is imported by the host
# (CPython) as penctl.firmware.protocol; wire.py builds and parses the lines themselves.
# Values are fixed-point decimals ("0.50"), parsed without floats so NaN and inf cannot exist
# on the board.

if "." in __name__:  # the host, where this file is penctl.firmware.protocol
    from .codes import *
else:  # the board: every module is top-level
    from codes import *  # the tables; see codes.py


def reset_name(cause):
    return RESET_CAUSES[cause] if 0 <= cause < len(RESET_CAUSES) else "?"


class ProtocolError(Exception):
    """A frame or value the receiver refuses; code is a name from ERRORS."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def index_of(table, name):
    for i in range(len(table)):
        if table[i][0] == name:
            return i
    return -1


def parse_fixed(text, decimals):
    """'0.50' with decimals=3 -> 500. Plain decimal notation only."""
    neg = text.startswith("-")
    digits = text[1:] if neg or text.startswith("+") else text
    whole, _, frac = digits.partition(".")
    ok = (whole or frac) and (whole + frac).isdigit() and len(digits) <= 12
    if not ok or len(frac) > decimals and frac[decimals:].strip("0"):
        raise ProtocolError("BAD_VALUE", "%r is not a decimal number with at most %d decimals"
                            % (text, decimals))
    frac = (frac + "0" * decimals)[:decimals]
    value = int(whole or "0") * 10**decimals + int(frac or "0")
    return -value if neg else value


def format_fixed(value, decimals):
    if not decimals:
        return str(value)
    sign = "-" if value < 0 else ""
    value = -value if value < 0 else value
    scale = 10**decimals
    return "%s%d.%0*d" % (sign, value // scale, decimals, value % scale)


def check_param(index, value):
    """Raise ProtocolError unless value (internal units) is within bounds and on grid."""
    check_value(PARAMS[index], value)


def spec(name):
    """The (name, unit, decimals, min, max, step) of a parameter or a calibration value."""
    for table in (PARAMS, CALIBRATION):
        i = index_of(table, name)
        if i >= 0:
            return table[i]
    return None


def check_value(entry, value):
    """check_param for a PARAMS or CALIBRATION entry."""
    name, unit, dec, lo, hi, step = entry
    if value < lo or value > hi:
        raise ProtocolError("RANGE", "%s %s %s outside %s..%s %s" % (
            name, format_fixed(value, dec), unit, format_fixed(lo, dec),
            format_fixed(hi, dec), unit))
    if (value - lo) % step:
        raise ProtocolError("STEP", "%s %s %s is not a multiple of %s %s" % (
            name, format_fixed(value, dec), unit, format_fixed(step, dec), unit))


def parse_settings(args):
    """[(name, text)] -> [(param index, value)], all checked before any is applied."""
    out = []
    for name, text in args:
        i = index_of(PARAMS, name)
        if i < 0:
            raise ProtocolError("UNKNOWN_PARAM", "unknown parameter %r" % name[:16])
        value = parse_fixed(text, PARAMS[i][2])
        check_param(i, value)
        out.append((i, value))
    if not out:
        raise ProtocolError("MALFORMED", "SET needs at least one name=value")
    return out


def mask_names(mask, table):
    names = [table[i][0] for i in range(len(table)) if mask & (1 << i)]
    return ",".join(names) if names else "-"
