"""The fault and event log on the board's flash, the boot counter, and resets reported
with their cause: watchdog after a hang, brown-out, power-on; the log across power cuts."""


import re

import pytest
from conftest import board_sleep, motor_stopped, patient_pen, quiet_flash, wait_until
from penctl import LinkError, UsageError
from penctl.firmware import wire
from penctl.sim.chip import PWRON_RESET, WDT_RESET

QUEUE_BOUND = 16  # firmware/eventlog.py _QUEUE: the most a power cut can take


def events(records, kind):
    return [r for r in records if r["event"] == kind]


def flushed(pen, text):
    """The log holds a record containing text, read back from the board (queued or
    written)."""
    wait_until(lambda: any(text in r["text"] for r in pen.log()), 3, "%r in the log" % text)


def test_log_keeps_boots_starts_stops_with_uptime_and_boot_number(ready_pen):
    ready_pen.start()
    board_sleep(0.3)
    ready_pen.stop()
    records = ready_pen.log()
    assert records == sorted(records, key=lambda r: r["seq"])
    boot = events(records, "BOOT")[-1]
    mine = [r for r in records if r["boot"] == boot["boot"]]
    texts = [r["text"] for r in mine]
    assert "STATE from=READY to=RUNNING" in texts and "STATE from=RUNNING to=READY" in texts
    start = texts.index("STATE from=READY to=RUNNING")
    assert mine[start]["uptime_ms"] <= mine[texts.index("STATE from=RUNNING to=READY")][
        "uptime_ms"]
    since = records[-1]["seq"] + 1
    assert ready_pen.log(since=since) == records[len(records):]  # nothing newer


def test_the_boot_counter_survives_a_reset(pen):
    before = events(pen.log(), "BOOT")[-1]["boot"]
    pen.reset()
    flushed(pen, "reset=HARD")
    assert events(pen.log(), "BOOT")[-1]["boot"] == before + 1


@pytest.mark.injects
def test_a_board_made_without_write_counting_says_so(board):
    # the wrapping costs the VM 2 KB of heap, so a default board (and its heap figure) is
    # without it; asking it for write points must not quietly answer 0
    with pytest.raises(UsageError, match="count_writes=True"):
        board.write_points()
    with pytest.raises(UsageError, match="count_writes=True"):
        board.cut_power_at(1)


@pytest.mark.injects
@pytest.mark.count_writes
def test_the_log_is_never_written_while_the_needles_run(ready_pen, board):
    # a flash write stalls the MicroPython VM: none may land between two control ticks
    quiet_flash(board)
    ready_pen.start()  # its treatment record is written before the needles move
    before = board.write_points()
    board.inject("overtemp", celsius=45)  # a HOT warning: an event while running
    wait_until(lambda: "HOT" in ready_pen.status().warnings, 2, "HOT warning")
    board.remove("overtemp")
    board_sleep(0.5)
    assert board.write_points() == before and ready_pen.status().state == "RUNNING"
    ready_pen.stop()
    quiet_flash(board)
    assert board.write_points() > before  # the queued records went out once it stopped
    texts = [r["text"] for r in ready_pen.log()]
    assert any(t.startswith("WARN w=HOT") for t in texts)


@pytest.mark.injects
def test_faults_and_clears_are_logged_with_their_readings(ready_pen, board):
    board.inject("overtemp", celsius=70)
    wait_until(lambda: ready_pen.status().state == "FAULT", 2, "OVERTEMP latched")
    board.remove("overtemp")
    board_sleep(0.6)  # the thermistor reading settles below the trip level
    ready_pen.clear()
    flushed(ready_pen, "CLEAR faults=OVERTEMP")
    fault = events(ready_pen.log(), "FAULT")[-1]["text"]
    # the reading that tripped it: one ADC sample of the thermistor (~0.4 C rms at 70 C)
    tc = re.search(r" tc=([0-9.]+) ", fault)
    assert "code=OVERTEMP" in fault and tc and abs(float(tc.group(1)) - 70) <= 2, fault


@pytest.mark.injects
def test_a_hang_is_reset_by_the_watchdog_with_the_motor_off_and_logged(running_pen, board):
    board.inject("hang")
    timeout_s = board.definition["timing"]["watchdog_ms"] / 1000
    wait_until(lambda: WDT_RESET in board.observe()["resets"], timeout_s + 2, "watchdog reset")
    assert motor_stopped(board)  # a reset leaves every output off
    running_pen.link.close()
    with patient_pen(board.url) as pen:
        assert pen.info["reset"] == "WATCHDOG"
        assert "WATCHDOG" in pen.status().faults and motor_stopped(board)
        flushed(pen, "reset=WATCHDOG")
        assert "code=WATCHDOG" in events(pen.log(), "FAULT")[-1]["text"]
        assert board.observe()["resets"].count(WDT_RESET) == 1
        assert motor_stopped(board)


@pytest.mark.injects
def test_a_hang_is_reset_on_time_while_the_host_stalls_the_link(running_pen, board):
    # a stalled link thread can keep a VM that writes waiting, and the watchdog leaves that
    # time out; a hung VM waits on nothing, and the watchdog once waited out the stall
    # too (9 s of a loaded run's link thread: the hung board never reset in the test's 4 s)
    timeout_s = board.definition["timing"]["watchdog_ms"] / 1000
    with board.bridge.starved():
        board.inject("hang")
        wait_until(lambda: WDT_RESET in board.observe()["resets"], timeout_s + 2,
                   "watchdog reset")
    assert motor_stopped(board)


