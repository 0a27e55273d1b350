"""The shared protocol module, run in CPython (the VM runs it in the HIL tests)."""

import re

import pytest
from firmware_import import protocol as P
from hypothesis import given
from hypothesis import strategies as st
from penctl import protocol as host
from penctl.paths import FIRMWARE_DIR


def test_crc_is_crc32_and_its_check_value():
    assert P.frame("123456789") == "123456789 *CBF43926"


def test_a_dropped_byte_that_crc16_missed_is_caught():
    # CRC-16/CCITT-FALSE gave these two bodies the same CRC; the lossy-link test met it
    line = P.frame("28522 SET link_timeout=1760")
    with pytest.raises(P.ProtocolError) as e:
        P.unframe(line.replace("link", "ink"))
    assert e.value.code == "BAD_CRC"


def _frame_with_crc_like(pattern):
    return next(line for line in (P.frame("%d OK" % seq) for seq in range(1, 5000))
                if re.fullmatch(pattern, line[-8:]))


@pytest.mark.parametrize("spoil", [str.lower, lambda d: " " + d[1:], lambda d: "+" + d[1:],
                                   lambda d: "0x" + d[2:]])
def test_crc_digits_must_be_exactly_eight_upper_case_hex_digits(spoil):
    # each spoiling keeps the value int(d, 16) reads, so only the strict check refuses it
    line = _frame_with_crc_like("00[0-9]*[A-F][0-9A-F]*")
    with pytest.raises(P.ProtocolError) as e:
        P.unframe(line[:-8] + spoil(line[-8:]))
    assert e.value.code == "MALFORMED"


def test_frame_round_trip_and_integrity():
    line = P.frame("7 SET depth=0.5 rate=100")
    assert P.unframe(line) == "7 SET depth=0.5 rate=100"
    for bad, code in [(line[:-1] + ("0" if line[-1] != "0" else "1"), "BAD_CRC"),
                      ("7 SET depth=0.5", "MALFORMED"), (line[:-2], "MALFORMED"),
                      (line[:-4] + "ZZZZ", "MALFORMED"),
                      (line[:-8] + line[-4:], "MALFORMED")]:
        with pytest.raises(P.ProtocolError) as e:
            P.unframe(bad)
        assert e.value.code == code


def test_frames_never_carry_repl_control_characters():
    line = P.frame("1 OK st=READY")
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


@pytest.mark.parametrize("body, code", [
    ("0 STATUS", "MALFORMED"), ("65536 STATUS", "MALFORMED"), ("STATUS", "MALFORMED"),
    ("5 LAUNCH", "UNKNOWN_CMD"), ("5 HOME x=1", "MALFORMED"), ("5 SET depth", "MALFORMED"),
    ("5 SET =1", "MALFORMED"), ("-1 STATUS", "MALFORMED"),
])
def test_parse_request_refusals(body, code):
    with pytest.raises(P.ProtocolError) as e:
        P.parse_request(body)
    assert e.value.code == code


def test_parse_request_and_settings():
    seq, cmd, args = P.parse_request("65535 SET depth=0.5 rate=100")
    assert seq == 65535 and P.COMMANDS[cmd][0] == "SET"
    assert P.parse_settings(args) == [(P.P_DEPTH, 500), (P.P_RATE, 10000)]
    for args, code in [([("speed", "1")], "UNKNOWN_PARAM"), ([], "MALFORMED"),
                       ([("rate", "151")], "RANGE")]:
        with pytest.raises(P.ProtocolError) as e:
            P.parse_settings(args)
        assert e.value.code == code


def test_host_classifies_board_lines():
    assert host.parse_line(P.frame("12 OK st=READY")) == ("reply", 12, {"st": "READY"}, "")
    kind, seq, fields, msg = host.parse_line(P.frame("12 ERR CAP : depth beyond the cap"))
    assert (kind, seq, fields["err"], msg) == ("reply", 12, "CAP", "depth beyond the cap")
    kind, seq, fields, _ = host.parse_line(P.frame("- ERR BAD_CRC : resend"))
    assert (kind, seq) == ("reply", None)
    kind, name, fields, msg = host.parse_line(P.frame("! FAULT code=STALL ma=3000 : locked"))
    assert (kind, name, fields["code"], msg) == ("event", "FAULT", "STALL", "locked")
    assert host.parse_line(P.frame("~ st=RUNNING hz=99.50"))[2]["hz"] == "99.50"
    with pytest.raises(host.ProtocolError):
        host.parse_line(P.frame("hello there"))


def test_fault_codes_are_stable_and_fit_a_small_int_mask():
    names = [name for name, _ in P.FAULTS]
    assert names[:16] == ["ESTOP", "CARTRIDGE", "OVERCURRENT", "STALL", "TACH_LOST", "SPEED",
                          "DEPTH_FOLLOWING", "DEPTH_SENSOR", "OVERTEMP", "THERMISTOR",
                          "SUPPLY_LOW", "SUPPLY_HIGH", "LINK_LOST", "RUN_LIMIT", "WATCHDOG",
                          "INTERNAL"]
    assert len(names) <= 30  # bit mask stays a small int on a 32-bit ESP32
    for i, name in enumerate(names):
        assert getattr(P, "F_" + name) == i


def test_status_fields_match_the_field_table():
    source = (FIRMWARE_DIR / "controller.py").read_text()
    body = source[source.index("def status_fields"):]
    keys = re.findall(r"(\w+)=%", body[:body.index(") % (")])
    assert keys == [key for key, _, _ in P.FIELDS]
