"""Integrity of the serial link: CRC, duplicate sequence numbers, silent host."""

import os
import threading
import time

import pytest
import serial
from conftest import (
    Background,
    board_sleep,
    motor_stopped,
    service_repl,
    vm_kept_waiting,
    wait_until,
)
from hazards import stated_reaction_ticks
from penctl import LinkError
from penctl.firmware import protocol as P
from penctl.firmware import wire
from penctl.sim.vm import simhw


def test_corrupted_frame_refused_and_not_executed(pen):
    line = wire.frame("%d HOME" % pen._next_seq())
    corrupted = line[:-1] + ("0" if line[-1] != "0" else "1")
    pen.link.write_line(corrupted)
    reply = pen.link.wait_reply(-1, 1.0)
    assert reply[0]["err"] == "BAD_CRC" and reply[0]["garbled"]
    board_sleep(0.1)
    assert pen.status().state == "IDLE"


def test_garbage_and_overlong_lines_do_not_break_the_link(pen):
    pen.link.write_raw(b"\x00\xff garbage \x1b[2J\n" + b"x" * 500 + b"\n")
    board_sleep(0.2)
    assert pen.status().state == "IDLE"


def test_repeated_sequence_number_gets_first_answer_without_running_twice(pen):
    seq = pen._next_seq()
    line = wire.frame("%d HOME" % seq)
    pen.link.write_line(line)
    first = pen.link.wait_reply(seq, 1.0)
    board_sleep(1.5)  # homing done; no other command in between, as in a real retry
    pen.link.write_line(line)  # a retry of a reply we "lost"
    again = pen.link.wait_reply(seq, 1.0)
    assert again == first
    board_sleep(0.2)
    assert pen.status().state == "READY"  # a second HOME would have gone back to HOMING
    homing = [e for e in pen.events() if e[0] == "STATE" and e[1]["to"] == "HOMING"]
    assert len(homing) == 1


@pytest.mark.injects
def test_silent_host_during_run_stops_motor_within_link_timeout(running_pen, board):
    timeout_ms = board.definition["limits"]["link_timeout_ms"]  # the board's default
    running_pen.set(link_timeout=timeout_ms)
    running_pen.keepalive.stop()  # the host goes silent
    silent_from = board.ticks()
    wait_until(lambda: motor_stopped(board), 2.0, "motor off after link timeout")
    # the firmware's timeout runs on its own clock: however busy the host, no more of its
    # ticks than the timeout (and a tick to act) pass before the motor is off
    cut = max(board.written_at_tick(pin) for pin in ("motor_pwm", "motor_enable"))
    took_ms = (cut - silent_from) * board.definition["timing"]["tick_ms"]
    assert took_ms <= timeout_ms + 20, "motor off %d ms after the host fell silent" % took_ms
    assert "LINK_LOST" in running_pen.status().faults


@pytest.mark.injects
def test_a_run_outlasts_lost_keepalives_at_the_default_link_timeout(running_pen, board):
    # one lost byte loses a keepalive or its answer: the next must still go out on time,
    # not after a reply timeout (1 s) or a REPL probe (seconds), or the run stops
    running_pen.set(link_timeout=board.definition["limits"]["link_timeout_ms"])
    board.link_faults(drop=0.002, seed=3)  # about one keepalive or answer in twenty
    board_sleep(4.0)
    board.link_faults()
    dropped = board.bridge.stats["dropped"]
    st = running_pen.status()
    assert st.state == "RUNNING" and dropped > 0, (dropped, running_pen.faults())


def _run_queue_wait_s(board):
    with open("/proc/%d/schedstat" % board.proc.pid) as f:
        return int(f.read().split()[1]) / 1e9


