"""Cartridge identity and single use: the board reads each cartridge's 1-Wire ID chip at
START, refuses one without a readable id, one used in an earlier session (by its own record
or by the mark a pen left on the chip), and one at its stroke limit; a run stops at that
limit. The record survives a power cut at any of its write points."""

import pytest
from conftest import board_sleep, patient_pen, quiet_flash, run_strokes, wait_until
from penctl import RefusedError
from penctl.errors import LinkError

pytestmark = pytest.mark.injects

def ready(pen):
    pen.home()
    pen.set(depth_mm=0.5, rate_hz=100)


def start_refused(pen, *words):
    with pytest.raises(RefusedError) as refused:
        pen.start()
    assert refused.value.code == "PRECONDITION"
    for word in words:
        assert word in str(refused.value), str(refused.value)
    return str(refused.value)


def session(pen):
    return pen.request("SESSION")[0]


def test_a_new_cartridge_runs_and_carries_its_mark(pen, board):
    ready(pen)
    cart = board.cartridge()["id"]
    assert board.cartridge()["row"] is None  # as it left the factory
    run_strokes(pen, board, 50)
    wait_until(lambda: board.cartridge()["row"][0] > 0, 5, "the cartridge's count after the run")
    s = session(pen)
    assert (s["open"], s["cart"]) == ("1", cart)
    strokes, tag, n = board.cartridge()["row"]
    assert tag == int(pen.info["uid"][-4:], 16) and n == int(s["n"]) % 256
    assert strokes == int(s["strokes"]) >= 50


def test_the_same_cartridge_goes_on_within_its_session_even_refitted(pen, board):
    ready(pen)
    run_strokes(pen, board, 20)
    cart = board.cartridge()
    board.remove_cartridge()
    start_refused(pen, "no cartridge")
    board.insert_cartridge(id=cart["id"], memory=cart["memory"])
    run_strokes(pen, board, 20)
    assert session(pen)["n"] == "1"


def test_a_cartridge_from_an_ended_session_is_refused(pen, board):
    ready(pen)
    run_strokes(pen, board, 20)
    cart = board.cartridge()
    ended = pen.request("SESSION", end=1)[0]
    assert ended["open"] == "0"
    why = start_refused(pen, cart["id"], "session 1", "ended")
    assert "fit a new one" in why
    board.insert_cartridge()  # a new one opens session 2
    pen.start()
    pen.stop()
    pen.wait_for("READY")
    assert session(pen)["n"] == "2"


@pytest.mark.parametrize("fault", ["no_chip", "bad_crc", "not_a_cartridge"])
def test_a_cartridge_without_a_good_id_is_refused(pen, board, fault):
    ready(pen)
    if fault == "no_chip":
        board.insert_cartridge(chip=False)
        start_refused(pen, "no cartridge ID chip")
    elif fault == "bad_crc":
        board.insert_cartridge(bad_crc=True)
        start_refused(pen, "CRC")
    else:  # another 1-Wire part on the bus: a DS18B20 (family 28)
        board.insert_cartridge(id=_with_crc("280a0b0c0d0e0f"))
        start_refused(pen, "family 28")
    assert board.observe()["motor_duty"] == 0


def _with_crc(seven_hex):
    from penctl.firmware.cartridge_mark import crc8

    rom = bytes.fromhex(seven_hex)
    return (rom + bytes((crc8(rom),))).hex()


def test_a_wiped_cartridge_is_still_refused_by_the_boards_record(pen, board):
    # its chip's memory rewritten (refurbished, tampered): the mark is gone, the id stays
    ready(pen)
    run_strokes(pen, board, 20)
    cart = board.cartridge()["id"]
    pen.session(end=True)
    board.insert_cartridge(id=cart)
    assert board.cartridge()["row"] is None
    start_refused(pen, cart, "session 1", "ended")


def test_a_cartridge_another_pen_marked_is_refused(pen, board):
    ready(pen)
    board.insert_cartridge(used_by="240ac4a1b2c3", strokes_used=5000)
    start_refused(pen, "marked used", "pen b2c3")


def test_the_stroke_limit_refuses_a_spent_cartridge_and_stops_a_run(pen, board):
    limit = board.definition["limits"]["cartridge_strokes"]
    ready(pen)
    board.insert_cartridge(strokes_used=limit)
    start_refused(pen, "stroke limit", "%d of %d" % (limit, limit))
    board.insert_cartridge(strokes_used=limit - 120)
    pen.start()
    pen.wait_for("READY", timeout=30)  # the board stopped the run itself
    events = [e for e in pen.events() if e[0] == "LIMIT"]
    assert events, "no LIMIT event"
    wait_until(lambda: board.cartridge()["row"][0] >= limit, 5, "the count after the run")
    strokes = board.cartridge()["row"][0]
    assert limit <= strokes <= limit + 20  # the ramp down's few strokes after the limit
    start_refused(pen, "stroke limit")


@pytest.mark.long(75)
@pytest.mark.count_writes
def test_a_power_cut_at_every_write_point_of_the_record_leaves_it_consistent(board):
    """START commits a new cartridge (the record, then the chip's mark); a run's end folds
    its figures in. A cut at any write point of either leaves a record the board reads,
    and a cartridge either unknown (new: it runs) or known (refused after the power-off,
    which ended its session): never half."""
    outcomes = []
    for phase in ("start", "run"):
        point = 1
        while True:
            cut, outcome = _cut_at(board, phase, point)
            outcomes.append((phase, point, outcome))
            if not cut:
                break
            point += 1
    starts = [o for p, _, o in outcomes if p == "start"]
    assert starts[0] == "new" and starts[-1] == "refused", outcomes
    assert len(outcomes) > 4, outcomes


def _cut_at(board, phase, point):
    """Fit a new cartridge, cut the power at write point `point` of START's commit or of
    the run's record; returns (whether the power was cut, what the same cartridge meets
    after the power came back: "new" (it ran) or "refused" (used))."""
    board.power_cuts = 0
    cart = board.insert_cartridge()
    with patient_pen(board.url) as pen:
        ready(pen)
        quiet_flash(board)
        try:
            if phase == "start":
                board.cut_power_at(board.write_points() + point)
                pen.start()
                pen.stop()
            else:
                pen.start()
                board.cut_power_at(board.write_points() + point)
                pen.stop()
                pen.wait_for("READY")
            quiet_flash(board)
        except (LinkError, RefusedError):
            pass  # the power failed before the answer
    cut = board.power_cuts > 0
    board.cut_power_at(0)
    if cut:
        wait_until(lambda: board.observe()["vm_running"], 5, "the board back after the cut")
        board_sleep(0.3)
    else:
        board.power_cycle()
    with patient_pen(board.url) as pen:
        warned = [r["text"] for r in pen.log() if r["text"].startswith("WARN w=LOG")]
        assert not warned, (phase, point, warned)  # the record read back whole
        ready(pen)
        board.insert_cartridge(id=cart, memory=board.cartridge()["memory"])
        try:
            pen.start()
            pen.stop()
            pen.wait_for("READY")
            outcome = "new"
        except RefusedError as e:
            assert e.code == "PRECONDITION" and cart in str(e), str(e)
            outcome = "refused"
    return cut, outcome
