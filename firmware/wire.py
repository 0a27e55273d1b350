# Every line on the wire, built and parsed here and nowhere else; the firmware and the host
# (as penctl.firmware.wire) share this file, and the tables it reads are codes.py's.
#
# A frame is one line of printable ASCII:   <body> *<CRC-32 as 8 hex digits>\n
#   request    "<seq> <CMD> [name=value ...]"             seq 1..65535, retries reuse it
#   reply      "<seq> OK [name=value ...] [: message]"
#   error      "<seq> ERR <CODE> : <message>"              "-" for seq: a frame never read
#   event      "! <EVENT> [name=value ...] [: message]"    unsolicited
#   telemetry  "~ name=value ..."                          the status fields (codes.FIELDS)
#   paged      a reply whose message is items: LOG's records joined by " | ", FAULTS' by "; "
# The board's settings file and its event-log records are frames too, so a CRC guards them.
# The CRC is CRC-32 (as zlib's) over the body bytes: CRC-16 let damaged frames through (about
# 1 in 240,000 under the lossy-link test's damage; docs/protocol.md has the figures), and
# binascii.crc32 is C on both sides (MicroPython's ESP32 port has it).
from binascii import crc32
from struct import pack_into

if "." in __name__:  # the host, where this file is penctl.firmware.wire
    from . import protocol as P
else:  # the board: every module is top-level
    import protocol as P  # type: ignore[no-redef]

ITEM_SEP = " | "  # between the items of a paged reply
_MSG = " : "  # before a line's free-text message


# ---- frames ------------------------------------------------------------------------------------
def frame(body):
    """One wire line (without the newline) for a body."""
    return "%s *%08X" % (body, crc32(body.encode()))


def unframe(line):
    """Body of a wire line, after checking its CRC. Raises ProtocolError."""
    line = line.strip()
    star = len(line) - P.TRAILER
    if star < 0 or line[star : star + 2] != " *":
        raise P.ProtocolError("MALFORMED", "frame has no ' *CRC' trailer")
    body = line[:star]
    digits = line[star + 2 :]
    if digits.strip("0123456789ABCDEF"):  # int() would also take ' ', '+', 'x' or lower case
        raise P.ProtocolError("MALFORMED", "CRC is not 8 upper-case hex digits")
    if int(digits, 16) != crc32(body.encode()):
        raise P.ProtocolError("BAD_CRC", "frame checksum does not match; resend")
    return body


def crc_of(line):
    """28 bits of a checked frame's CRC (a small int on an ESP32): what tells two frames
    with one sequence number apart."""
    return int(line.rstrip()[-7:], 16)


# ---- building bodies (both sides) -----------------------------------------------------------
def pairs(fields):
    """'a=1 b=2' of [(name, text), ...]; an item that is text already (from fields()) is
    taken as it is."""
    return " ".join([kv if isinstance(kv, str) else "%s=%s" % kv for kv in fields])


def _body(head, fields, message):
    if fields:
        fields = fields if isinstance(fields, str) else pairs(fields)
        head = "%s %s" % (head, fields) if head else fields
    return "%s%s%s" % (head, _MSG, message) if message else head


def command_text(name, fields=()):
    """'CMD a=1 b=2': a request less its number, what a keyed command's mac= covers
    (auth.py) with the fields as sent."""
    return _body(name, fields, "")


def ok(seq, fields=(), message=""):
    """A reply; fields a list of (name, text) or text from fields()/status()."""
    return _body("%d OK" % seq, fields, message)


def error(seq, code, message):
    """An error reply; seq < 0 for a frame the board could not read (or number)."""
    return _body("%s ERR %s" % ("-" if seq < 0 else seq, code), "", message)


def text(name, fields=(), message=""):
    """'NAME [name=value ...] [: message]': an event's text (as the event log keeps it; the
    line that sends it is announce()'s), and the saved settings' line."""
    return _body(name, fields, message)


def split_text(body):
    """(name, [(name, text), ...], message) of text()'s body (with name "": of
    '[name=value ...] [: message]')."""
    head, _, message = body.partition(_MSG)
    name, _, fields = head.strip().partition(" ")
    if "=" in name:  # no name: fields only
        name, fields = "", head
    return name, split_pairs(fields), message


def announce(text):
    """The line that sends an event's text to the host."""
    return "! " + text


def fixed(key, value):
    """(key, text) of a status field's value (internal units), formatted by its table
    entry: decimals, a state's name or a mask's names."""
    return key, _field_text(P.FIELDS[P.index_of(P.FIELDS, key)][2], value)


def _field_text(kind, value):
    if kind == "state":
        return P.STATES[value]
    if kind == "faults" or kind == "warnings":
        return P.mask_names(value, P.FAULTS if kind == "faults" else P.WARNINGS)
    return P.format_fixed(value, kind)


