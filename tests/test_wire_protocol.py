"""The shared protocol module, run in CPython (the VM runs it in the HIL tests)."""

import array
import ast
import dataclasses
import re
import types

import pytest
from firmware_import import protocol as P
from firmware_import import wire as W
from hypothesis import given
from hypothesis import strategies as st
from penctl.client import Status
from penctl.firmware import wire as host
from penctl.paths import FIRMWARE_DIR


def test_crc_is_crc32_and_its_check_value():
    assert W.frame("123456789") == "123456789 *CBF43926"


def test_a_dropped_byte_that_crc16_missed_is_caught():
    # CRC-16/CCITT-FALSE gave these two bodies the same CRC; the lossy-link test met it
    line = W.frame("28522 SET link_timeout=1760")
    with pytest.raises(P.ProtocolError) as e:
        W.unframe(line.replace("link", "ink"))
    assert e.value.code == "BAD_CRC"


def _frame_with_crc_like(pattern):
    return next(line for line in (W.frame("%d OK" % seq) for seq in range(1, 5000))
                if re.fullmatch(pattern, line[-8:]))


@pytest.mark.parametrize("spoil", [str.lower, lambda d: " " + d[1:], lambda d: "+" + d[1:],
                                   lambda d: "0x" + d[2:]])
def test_crc_digits_must_be_exactly_eight_upper_case_hex_digits(spoil):
    # each spoiling keeps the value int(d, 16) reads, so only the strict check refuses it
    line = _frame_with_crc_like("00[0-9]*[A-F][0-9A-F]*")
    with pytest.raises(P.ProtocolError) as e:
        W.unframe(line[:-8] + spoil(line[-8:]))
    assert e.value.code == "MALFORMED"


def test_frame_round_trip_and_integrity():
    line = W.frame("7 SET depth=0.5 rate=100")
    assert W.unframe(line) == "7 SET depth=0.5 rate=100"
    for bad, code in [(line[:-1] + ("0" if line[-1] != "0" else "1"), "BAD_CRC"),
                      ("7 SET depth=0.5", "MALFORMED"), (line[:-2], "MALFORMED"),
                      (line[:-4] + "ZZZZ", "MALFORMED"),
                      (line[:-8] + line[-4:], "MALFORMED")]:
        with pytest.raises(P.ProtocolError) as e:
            W.unframe(bad)
        assert e.value.code == code


def test_frames_never_carry_repl_control_characters():
    line = W.frame("1 OK st=READY")
    assert all(32 <= ord(c) < 127 for c in line)


@pytest.mark.parametrize("text, dec, value", [
    ("0.5", 3, 500), ("0.500", 3, 500), ("3", 3, 3000), ("-0.25", 3, -250), (".5", 2, 50),
    ("100", 2, 10000), ("100.10", 2, 10010), ("+1", 0, 1),
])
def test_parse_fixed_accepts_plain_decimals(text, dec, value):
    assert P.parse_fixed(text, dec) == value


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e3", "", "-", ".", "0x10", "1.2.3",
                                  "0.5001", "1,5", " 1", "9999999999999"])
def test_parse_fixed_refuses_everything_else(text):
    with pytest.raises(P.ProtocolError) as e:
        P.parse_fixed(text, 3)
    assert e.value.code == "BAD_VALUE"


@given(st.integers(-10**9, 10**9), st.integers(0, 4))
def test_fixed_format_round_trips(value, dec):
    assert P.parse_fixed(P.format_fixed(value, dec), dec) == value


def test_check_param_range_and_step():
    depth = P.index_of(P.PARAMS, "depth")
    P.check_param(depth, 500)
    for value, code in [(3050, "RANGE"), (-50, "RANGE"), (520, "STEP")]:
        with pytest.raises(P.ProtocolError) as e:
            P.check_param(depth, value)
        assert e.value.code == code


