"""Protocol fuzzing: random bytes, truncated, overlong and corrupted frames, valid frames
with hostile values, floods. The firmware answers or ignores each, never crashes, never
moves the motor, does not leak memory, and works normally right after.

The board is left un-homed so no fuzzed START can legitimately run the motor. Ctrl-C
(0x03) is left out: on the cable it is the realtime STOP (see test_lifecycle).
`make fuzz N=...` runs more examples.
"""

import os
import time

import pytest
from conftest import board_sleep, motor_stopped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from penctl.firmware import protocol as P
from penctl.firmware import wire

pytestmark = pytest.mark.injects
EXAMPLES = int(os.environ.get("PEN_FUZZ_N", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="PEN_FUZZ_N" not in os.environ,
                suppress_health_check=list(HealthCheck))

HOSTILE = ["nan", "NaN", "inf", "-inf", "1e308", "-0", "0x1F", "", "99999999999999",
           "-99999999", "1.0000000001", "0.05.0", "+-1", "\u00e9", "0" * 80, "1_000", "None"]
commands = st.sampled_from([c for c, _, _ in P.COMMANDS if c not in ("HOME",)] + ["SETX", "?"])
names = st.sampled_from([p[0] for p in P.PARAMS] + ["seq", "x", "depth_mm", "DEPTH", ""])
values = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=12),
                   st.decimals(allow_nan=False, allow_infinity=False).map(str))
args = st.lists(st.tuples(names, values).map(lambda nv: "%s=%s" % nv), max_size=5)
seqs = st.one_of(st.integers(-5, 70000).map(str), st.sampled_from(["", "x", "1.5", "-"]))


@st.composite
def frames(draw):
    body = " ".join([draw(seqs), draw(commands)] + draw(args))
    line = wire.frame(body)
    how = draw(st.sampled_from(["valid", "truncated", "crc", "flip", "overlong", "nocrc"]))
    if how == "truncated":
        line = line[: draw(st.integers(0, len(line)))]
    elif how == "crc":
        line = line[:-8] + "%08X" % ((int(line[-8:], 16) + 1) % 2**32)
    elif how == "flip" and line:
        i = draw(st.integers(0, len(line) - 1))
        line = line[:i] + chr(ord(line[i]) ^ 0x20) + line[i + 1:]
    elif how == "overlong":
        line = line + " " + "A" * draw(st.integers(100, 600))
    elif how == "nocrc":
        line = body
    return without_ctrl_c(line.encode("utf-8", "replace") + b"\n")


def without_ctrl_c(data):
    return data.replace(b"\x03", b"")  # a text value or a flipped '#' can hold one


raw_bytes = st.binary(max_size=300).map(without_ctrl_c)


def check_untouched(pen, board, heap_before):
    assert motor_stopped(board)
    assert board.observe()["revolutions"] == 0  # the motor never turned at all
    assert pen.status().state in ("IDLE", "BOOT")
    heap_after = pen.diag()["mem_free"]
    assert heap_after >= heap_before - 2048, "heap shrank by %d bytes" % (heap_before - heap_after)
    board.check()


@FUZZ
@given(data=st.lists(st.one_of(frames(), raw_bytes), min_size=1, max_size=20))
def test_fuzzed_input_never_moves_or_crashes(pen, board, data):
    heap = pen.diag()["mem_free"]
    for chunk in data:
        pen.link.write_raw(chunk)
    pen.link.write_raw(b"\n")
    time.sleep(0.02)
    check_untouched(pen, board, heap)


def test_flood_of_frames_then_normal_operation(pen, board):
    heap = pen.diag()["mem_free"]
    junk = b"".join(wire.frame("%d STATUS x=%d" % (i % 65535 + 1, i)).encode() + b"\n"
                    for i in range(300))
    pen.link.write_raw(junk + bytes(range(4, 256)) * 4 + b"\n")
    board_sleep(1.0)
    check_untouched(pen, board, heap)
    pen.home()
    pen.set(depth_mm=0.5, rate_hz=100)
    pen.start()
    board_sleep(0.5)
    assert pen.status().state == "RUNNING"