@pytest.mark.injects
@pytest.mark.parametrize("how", ["stopped", "run_queue"])
def test_a_vm_the_host_keeps_from_running_sees_no_time_pass(running_pen, board, how):
    # A busy host can keep the VM from running for a second and more; a chip's CPU is
    # its own and never stops. The firmware's clock must not jump by the host's second:
    # its uptime moves by what the chip lived, and the run outlasts the wait (a jump saw
    # the link silent for the second: LINK_LOST at the default timeout). The run keeps
    # the longest link timeout: this host's keepalive thread may be kept waiting too.
    started = time.monotonic()
    before = running_pen.status().uptime_ms
    waited = _run_queue_wait_s(board)
    with vm_kept_waiting(board, how):
        time.sleep(1.5)  # the host's time, none of the chip's
    waited = _run_queue_wait_s(board) - waited
    after = running_pen.status().uptime_ms
    host_ms = (time.monotonic() - started) * 1000
    if how == "stopped":
        assert after - before < 700, "the firmware's clock jumped %d ms" % (after - before)
    else:
        # how long the kernel really kept it waiting varies with the rest of the host's
        # work: the chip's clock leaves out whatever it was
        assert waited > 0.1, "the VM waited only %.2f s in the run queue" % waited
        assert after - before < host_ms - waited * 1000 + 50, (
            "the firmware's clock moved %d ms in %d ms of host time, %d of them waiting for "
            "a CPU" % (after - before, host_ms, waited * 1000))
    board_sleep(0.5)
    st = running_pen.status()
    assert st.state == "RUNNING" and not st.faults, running_pen.faults()
    # nor did its world run ahead of it: a control tick past its last look at the most
    ahead = board.world_ahead_max_ms
    assert ahead <= board.definition["timing"]["tick_ms"] + 1, "the world ran %d ms ahead" % ahead


@pytest.mark.injects
def test_a_chip_that_only_reads_its_clock_tells_its_world_where_it_is(board):
    # The world follows the chip's clock as the VM tells it. A VM that woke from a wait
    # for a CPU only to read a line, without touching its hardware, once told nothing:
    # the world took an old figure of what the clock had left out, ran ahead of the chip,
    # and the next ticks saw a turning motor give no pulses (TACH_LOST in a loaded run).
    repl = service_repl(board)
    try:
        for _ in range(3):
            told = int(repl.exec("import time\ntime.sleep_ms(20)\nprint(time.ticks_ms())"))
            assert 0 <= (told - board.regs[simhw.H_VM_MS]) % 2**32 <= 1
    finally:
        repl.close()


@pytest.mark.injects
def test_the_hosts_own_waits_on_the_flashs_files_are_none_of_the_chips_time(board, tmp_path):
    # The flash's files are the host's: a busy host's disk once held a settings file's
    # rename 2 s in its kernel, the chip's clock ran on and the watchdog reset a firmware
    # that had not hung. Here the host holds a file's opening and writing 0.4 s (a FIFO
    # in the flash's directory, read only then): the chip's clock must leave that out.
    repl = service_repl(board)
    try:
        os.mkfifo(board.flash_dir / "slow")

        def read_late():
            time.sleep(0.4)
            with open(board.flash_dir / "slow", "rb") as f:
                f.read()

        reader = threading.Thread(target=read_late)
        reader.start()
        took = int(repl.exec("import time\nt = time.ticks_ms()\nf = open('slow', 'w')\n"
                             "f.write('x')\nf.close()\nprint(time.ticks_diff(time.ticks_ms(), t))"))
        reader.join()
        assert took < 100, "the chip's clock counted %d ms of the host's file wait" % took
    finally:
        repl.close()


@pytest.mark.injects
def test_board_time_stands_while_the_chip_waits_for_its_link(running_pen, board):
    # A test's wait counts the board's time: its ticks, or, when none run, the chip's
    # clock. A chip waiting for its link runs no tick, and its clock leaves the wait out;
    # a wait that took the host's clock then ended early (a flash "quiet" for 0.4 s that
    # the firmware never lived: its log flush landed in the next test step).
    released = threading.Event()

    def hold_the_link():
        with board.bridge.starved():
            time.sleep(1.5)
        released.set()

    holder = threading.Thread(target=hold_the_link)
    holder.start()
    try:
        time.sleep(0.3)  # the chip has begun to wait
        board_sleep(0.5)
        assert released.is_set(), "0.5 s of board time passed while the chip waited"
    finally:
        holder.join()


@pytest.mark.injects
def test_a_link_the_host_holds_up_is_no_silence_to_the_board(running_pen, board):
    # The virtual board's UART is a host thread behind the host's PTY, and a busy host holds
    # either for seconds (a loaded run: the link thread 12 s behind in one test, LINK_LOST at
    # the default timeout); a chip's UART never stops. The host's keepalives go on meanwhile.
    # The chip waits for its link, off its clock: seconds of it are no time to the chip, nor
    # a hung firmware to the heartbeat's monostable (the wait's own CPU time once was).
    running_pen.set(link_timeout=board.definition["limits"]["link_timeout_ms"])
    before = running_pen.status().uptime_ms
    drops = board.heartbeat_drops()
    with board.bridge.starved():
        time.sleep(4)  # the host's time, in which the link carries nothing
    lived = running_pen.status().uptime_ms - before
    assert lived < 700, "the chip's clock moved %d ms while its link was held 4 s" % lived
    board_sleep(0.5)
    st = running_pen.status()
    assert st.state == "RUNNING" and not st.faults, running_pen.faults()
    assert board.heartbeat_drops() == drops