def fields(source, keys=None):
    """'key=value ...' of status fields (all of FIELDS in the table's order, or those in
    keys, in their order), each value read from the attribute of `source` the table names."""
    out = []
    for key in keys or [entry[0] for entry in P.FIELDS]:
        entry = P.FIELDS[P.index_of(P.FIELDS, key)]  # looked up once a field
        out.append((key, _field_text(entry[2], getattr(source, entry[1]))))
    return pairs(out)


def telemetry(fields_text):
    """A telemetry line's body of the status fields' text (fields()'s)."""
    return "~ " + fields_text


# ---- the lines the board sends many times a second ------------------------------------------
class Writer:
    """Frames built in one buffer, allocated once, and written to the UART from it:
    telemetry with numbers digit by digit and names copied from the tables, and any body
    that fits. A line allocates nothing: the buffer's length is the line's (cut to 0 and
    appended to within the room it was made with, which MicroPython does in place), so
    crc32 takes the buffer itself, where a memoryview slice of it was a new object a line
    (fields() and frame() build a few KB of strings a telemetry line: 70 KB/s at 20 Hz on
    the VM)."""

    def __init__(self, stream):
        self.stream = stream  # a byte stream with write(buf, length): the UART
        # room for the longest line: 14 bytes a number, every fault and warning named
        names = 0
        for table in (P.STATES, P.FAULTS, P.WARNINGS):
            for entry in table:
                names += len(entry if table is P.STATES else entry[0]) + 1
        self.room = 2 + names + 16 * len(P.FIELDS) + P.TRAILER + 1
        self.buf = bytearray(self.room)
        self.buf[0:] = b""  # empty, the room kept (objarray.c: a shrink never reallocates)

    def put(self, byte):
        self.buf.append(byte)

    def text(self, s):
        buf = self.buf
        for c in s:
            buf.append(ord(c))

    def digits(self, value, width):
        """value >= 0 in decimal, zero-padded to `width` digits."""
        count = 1
        rest = value // 10
        while rest:
            count += 1
            rest //= 10
        if count < width:
            count = width
        buf = self.buf
        i = len(buf) + count
        for _ in range(count):  # the digits' places, filled from the right
            buf.append(48)
        while count:
            i -= 1
            count -= 1
            buf[i] = 48 + value % 10
            value //= 10

    def fixed(self, value, decimals):
        if value < 0:
            self.put(45)  # '-'
            value = -value
        if not decimals:
            self.digits(value, 1)
            return
        scale = 10**decimals
        self.digits(value // scale, 1)
        self.put(46)  # '.'
        self.digits(value % scale, decimals)

    def names(self, mask, table):
        if not mask:
            self.put(45)  # '-': none
            return
        first = True
        for i in range(len(table)):
            if mask & (1 << i):
                if not first:
                    self.put(44)  # ','
                first = False
                self.text(table[i][0])

    def telemetry(self, source):
        """Send telemetry()'s line of fields(source); returns its length on the wire."""
        self.buf[0:] = b""
        self.put(126)  # '~'
        self.fields(source)
        return self.send()

    def fields(self, source):
        """Append fields(source)'s text to the buffer's line (after a space unless it is
        the first thing in it)."""
        for entry in P.FIELDS:
            if self.buf:
                self.put(32)
            self.text(entry[0])
            self.put(61)  # '='
            value = getattr(source, entry[1])
            kind = entry[2]
            if kind == "state":
                self.text(P.STATES[value])
            elif kind == "faults":
                self.names(value, P.FAULTS)
            elif kind == "warnings":
                self.names(value, P.WARNINGS)
            else:
                self.fixed(value, kind)

    def ok(self, seq):
        """Send a plain OK reply to seq."""
        self.buf[0:] = b""
        self.digits(seq, 1)
        self.text(" OK")
        self.send()

    def line(self, body):
        """Send frame(body); False (nothing sent) if it is longer than the buffer."""
        if len(body) + P.TRAILER + 1 > self.room:
            return False
        self.buf[0:] = b""
        self.text(body)
        self.send()
        return True

    def send(self):
        """Frame the buffer's body (frame()'s trailer), write it; returns its length."""
        buf = self.buf
        n = len(buf)
        crc = crc32(buf)  # an int the chip boxes (above 2**30) 3 times in 4: taken apart
        buf.extend(b" *00000000\n")  # by pack_into, not by >> and &, which box it again
        pack_into(">I", buf, n + 6, crc)  # its 4 bytes in the last 4 digits' places,
        for k in range(4):  # spread to 8 hex digits from the left: each read before written
            byte = buf[n + 6 + k]
            buf[n + 2 + 2 * k] = _hex(byte >> 4)
            buf[n + 3 + 2 * k] = _hex(byte & 15)
        self.stream.write(buf, len(buf))
        return len(buf)


def _hex(nibble):
    return 48 + nibble if nibble < 10 else 55 + nibble


# ---- paged replies -------------------------------------------------------------------------
# LOG     "next=<n> boot=<b> : <seq> <boot> <uptime_ms> <text> | ..."   records, oldest first
# FAULTS  "f=<names> log=<ms>:<CODE>;... : <CODE> <detail> [<readings>]; ..."  each latched
#         fault by its newest record; log= the last few faults' times since boot and codes
_FAULT_SEP = "; "


def log_reply(following, boot, records):
    """LOG's reply: where to go on, this boot's number and (seq, boot, uptime_ms, text)
    records."""
    return _body(pairs([("next", following), ("boot", boot)]), "",
                 ITEM_SEP.join([record(*rec) for rec in records]))


def faults_reply(mask, recent, latched):
    """FAULTS' reply: the latched mask, the recent (ms, code, ...) entries and the latched
    faults' (ms, code, detail, readings) records."""
    log = ";".join(["%d:%s" % (rec[0], P.FAULTS[rec[1]][0]) for rec in recent])
    items = ["%s %s [%s]" % (P.FAULTS[c][0], d, rd) for _, c, d, rd in latched]
    return _body(pairs([("f", P.mask_names(mask, P.FAULTS)), ("log", log or "-")]), "",
                 _FAULT_SEP.join(items))


def record(seq, boot, up_ms, text):
    """An event-log record's body, as kept on the flash and sent in LOG's items (so no
    '|' in its text: LOG's reply separates its items with one)."""
    return "%d %d %d %s" % (seq, boot, up_ms, text.replace("|", "/"))


def split_record(body):
    """(seq, boot, up_ms, text) of a record's body; ValueError if it is not one."""
    seq, boot, up, text = body.split(" ", 3)
    return int(seq), int(boot), int(up), text


def event_is(body, name, key, value):
    """Whether an event's text (text()'s, as a log record keeps it) is event `name` with
    field key=value."""
    found, fields, _ = split_text(body)
    return found == name and (key, value) in fields


# ---- parsing requests (the board) -------------------------------------------------------------
def read_request(line, scratch, n, got):
    """The command index of a request of n bytes in the bytearray `line`, read in place,
    its seq and crc_of() put in got[0] and got[1]: a request of the plain form
    '<seq> <CMD> *<CRC>' allocates nothing, where unframe() and parse_request() build ~1 KB
    of strings for a KA. The CRC is checked in `scratch` (a bytearray with room for a plain
    request; its contents are lost): the body and the frame's CRC as 4 bytes, least
    significant first, whose CRC-32 is 0x2144DF1C for every body (CRC-32's residue): a
    small int on the chip, where the body's own CRC would be a boxed one 3 times in 4. -1
    for any other line (arguments, extra spaces, a damaged frame): parse it as text, which
    finds what is wrong with it."""
    star = n - P.TRAILER
    if star < 3 or line[star] != 32 or line[star + 1] != 42:  # ' *'
        return -1
    hi = _hex16(line, star + 2)
    lo = _hex16(line, star + 6)
    if hi < 0 or lo < 0:
        return -1
    seq = 0
    i = 0
    while i < star and 48 <= line[i] <= 57 and i < 5:
        seq = seq * 10 + line[i] - 48
        i += 1
    if not i or line[i] != 32 or not 0 < seq <= P.SEQ_MAX:
        return -1
    start = i + 1
    for cmd in range(len(P.COMMANDS)):
        name = P.COMMANDS[cmd][0]
        if start + len(name) == star and _is(line, start, name):
            scratch[0:] = b""
            for k in range(star):
                scratch.append(line[k])
            scratch.append(lo & 255)
            scratch.append(lo >> 8)
            scratch.append(hi & 255)
            scratch.append(hi >> 8)
            if crc32(scratch) != 0x2144DF1C:
                return -1
            got[0] = seq
            got[1] = ((hi & 0x0FFF) << 16) | lo
            return cmd
    return -1


def _hex16(line, at):
    """The 16-bit value of 4 upper-case hex digits at line[at:], or -1."""
    value = 0
    for i in range(at, at + 4):
        c = line[i]
        if 48 <= c <= 57:
            value = value * 16 + c - 48
        elif 65 <= c <= 70:
            value = value * 16 + c - 55
        else:
            return -1
    return value


def _is(line, at, name):
    for i in range(len(name)):
        if line[at + i] != ord(name[i]):
            return False
    return True


def parse_request(body, got):
    """'<seq> CMD a=b ...' -> (seq, command index, [(name, text), ...]). The seq goes into
    got[0] as soon as it is read: a refusal of the rest (an unknown command, a bad argument)
    answers under it, where an answer under '-' reads as a damaged frame the host sends
    again (a host newer than the firmware asked for a command it lacks until it gave up)."""
    parts = body.split()
    if len(parts) < 2 or not parts[0].isdigit() or not 0 < int(parts[0]) <= P.SEQ_MAX:
        raise P.ProtocolError("MALFORMED", "expected '<seq 1..65535> <CMD> [name=value ...]'")
    got[0] = int(parts[0])
    cmd = P.index_of(P.COMMANDS, parts[1])
    if cmd < 0:
        raise P.ProtocolError("UNKNOWN_CMD", "unknown command %r" % parts[1][:16])
    args = []
    for tok in parts[2:]:
        name, eq, text = tok.partition("=")
        if not eq or not name or not text:
            raise P.ProtocolError("MALFORMED", "argument %r is not name=value" % tok[:24])
        args.append((name, text))
    if args and P.COMMANDS[cmd][1] != "*":
        raise P.ProtocolError("MALFORMED", "%s takes no arguments" % parts[1])
    return int(parts[0]), cmd, args


def split_pairs(body):
    """[(name, text), ...] of 'a=1 b=2' (a saved settings line's fields)."""
    out = []
    for tok in body.split():
        name, _, text = tok.partition("=")
        out.append((name, text))
    return out


# ---- the host's side: its requests and the board's lines ------------------------------------
if not P.ON_BOARD:  # the board compiles this and drops it at once: none of it on its heap
    def request(seq, command, fields=()):
        return _body("%d %s" % (seq, command), fields, "")

    def request_fields(params):
        """[(name, text), ...] of a host's parameter values (numbers, in wire units), each
        written with its parameter's own decimals: 0.1 + 0.2 mm goes as 0.300, not as the
        float's 0.30000000000000004. A value off its grid keeps its digits: the board refuses
        it (STEP, RANGE or BAD_VALUE), the host does not round it onto the grid."""
        out = []
        for name, value in params.items():
            entry = P.spec(name)
            if entry is not None and isinstance(value, float) and value == value \
                    and abs(value) != float("inf"):
                text = "%.*f" % (entry[2], value)
                if "." in text:
                    text = text.rstrip("0").rstrip(".")  # as short as the value allows
                value = text if float(text) == round(value, 9) else repr(value)
            out.append((name, str(value)))
        return out


    def parse(line):
        """Classify and split a board line: (kind, key, fields, message). kind is "reply" (key:
        its seq, None for "-"; fields hold 'err' for an error), "event" (key: its name) or
        "telemetry". Raises ProtocolError for a damaged or unknown line."""
        body = unframe(line)
        head, _, message = body.partition(_MSG)
        parts = head.split()
        if not parts:
            raise P.ProtocolError("MALFORMED", "empty frame")
        if parts[0] == "~":
            return "telemetry", None, dict(split_pairs(" ".join(parts[1:]))), message
        if parts[0] == "!" and len(parts) >= 2:
            return "event", parts[1], dict(split_pairs(" ".join(parts[2:]))), message
        if len(parts) >= 2 and (parts[0].isdigit() or parts[0] == "-"):
            seq = int(parts[0]) if parts[0].isdigit() else None
            if parts[1] == "ERR" and len(parts) >= 3:
                return "reply", seq, {"err": parts[2]}, message
            if parts[1] == "OK":
                return "reply", seq, dict(split_pairs(" ".join(parts[2:]))), message
        raise P.ProtocolError("MALFORMED", "unrecognised board line")


    def names(text):
        """The names of a mask field ('A,B', '-' for none) as a list."""
        return [] if not text or text == "-" else text.split(",")


    def status_values(fields):
        """{Status attribute: value} of a status or telemetry line's fields, by codes.FIELDS:
        numbers in the attribute's unit, masks as lists of names, the state as its name."""
        out = {}
        for key, _, kind, _, attribute, divisor, _ in P.FIELDS:
            text = fields.get(key)
            if kind == "state":
                out[attribute] = text or "?"
            elif isinstance(kind, str):  # faults or warnings
                out[attribute] = names(text)
            elif text is not None:
                value = P.parse_fixed(text, kind)
                out[attribute] = value // divisor if not kind and divisor == 1 else \
                    value / 10**kind / divisor
        return out


    def fault_items(message):
        """FAULTS' latched faults: [(code, detail, readings), ...]."""
        out = []
        for item in message.split(_FAULT_SEP):
            item = item.strip()
            if item:
                code, _, rest = item.partition(" ")
                detail, _, readings = rest.rpartition(" [")
                out.append((code, detail, readings.rstrip("]")))
        return out


    def log_records(message):
        """LOG's records: [(seq, boot, uptime_ms, text), ...]."""
        return [split_record(item.strip()) for item in message.split(ITEM_SEP) if item.strip()]
