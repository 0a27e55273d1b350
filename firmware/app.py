# Builds the pen from the board definition and runs it under asyncio: the control
# tick at a fixed period, the serial link, and telemetry. Outputs are made safe on
# every way out (see main.py).
import asyncio
import binascii
import gc
import time

import board as boarddef
import machine
import protocol as P
import wire
from commands import Commands
from controller import Controller
from depth import Depth
from eventlog import EventLog
from link import STOP, Link
from micropython import const
from motor import Motor
from sensors import Sensors
from supervisor import Supervisor

_LINK_SHARE = const(75)  # percent of the UART telemetry may use
_STATS_WINDOW = const(100000)  # ticks before the figures roll over (small ints on ESP32)
_FLUSH_QUIET_MS = const(100)  # a burst of events goes to the flash in one write
_FLUSH_RETRY_MS = const(10000)  # after the flash refused a write
_ALLOC_LOOK_MS = const(100)  # how often the link task looks at the heap (TickStats.sample)
# Lines handled per pass of the link task, then it yields: a flood waits in the UART's
# buffer (and overflows it), never in front of the control tick. The task waits for the
# next RTOS tick (on the chip any wait shorter than one ends on its next 10 ms edge:
# FreeRTOS at 100 Hz), so it passes 100 times a second: 2 lines a pass are 200 a second,
# far more than a host sends (keepalives ~10/s). Each may be answered (an ERR is ~60
# bytes), and answers beyond the wire's 11.5 KB/s block the firmware in the UART's TX FIFO
# (one RTOS tick a refill), the control tick with it: test_link's flood, half bad frames,
# gets 6 KB/s of answers and telemetry 2.5 at 2 a pass, and the tick kept 77-100 % of its
# rate; at 3 a pass 61-100 %, and at 8 a pass (24 KB/s) the stalled depth loop tripped
# OVERDEPTH.
_LINK_LINES = const(2)


class TickStats:
    """The control tick's figures over a window of ticks, and the bytes every task
    allocates over the time since the last DIAG, for DIAG."""

    def __init__(self):
        self.ticks = 0
        self.window_ticks = 0
        self.tick_us_sum = 0
        self.tick_us_max = 0
        self._acc_ticks = self._acc_us = self._acc_max = 0
        self.alloc_bytes = self._seen = self._floor = self.since = self.sampled = 0
        self.restart(time.ticks_ms())

    def add(self, us):
        """One tick that took us."""
        self.ticks += 1
        self._acc_ticks += 1
        self._acc_us += us
        if us > self._acc_max:
            self._acc_max = us
        if self._acc_ticks >= _STATS_WINDOW:
            self.snapshot()

    def snapshot(self):
        """Publish the current window's figures and start a new window."""
        if self._acc_ticks:
            self.window_ticks = self._acc_ticks
            self.tick_us_sum = self._acc_us
            self.tick_us_max = self._acc_max
            self._acc_ticks = self._acc_us = self._acc_max = 0

    def sample(self, now_ms):
        """The heap's growth since the last look, added to alloc_bytes: what every task
        (tick, link, telemetry) allocated. gc.mem_alloc() walks the whole heap on the chip
        (~7000 blocks, a fraction of a ms), so the link task looks every _ALLOC_LOOK_MS and
        DIAG once, never the tick. A collection since the last look shows as a drop: then
        the heap above what the last collection made here left (restart()) is counted, and
        what was allocated between the last look and the collection is not: exact without
        a collection, short by at most one look's allocation for each (at 1 KB/s and ~50 KB
        free, 100 bytes a minute; at 35 KB/s, ~6 %)."""
        a = gc.mem_alloc()
        grown = a - self._seen
        self.alloc_bytes += grown if grown >= 0 else max(0, a - self._floor)
        self._seen = a
        self.sampled = now_ms

    def restart(self, now_ms):
        """A new allocation window, from a heap just collected."""
        self._seen = self._floor = gc.mem_alloc()
        self.alloc_bytes = 0
        self.since = self.sampled = now_ms