@pytest.mark.injects
def test_cut_link_during_run_stops_motor(running_pen, board):
    running_pen.set(link_timeout=board.definition["limits"]["link_timeout_ms"])
    board.inject("link_cut")
    wait_until(lambda: motor_stopped(board), 2.0, "motor off after link cut")
    board.remove("link_cut")
    assert "LINK_LOST" in running_pen.status().faults


LOSSY_COMMANDS = int(os.environ.get("PEN_LOSSY_COMMANDS", "200"))


def run_each_once(pen, board, name, values, retries, timeout, **link_faults):
    """SET `name` to each value through a degraded link; the client's retries must get
    every command through and the board's own counter must show each ran once."""
    pen.set(telemetry=0)
    before = pen.diag()["executed"]
    patience = pen.retries, pen.timeout
    pen.retries, pen.timeout = retries, timeout
    board.link_faults(**link_faults)
    for value in values:
        pen.set(**{name: value})
    board.link_faults()
    pen.retries, pen.timeout = patience
    assert pen.get()[name] == str(values[-1])
    assert pen.diag()["executed"] - before == len(values) + 2  # + the GET and this DIAG


@pytest.mark.long(9)
@pytest.mark.injects
@pytest.mark.parametrize("seed", [11, 12, 13, 14])  # four boards at once: 200 commands in all
def test_every_command_runs_exactly_once_through_a_lossy_link(pen, board, seed):
    # 1 % of bytes dropped and 1 % corrupted, both ways
    values = [100 + 10 * (i % 190) for i in range(LOSSY_COMMANDS // 4)]
    # a short timeout keeps the test quick (most failed tries end in one), many tries
    # make it patient with a busy host: 120 s without an answer (a busy host's kernel
    # held every PTY's bytes for 45 s at once)
    run_each_once(pen, board, "link_timeout", values, 1200, 0.1, drop=0.01, corrupt=0.01,
                  seed=seed)
    stats = board.bridge.stats
    assert stats["corrupted"] > 0 and stats["dropped"] > 0


@pytest.mark.long
@pytest.mark.injects
def test_delayed_and_duplicated_bytes_still_run_each_command_once(pen, board):
    run_each_once(pen, board, "run_limit", list(range(100, 120)), 400, 0.3, duplicate=0.01,
                  delay_s=0.08, seed=5)


WIRE_BYTES_PER_S = 115200 // 10  # 8N1: ten bits a byte


class Flood(Background):
    """A second writer on the board's port, at `factor` times the wire rate, from a host
    thread: newline-ended lines (valid KA frames and frames with a bad CRC, which the
    board answers), or printable bytes that never end a line."""

    def __init__(self, port, kind, first_seq, factor=4):
        self.serial = serial.serial_for_url(port, baudrate=115200, exclusive=False)
        self.rate = WIRE_BYTES_PER_S * factor
        if kind == "lines":
            lines = []
            for i in range(40):
                line = wire.frame("%d KA" % (first_seq + i))
                lines.append(line if i % 2 else line[:-1] + ("0" if line[-1] != "0" else "1"))
            self.chunk = ("\n".join(lines) + "\n").encode()
        else:
            self.chunk = b"0123456789abcdefghijklmnopqrstuvwxyz" * 16
        self.sent = 0

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.is_set():
            due = self.sent / self.rate - (time.monotonic() - t0)
            if due > 0:
                self._stop.wait(min(due, 0.01))
                continue
            self.serial.write(self.chunk)
            self.sent += len(self.chunk)

    def stop(self):
        super().stop()
        self.serial.close()


@pytest.mark.injects
@pytest.mark.parametrize("factor", [4, 100])
@pytest.mark.parametrize("kind", ["lines", "bytes"])
def test_a_flood_on_the_link_does_not_starve_the_control_tick(running_pen, board, kind,
                                                              factor):
    # 4x the wire rate, and far beyond: the UART carries it at its baud rate (the writer
    # waits, as a real host's does, once the host's buffer is full), and what the board
    # leaves unread overflows its RX ring
    # the flood drowns the Pen's own keepalives: only a fault we inject may stop the motor
    running_pen.set(link_timeout=2000)
    first_seq = (running_pen._seq + 20000) % (P.SEQ_MAX - 100) + 1
    stats = board.bridge.stats
    reached = stats["to_vm"] + stats["rx_overflow"]
    with Flood(board.url, kind, first_seq, factor) as flood:
        ticks, chip = board.ticks(), board.chip_seconds()
        board_sleep(0.5)
        ticks, chip = board.ticks() - ticks, board.chip_seconds()[0] - chip[0]
        assert board.observe()["motor_duty"] > 0, "the motor stopped before the injection: " \
            + "; ".join(line for line in board.output().splitlines() if "FAULT" in line)
        # the tick kept (most of) its period in the chip's time: a link task that answers
        # the flood beyond the wire waits in the UART's TX FIFO, and the tick with it (the
        # firmware kept 77-100 %; a link task without its bound on lines 43 %)
        period_s = board.tick_s
        assert ticks >= 0.6 * chip / period_s, "%d ticks in %.2f s of the chip's clock" % (
            ticks, chip)
        board.inject("overtemp")
        wait_until(lambda: motor_stopped(board), 5.0, "motor off after overtemp under a flood")
        board_sleep(0.5)  # the flood goes on with the motor stopped: no watchdog reset now either
        flooded = flood.sent
    # at least half a second of the wire's bytes reached the chip (>= 1 s of board time)
    reached = stats["to_vm"] + stats["rx_overflow"] - reached
    assert reached >= min(flooded, WIRE_BYTES_PER_S // 2)
    stated = stated_reaction_ticks("overtemp", board.definition)
    assert board.reaction_ticks() is not None
    assert 0 < board.reaction_ticks() <= stated, "motor off after %s ticks, stated %d" % (
        board.reaction_ticks(), stated)
    assert 3 not in board.observe()["resets"], "the watchdog reset the board under the flood"
    board.remove("overtemp")
    # the board works off what the flood left in its UART buffer, answering each bad frame
    wait_until(lambda: _latched(running_pen, "OVERTEMP"), 30.0, "the link answers again")


def _latched(pen, code):
    try:
        return code in pen.status().faults
    except LinkError:
        return False


@pytest.mark.injects
def test_a_second_writer_taking_the_pens_next_numbers_cannot_fake_a_stop(running_pen, board):
    # Another program on the port sends KA frames under the numbers the Pen will use next:
    # the board must not answer the Pen's STOP (nor its STATUS) with what it answered them.
    running_pen.set(link_timeout=2000)
    other = serial.serial_for_url(board.url, baudrate=115200, exclusive=False)
    try:
        first = running_pen._seq + 1
        other.write(b"".join(wire.frame("%d KA" % ((first + i - 1) % P.SEQ_MAX + 1)).encode()
                             + b"\n" for i in range(8)))
        other.flush()
        board_sleep(0.3)  # all eight answered (the Pen's keepalive may take some numbers)
        st = running_pen.stop()
    finally:
        other.close()
    assert st.state == "READY" and st.faults == []
    wait_until(lambda: motor_stopped(board), 1, "motor off after STOP")
    board_sleep(0.5)
    st = running_pen.status()
    assert st.state == "READY" and st.faults == [], "stopped by STOP, not by a lost link"


def test_a_reused_sequence_number_is_refused_and_hello_forgets_the_numbers(pen):
    seq = pen._next_seq()
    pen.link.write_line(wire.frame("%d STATUS" % seq))
    assert "st" in pen.link.wait_reply(seq, 1.0)[0]
    pen.link.write_line(wire.frame("%d HOME" % seq))  # the same number for another frame
    assert pen.link.wait_reply(seq, 1.0)[0] == {"err": "SEQ_REUSED"}
    board_sleep(0.2)
    assert pen.status().state == "IDLE"  # HOME did not run
    pen.request("HELLO")  # a new session: the numbers before it are not this host's
    pen.link.write_line(wire.frame("%d HOME" % seq))
    assert pen.link.wait_reply(seq, 1.0)[0].get("err") is None
    pen.wait_for("READY")