@pytest.mark.injects
def test_a_brownout_is_reported_as_such_and_a_power_on_as_power_on(pen, board):
    resets = len(board.observe()["resets"])
    board.inject("brownout", volts=8.0, after_s=0.8)
    wait_until(lambda: len(board.observe()["resets"]) > resets, 4, "brown-out reset")
    assert board.observe()["resets"][-1] == PWRON_RESET  # all the ESP32 port can tell
    pen.link.close()
    with patient_pen(board.url) as again:
        assert again.info["reset"] == "BROWNOUT"
        records = again.log()
        assert "code=SUPPLY_LOW" in events(records, "FAULT")[-1]["text"]
        flushed(again, "reset=BROWNOUT")
    board.reset(PWRON_RESET)  # the supply plugged in again after a clean switch-off
    with patient_pen(board.url) as again:
        assert again.info["reset"] == "PWRON"


@pytest.mark.injects
def test_a_brownout_while_running_keeps_its_record_and_its_name(running_pen, board):
    # the supply monitor trips 50 ms into the sag and the chip browns out 250 ms later,
    # while the motor still coasts: the record must not wait for the motor to stop
    resets = len(board.observe()["resets"])
    board.inject("brownout", volts=9.5, after_s=0.3)
    wait_until(lambda: len(board.observe()["resets"]) > resets, 4, "brown-out reset")
    running_pen.link.close()
    with patient_pen(board.url) as again:
        assert again.info["reset"] == "BROWNOUT"
        assert "code=SUPPLY_LOW" in events(again.log(), "FAULT")[-1]["text"]


def run_and_stop(pen, started=None):
    pen.start()
    if started:
        started()
    board_sleep(0.2)
    pen.stop()


# the treatment record after a run (treatment.py, settings.write_atomic): open, its two lines
# (the session, the one cartridge), close, rename
RECORD_WRITE_POINTS = 5


RUN_RECORDS = ["STATE from=READY to=RUNNING", "STATE from=RUNNING to=READY"]


def run_with_power_cut(board, point):
    """Home, then a run whose log flush loses power at its write point `point`; returns
    (log before, log after the cut, boot number of the run)."""
    board.insert_cartridge()  # the last one's session ended with the power
    with patient_pen(board.url) as pen:
        pen.home()
        pen.set(depth_mm=0.5, rate_hz=100)
        quiet_flash(board)
        known = pen.log()
        resets = len(board.observe()["resets"])
        try:  # from the write points after START's own (its treatment record)
            run_and_stop(pen, lambda: board.cut_power_at(board.write_points() + point))
        except LinkError:
            pass  # the power failed while we were asking
    wait_until(lambda: len(board.observe()["resets"]) > resets, 5, "the power back")
    with patient_pen(board.url) as pen:
        return known, pen.log(), known[-1]["boot"]


@pytest.mark.long
@pytest.mark.injects
@pytest.mark.count_writes
def test_the_log_survives_a_power_cut_at_every_write_point_of_a_flush(ready_pen, board):
    quiet_flash(board)
    before = [0]
    run_and_stop(ready_pen, lambda: before.append(board.write_points()))
    quiet_flash(board)
    # the log's flush: open, one write a record, close; then the treatment record's
    points = 2 + len(RUN_RECORDS)
    assert board.write_points() - before[-1] == points + RECORD_WRITE_POINTS
    ready_pen.link.close()
    lost = []
    for point in range(1, points + 1):
        known, after, boot = run_with_power_cut(board, point)
        assert after[: len(known)] == known  # nothing flushed before the cut is lost
        tail = [r["text"] for r in after[len(known):] if r["boot"] == boot]
        assert tail == RUN_RECORDS[: len(tail)]  # whole records, in order; a torn one never
        assert events(after[len(known):], "BOOT")  # the board came back and logs again
        lost.append(len(RUN_RECORDS) - len(tail))
    assert lost[0] == len(RUN_RECORDS) and lost[-1] == 0  # cut at the open, cut at the close
    assert max(lost) <= QUEUE_BOUND


@pytest.mark.injects
def test_a_command_pending_across_a_restart_is_never_run_twice(pen, board):
    # the board restarts (watchdog) while a CLEAR is being resent: the new boot must not
    # run it (it would clear the WATCHDOG fault it just latched)
    board.inject("hang")
    # resends go on until the watchdog's 2 s have passed on the board: under load that
    # may be many host seconds (the client's own 5 s would answer NO_ANSWER first)
    pen.retries = 60
    with pytest.raises(LinkError) as restarted:
        pen.clear()
    assert restarted.value.code == "RESET"
    assert "WATCHDOG" in pen.status().faults  # the Pen said HELLO again; nothing ran


def test_a_board_answers_nothing_but_hello_after_a_restart(pen):
    boots = pen.link.boots
    pen.request("RESET")  # as the EN button would, without this host saying HELLO again
    wait_until(lambda: pen.link.boots > boots, 8, "the board's BOOT line")
    seq = pen._next_seq()
    pen.link.write_line(wire.frame("%d STATUS" % seq))  # as a host that missed the restart
    fields, message = pen.link.wait_reply(seq, 2.0)
    assert fields["err"] == "RESTARTED" and "HELLO" in message
