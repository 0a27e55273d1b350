"""Treatment sessions: the board's record of one matches what the physics delivered; a
watchdog or brown-out reset leaves it open, a power-off ends it; the host's clock dates
it; `pen session end` / `pen sessions` on the command line; test cartridges only in test
mode."""

import time

import pytest
from conftest import patient_pen, run_strokes, wait_until
from penctl import RefusedError
from penctl.sessions import parse
from test_cli import pen as pen_command

pytestmark = pytest.mark.injects


def ready(pen, depth_mm=0.5):
    pen.home()
    pen.set(depth_mm=depth_mm, rate_hz=100)


def last_session(pen):
    return pen.sessions()[-1]


@pytest.mark.profile("cheeks")  # 1.5 mm cap: 1.0 mm is within it
def test_the_session_record_matches_what_the_physics_delivered(pen, board):
    ready(pen, 1.0)
    seen = board.observe()
    run_strokes(pen, board, 400)
    run_strokes(pen, board, 200)  # two runs, one session
    after = board.observe()
    pen.session(end=True)
    s = last_session(pen)
    strokes = after["revolutions"] - seen["revolutions"]
    depth = (after["depth_strokes"] - seen["depth_strokes"]) / strokes
    assert abs(s.strokes - strokes) <= 0.01 * strokes, (s.strokes, strokes)
    tolerance = board.definition["depth"]["tolerance_mm"]
    assert abs(s.depth_mm - depth) <= tolerance, (s.depth_mm, depth)
    assert 0.95 <= s.depth_max_mm <= 1.0 + tolerance
    assert s.rate_hz == pytest.approx(s.strokes / s.needle_s, rel=0.01)
    assert s.end == "operator" and s.faults == [] and s.profile == "cheeks"
    assert abs(s.started - time.time()) < 120  # the host set the board's clock at HELLO


@pytest.mark.parametrize("reset", ["watchdog", "brownout", "power-off"])
def test_a_reset_keeps_the_session_and_a_power_off_ends_it(pen, board, reset):
    ready(pen)
    run_strokes(pen, board, 30)
    cart = board.cartridge()["id"]
    n = pen.session()["n"]
    boots = len(board.resets)
    pen.link.close()
    if reset == "watchdog":
        board.inject("hang")
    elif reset == "brownout":
        board.inject("brownout", volts=6.0, after_s=0.05)
    else:
        board.power_cycle()
    wait_until(lambda: len(board.resets) > boots and board.observe()["vm_running"], 10,
               "the board back")
    if reset == "watchdog":
        board.remove("hang")
    elif reset == "brownout":
        board.remove("brownout")
    with patient_pen(board.url) as again:
        if again.status().faults:
            again.clear()
        ready(again)
        if reset == "power-off":
            s = last_session(again)
            assert (s.n, s.cartridge, s.end) == (int(n), cart, "power-off")
            with pytest.raises(RefusedError, match="session %s, which has ended" % n):
                again.start()
        else:
            run_strokes(again, board, 30)
            assert again.session()["n"] == n and again.session()["open"] == "1"


def test_session_end_and_sessions_on_the_command_line(pen, board, tmp_path):
    pen.link.close()
    recording = tmp_path / "run.csv"
    run = pen_command(board.url, "run", "--depth", "0.5", "--rate", "100", "--for", "1s",
                      "--record", str(recording))
    assert run.returncode == 0, run.stderr
    out = pen_command(board.url, "--json", "session", "end")
    assert out.returncode == 0 and '"open": "0"' in out.stdout, out.stderr
    listed = pen_command(board.url, "sessions", "export", "--format", "csv").stdout
    assert listed.splitlines()[0].startswith("n,profile,cartridge")
    assert len(listed.splitlines()) == 2
    report = tmp_path / "s1.html"
    done = pen_command(board.url, "sessions", "report", "1", "-o", str(report),
                       "--recording", str(recording))
    assert done.returncode == 0, done.stderr
    text = report.read_text()
    assert "Treatment session 1" in text and board.cartridge()["id"] in text
    assert "data:image/png;base64," in text  # the recording's plot
    missing = pen_command(board.url, "sessions", "show", "7")
    assert missing.returncode == 2 and "sessions there: 1" in missing.stderr


def test_a_test_cartridge_runs_only_in_test_mode_and_again_in_each_session(pen, board):
    ready(pen)
    test_id = board.insert_cartridge(test=True)
    with pytest.raises(RefusedError, match="test cartridge"):
        pen.start()
    pen.config(test_mode=1)  # keyed: the board's key holder only
    for _ in range(2):
        run_strokes(pen, board, 20)
        pen.session(end=True)
        assert last_session(pen).cartridge == test_id
    record = (board.flash_dir / "treatment.txt").read_text()
    assert record.count(test_id) == 2  # the session's line and one CART line, not one a session
    pen.config(test_mode=0)
    with pytest.raises(RefusedError, match="test cartridge"):
        pen.start()


def test_session_records_parse_as_the_board_writes_them():
    text = ("SESSION n=3 profile=cheeks cart=2d0102030405fe4c t0=1796100000 t1=1796100600 "
            "up0=1:200 up1=1:600200 needle_ms=600000 strokes=60000 dep=1.000 dep_max=1.020 "
            "hz=100.00 hz_max=101.50 end=operator faults=STALL,SPEED")
    s = parse(text)
    assert (s.n, s.strokes, s.needle_s, s.faults) == (3, 60000, 600.0, ["STALL", "SPEED"])