@pytest.mark.parametrize("body, code, seq", [
    ("0 STATUS", "MALFORMED", -1), ("65536 STATUS", "MALFORMED", -1),
    ("STATUS", "MALFORMED", -1), ("5 LAUNCH", "UNKNOWN_CMD", 5), ("5 HOME x=1", "MALFORMED", 5),
    ("5 SET depth", "MALFORMED", 5), ("5 SET =1", "MALFORMED", 5), ("-1 STATUS", "MALFORMED", -1),
])
def test_parse_request_refusals_name_the_seq_once_it_is_read(body, code, seq):
    got = array.array("i", [-1, 0])
    with pytest.raises(P.ProtocolError) as e:
        W.parse_request(body, got)
    assert e.value.code == code and got[0] == seq


def test_parse_request_and_settings():
    seq, cmd, args = W.parse_request("65535 SET depth=0.5 rate=100", array.array("i", [-1, 0]))
    assert seq == 65535 and P.COMMANDS[cmd][0] == "SET"
    assert P.parse_settings(args) == [(P.P_DEPTH, 500), (P.P_RATE, 10000)]
    for args, code in [([("speed", "1")], "UNKNOWN_PARAM"), ([], "MALFORMED"),
                       ([("rate", "151")], "RANGE")]:
        with pytest.raises(P.ProtocolError) as e:
            P.parse_settings(args)
        assert e.value.code == code


def test_host_classifies_board_lines():
    assert host.parse(W.frame("12 OK st=READY")) == ("reply", 12, {"st": "READY"}, "")
    kind, seq, fields, msg = host.parse(W.frame("12 ERR CAP : depth beyond the cap"))
    assert (kind, seq, fields["err"], msg) == ("reply", 12, "CAP", "depth beyond the cap")
    kind, seq, fields, _ = host.parse(W.frame("- ERR BAD_CRC : resend"))
    assert (kind, seq) == ("reply", None)
    kind, name, fields, msg = host.parse(W.frame("! FAULT code=STALL ma=3000 : locked"))
    assert (kind, name, fields["code"], msg) == ("event", "FAULT", "STALL", "locked")
    assert host.parse(W.frame("~ st=RUNNING hz=99.50"))[2]["hz"] == "99.50"
    with pytest.raises(host.P.ProtocolError):
        host.parse(W.frame("hello there"))


def test_fault_codes_are_stable_and_fit_a_small_int_mask():
    names = [name for name, _ in P.FAULTS]
    assert names[:16] == ["ESTOP", "CARTRIDGE", "OVERCURRENT", "STALL", "TACH_LOST", "SPEED",
                          "DEPTH_FOLLOWING", "DEPTH_SENSOR", "OVERTEMP", "THERMISTOR",
                          "SUPPLY_LOW", "SUPPLY_HIGH", "LINK_LOST", "RUN_LIMIT", "WATCHDOG",
                          "INTERNAL"]
    assert len(names) <= 30  # bit mask stays a small int on a 32-bit ESP32
    for i, name in enumerate(names):
        assert getattr(P, "F_" + name) == i