class App:
    def __init__(self, board):
        t = board["timing"]
        # the CPU's clock the board was designed for: ESP32_GENERIC boots at 160 MHz
        machine.freq(t["cpu_hz"])
        self.tick_ms = t["tick_ms"]
        self.baud = t["baud"]
        self.motor = Motor(board)
        self.depth = Depth(board)
        self.sensors = Sensors(board)
        cause = machine.reset_cause()
        self.ctl = Controller(board, self.motor, self.depth, self.sensors, Supervisor(board))
        self.log = EventLog()
        self.last_event_ms = 0
        if self.log.read_error is not None:
            self.log_failed("unreadable (%s); this boot starts a new count" % self.log.read_error)
        self.link = Link()
        self.stats = TickStats()
        # the chip's own id (its base MAC): what safety evidence from this board is filed by
        uid = binascii.hexlify(machine.unique_id()).decode()
        self.commands = Commands(self.ctl, self.link, self.log, self.stats, self.flush_log,
                                 board["name"], uid, P.reset_name(cause))
        # the settings in use; the reset cause BROWNOUT if it was one
        self.commands.boot(board, cause == machine.PWRON_RESET)
        self.wdt = machine.WDT(timeout=t["watchdog_ms"])
        if cause == machine.WDT_RESET:
            self.ctl.trip(P.F_WATCHDOG, "the previous run hung and was reset by the watchdog")
        self.ctl.post("BOOT", [
            ("reset", self.commands.reset_cause), ("fw", P.FIRMWARE_VERSION),
            ("proto", P.PROTOCOL_VERSION), ("board", board["name"])], first=True)

    def safe(self):
        self.motor.off()
        self.depth.stop()

    def tick(self):
        t0 = time.ticks_us()
        self.ctl.tick(time.ticks_ms(), t0)
        self.wdt.feed()  # only after the supervisor has judged this tick
        # the same for the drivers' monostable: no edges for its window, no drivers
        self.motor.heartbeat.value(self.stats.ticks & 1)
        self.stats.add(time.ticks_diff(time.ticks_us(), t0))

    async def control_task(self):
        # The period is a whole number of RTOS ticks (tests/test_board_timing.py): on the
        # chip this wait ends on a 10 ms edge, and a shorter period ran its ticks in pairs
        period = self.tick_ms
        due = time.ticks_ms()
        while True:
            # The handler here, in the task's frame made once, not in tick(): a call
            # whose locals, stack and handlers exceed 11 words gets its frame from the
            # heap (py/objfun.c, VM_MAX_STATE_ON_STACK), and tick()'s did, every tick
            try:
                self.tick()
            except Exception as e:
                self.ctl.internal_fault(e)
            due = time.ticks_add(due, period)
            wait = time.ticks_diff(due, time.ticks_ms())
            if wait < 0:
                due = time.ticks_ms()
                wait = 0
            await asyncio.sleep_ms(wait)

    def send_events(self):
        events = self.ctl.events
        while events:
            text = events.pop(0)
            self.link.send(wire.announce(text))
            now = time.ticks_ms()
            self.log.add(time.ticks_diff(now, self.ctl.boot_ms), text)
            self.last_event_ms = now

    def flush_log(self, at_once=False):
        # Flash writes stall the loop, so they wait until nothing moves.
        if not self.log.queue or not self.ctl.still():
            return
        at_once = at_once or self.ctl.faults  # a fault's record goes out without delay
        wait = _FLUSH_RETRY_MS if self.ctl.holds(P.W_LOG) else 0 if at_once else _FLUSH_QUIET_MS
        if time.ticks_diff(time.ticks_ms(), self.last_event_ms) < wait:
            return
        try:
            self.log.flush()
            self.ctl.warn(P.W_LOG, None)
        except OSError as e:
            self.last_event_ms = time.ticks_ms()
            self.log_failed("not written (%s)" % e)

    def record_run(self):
        """A run's figures into the treatment record, once the needles are still: a flash
        write stalls the loop. A record the flash refuses loses that run's figures only
        (the cartridge was committed at START)."""
        try:
            self.commands.run_ended()
        except Exception as e:
            self.ctl.ran = 0
            self.ctl.warn(P.W_LOG, "treatment record not written (%s)" % e)

    def log_failed(self, why):
        """One WARN for a log the flash will not take; the status shows LOG until it does."""
        self.ctl.warn(P.W_LOG, "event log %s" % why)

    async def link_task(self):
        link = self.link
        stats = self.stats
        while True:
            if time.ticks_diff(time.ticks_ms(), stats.sampled) >= _ALLOC_LOOK_MS:
                stats.sample(time.ticks_ms())
            self.send_events()
            for _ in range(_LINK_LINES):
                n = link.read_line()
                if n is None:
                    break
                if n == STOP:  # Ctrl-C: the realtime STOP, as the STOP command
                    self.ctl.stop(time.ticks_ms())
                else:
                    self.commands.handle(n, time.ticks_ms())
                self.send_events()
            self.flush_log()
            # after the log's records of the run (a flush waits for 100 ms of quiet)
            if self.ctl.ran and self.ctl.still() and (
                    not self.log.queue or self.ctl.holds(P.W_LOG)):
                self.record_run()
            if self.commands.reset_pending:
                self.safe()
                self.flush_log(at_once=True)  # a deliberate reset loses no record
                await asyncio.sleep_ms(50)  # let the reply leave the UART
                machine.reset()
            await asyncio.sleep_ms(1)  # to the next RTOS tick: 10 ms on the chip

    async def telemetry_task(self):
        # Telemetry never takes more than _LINK_SHARE % of the UART, whatever rate is
        # asked for, so replies and events always find room on the line.
        baud = self.baud
        while True:
            hz = self.ctl.params[P.P_TELEMETRY]
            if hz:
                bits = self.link.writer.telemetry(self.ctl.status()) * 10 * 1000 * 100
                wire_ms = -(-bits // (baud * _LINK_SHARE))  # rounded up: never above the share
                await asyncio.sleep_ms(max(1000 // hz, wire_ms))
            else:
                await asyncio.sleep_ms(100)

    async def main(self):
        self.ctl.boot_ms = time.ticks_ms()  # uptime of the boot records
        self.stats.restart(self.ctl.boot_ms)  # run() has just collected
        self.send_events()
        # the boot record first: it keeps the boot counter unique even if this run's later
        # records are lost
        self.flush_log(at_once=True)
        asyncio.create_task(self.link_task())
        asyncio.create_task(self.telemetry_task())
        await self.control_task()


def run():
    app = App(boarddef.load())
    gc.collect()
    try:
        asyncio.run(app.main())
    finally:
        app.safe()
