# The wire protocol, defined once. This file runs on the board (MicroPython) and is
# imported by the host package (CPython) as penctl.firmware.protocol: every table the two
# sides must agree on lives here and nowhere else.
#
# A frame is one line of printable ASCII:   <body> *<CRC-32 as 8 hex digits>\n
#   host -> board   "<seq> <CMD> [name=value ...]"          seq 1..65535, retries reuse it
#   board -> host   "<seq> OK [name=value ...]"  or  "<seq> ERR <CODE> <message>"
#                   "! <EVENT> [name=value ...] [: message]"  unsolicited event
#                   "~ name=value ..."                         telemetry
# Values are fixed-point decimals ("0.50"), parsed without floats so NaN and inf
# cannot exist on the board. The CRC is CRC-32 (as zlib's) over the body bytes: CRC-16
# let damaged frames through (about 1 in 240,000 under the lossy-link test's damage, a
# dropped byte among them; the README has the figures), and binascii.crc32 is C on both
# sides (MicroPython's ESP32 port has it).

from binascii import crc32

try:
    from codes import *  # the tables; see codes.py. The board's modules are all top-level
except ImportError:  # the host, where this file is penctl.firmware.protocol
    from .codes import *

if ON_BOARD:  # the tables live on in this module; codes' own dict of them is 1 KB of heap
    import sys

    del sys.modules["codes"]
    del sys


def reset_name(cause):
    return RESET_CAUSES[cause] if 0 <= cause < len(RESET_CAUSES) else "?"


def frame(body):
    """One wire line (without the newline) for a body."""
    return "%s *%08X" % (body, crc32(body.encode()))


class ProtocolError(Exception):
    """A frame or value the receiver refuses; code is a name from ERRORS."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def unframe(line):
    """Body of a wire line, after checking its CRC. Raises ProtocolError."""
    line = line.strip()
    star = len(line) - TRAILER
    if star < 0 or line[star : star + 2] != " *":
        raise ProtocolError("MALFORMED", "frame has no ' *CRC' trailer")
    body = line[:star]
    digits = line[star + 2 :]
    if digits.strip("0123456789ABCDEF"):  # int() would also take ' ', '+', 'x' or lower case
        raise ProtocolError("MALFORMED", "CRC is not 8 upper-case hex digits")
    if int(digits, 16) != crc32(body.encode()):
        raise ProtocolError("BAD_CRC", "frame checksum does not match; resend")
    return body


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


def parse_request(body):
    """'<seq> CMD a=b ...' -> (seq, command index, [(name, text), ...])."""
    parts = body.split()
    if len(parts) < 2 or not parts[0].isdigit() or not 0 < int(parts[0]) <= SEQ_MAX:
        raise ProtocolError("MALFORMED", "expected '<seq 1..65535> <CMD> [name=value ...]'")
    cmd = index_of(COMMANDS, parts[1])
    if cmd < 0:
        raise ProtocolError("UNKNOWN_CMD", "unknown command %r" % parts[1][:16])
    args = []
    for tok in parts[2:]:
        name, eq, text = tok.partition("=")
        if not eq or not name or not text:
            raise ProtocolError("MALFORMED", "argument %r is not name=value" % tok[:24])
        args.append((name, text))
    if args and COMMANDS[cmd][1] != "*":
        raise ProtocolError("MALFORMED", "%s takes no arguments" % parts[1])
    return int(parts[0]), cmd, args


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