def _readings_attributes():
    """The attributes sensors.Readings starts with (read from its source: sensors.py
    imports machine, which CPython has not got)."""
    tree = ast.parse((FIRMWARE_DIR / "sensors.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Readings")
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    return {t.attr for n in ast.walk(init) if isinstance(n, ast.Assign) for t in n.targets
            if isinstance(t, ast.Attribute)}


def test_every_status_field_is_read_from_the_boards_readings():
    missing = [f[1] for f in P.FIELDS if f[1] not in _readings_attributes()]
    assert not missing, "Readings has no %s" % missing


def test_status_line_round_trips_from_board_to_status():
    # the board writes every field from its readings; the host reads them back by the same
    # table, each in its attribute's unit
    board = types.SimpleNamespace(
        state=P.RUNNING, faults=(1 << P.F_STALL) | (1 << P.F_OVERTEMP), warnings=1 << P.W_HOT,
        rate_chz=9950, setpoint_chz=10000, depth_um=500, setpoint_um=750, current_ma=1234,
        temp_dc=-15, supply_mv=12050, duty_pm=352, strokes=77, up_ms=123456)
    line = W.frame(W.telemetry(W.fields(board)))
    kind, _, fields, _ = host.parse(line)
    assert kind == "telemetry"
    assert Status.from_fields(fields) == Status(
        state="RUNNING", faults=["STALL", "OVERTEMP"], warnings=["HOT"], rate_hz=99.5,
        target_rate_hz=100.0, depth_mm=0.5, target_depth_mm=0.75, current_ma=1234,
        temperature_c=-1.5, supply_v=12.05, duty_pct=35.2, strokes=77, uptime_ms=123456)
    assert [f.name for f in dataclasses.fields(Status)] == [f[4] for f in P.FIELDS]


def test_host_writes_each_parameter_with_its_own_decimals():
    # 0.1 + 0.2 is 0.30000000000000004 as a float: the board refused it (BAD_VALUE)
    assert host.request_fields({"depth": 0.1 + 0.2, "rate": 100.0, "telemetry": 20}) == [
        ("depth", "0.3"), ("rate", "100"), ("telemetry", "20")]
    # digits beyond a parameter's decimals are the caller's, not float noise: the board
    # refuses them rather than the host rounding them away
    assert host.request_fields({"depth": 0.5004})[0][1] == "0.5004"
    assert host.request_fields({"depth": float("nan")})[0][1] == "nan"


class _Uart:
    """A stream as the board's UART takes bytes: write(buf, length)."""

    def __init__(self):
        self.out = b""

    def write(self, buf, length):
        self.out += bytes(buf[:length])
        return length


@pytest.mark.parametrize("values", [
    dict(state=P.RUNNING, faults=0, warnings=0, rate_chz=9950, setpoint_chz=10000, depth_um=500,
         setpoint_um=750, current_ma=1234, temp_dc=-15, supply_mv=12050, duty_pm=352, strokes=0,
         up_ms=123456),
    # the longest line there is: every fault and warning named, numbers at their widest
    dict(state=P.ESTOP, faults=(1 << len(P.FAULTS)) - 1, warnings=(1 << len(P.WARNINGS)) - 1,
         rate_chz=-(2**29), setpoint_chz=2**29, depth_um=-(2**29), setpoint_um=2**29,
         current_ma=-(2**29), temp_dc=-(2**29), supply_mv=2**29, duty_pm=2**29,
         strokes=2**29, up_ms=2**29),
])
def test_the_boards_writer_sends_the_line_fields_would(values):
    # the board writes telemetry digit by digit from one buffer; it must be the very line
    # the string-built path (and the host's parser) agree on
    source = types.SimpleNamespace(**values)
    uart = _Uart()
    length = W.Writer(uart).telemetry(source)
    expected = W.frame(W.telemetry(W.fields(source))) + "\n"
    assert uart.out.decode() == expected and length == len(expected)
    # and STATUS's text (commands.py builds it in the same buffer)
    writer = W.Writer(uart)
    writer.fields(source)
    assert writer.buf.decode() == W.fields(source)


@given(st.integers(1, 65535), st.sampled_from([c[0] for c in P.COMMANDS]),
       st.sampled_from(["", " depth=0.5", "  ", " "]))
def test_requests_read_in_place_agree_with_the_text_parser(seq, command, tail):
    # the board reads a plain request in its buffer; anything else it hands to the text
    # parser, so both must agree on every request the in-place reader takes
    line = W.frame("%d %s%s" % (seq, command, tail)).encode()
    buf = bytearray(line)
    got = array.array("i", bytes(8))
    cmd = W.read_request(buf, bytearray(), len(buf), got)
    if tail:
        assert cmd == -1
    else:
        text_seq, text_cmd, args = W.parse_request(W.unframe(line.decode()),
                                                   array.array("i", [-1, 0]))
        assert (got[0], cmd, got[1]) == (text_seq, text_cmd, W.crc_of(line.decode()))
        assert not args


@pytest.mark.parametrize("spoil", [
    lambda b: b[:-1] + (b"0" if b[-1:] != b"0" else b"1"),  # the CRC
    lambda b: b.replace(b"KA", b"KB"), lambda b: b.replace(b" *", b"*"),
    lambda b: b[:-8] + b[-8:].lower(), lambda b: b"0" + b, lambda b: b"123456 " + b[2:],
])
def test_a_request_the_in_place_reader_cannot_vouch_for_goes_to_the_text_parser(spoil):
    line = spoil(W.frame("12 KA").encode())
    buf = bytearray(line)
    assert W.read_request(buf, bytearray(), len(buf), array.array("i", bytes(8))) == -1
