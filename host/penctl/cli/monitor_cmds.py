"""Watching and recording a session: `pen monitor`, `pen record`, `pen plot`."""

import collections
import math
import os
import queue
import select
import sys
import termios
import threading
import time
import tty
from contextlib import contextmanager

import click
from rich.console import Console
from rich.live import Live

from ..client import Status
from ..errors import LinkError, RefusedError
from ..monitor_view import MonitorSnapshot, monitor_view
from ..plot import render
from ..record import Recorder, describe_event
from . import command, emit, pen_of, port_of, stderr_console, warning_line
from .session_cmds import Duration

FRAME_S = 0.1  # the view's refresh period, and the longest a key waits to be read
STATUS_POLL_S = 1.0  # a STATUS request this often: the round-trip, and readings without telemetry
RATE_WINDOW_S = 2.0  # telemetry lines/s is counted over this window
RECENT_EVENTS = 8


# ---- pen monitor ------------------------------------------------------------------------------
class _Monitor:
    """The pen behind the monitor view: press() acts on a key at once, refresh() gathers
    what the next frame shows."""

    def __init__(self, pen, port, clock=time.monotonic, events=None):
        """events: where the board's events come from (a recording takes them first),
        by default the pen's queue."""
        self.pen = pen
        self._new_events = events or pen.events
        self.clock = clock
        self.started = clock()
        self.snap = MonitorSnapshot(port=port, elapsed_s=0.0)
        self._events = collections.deque(maxlen=RECENT_EVENTS)
        self._samples = collections.deque()  # (time, telemetry lines so far)
        self._last_poll = -math.inf
        self._actions = {"s": self._start, " ": self._stop, "c": self._clear, "h": self._home}

    def press(self, key):
        """Act on one key; False when it asks to quit."""
        key = key.lower()
        if key == "q":
            return False
        action = self._actions.get(key)
        if action is not None:
            self.snap.message = self._outcome(action)
        return True

    def _outcome(self, request):
        """What a request did, for the message line. A refusal, and a board restart that
        cut a request short, are shown rather than fatal; a lost link still ends the
        monitor (LinkError)."""
        try:
            return request()
        except RefusedError as e:
            return str(e)  # it says what was refused
        except LinkError as e:
            if e.code != "RESET":
                raise
            return "the board restarted: %s" % e

    def _start(self):
        self._timed(self.pen.start)  # its keepalive thread runs until stop or close()
        return "started"

    def _stop(self):
        # timeout=0: STOP is sent at once and the keepalive ends without waiting for the
        # ramp-down (the view shows that), so no other key waits behind a stop
        self.pen.stop(timeout=0)
        return "stopping"

    def _clear(self):
        return "cleared: %s" % self._timed(self.pen.clear)

    def _home(self):
        # HOME alone, not pen.home(): its wait for READY would keep a stop key waiting
        self._timed(self.pen.request, "HOME")
        return "homing"

    def _timed(self, request, *args):
        sent = self.clock()
        result = request(*args)
        self.snap.round_trip_ms = (self.clock() - sent) * 1000
        return result

    def refresh(self):
        now = self.clock()
        self.snap.elapsed_s = now - self.started
        self._take_events(now)
        self._take_telemetry(now)
        if now - self._last_poll >= STATUS_POLL_S:
            self._last_poll = now
            # a poll that went through returns None: the last command's message stays up
            self.snap.message = self._outcome(self._poll_status) or self.snap.message
        warnings = self.snap.status.warnings if self.snap.status else []
        self.snap.warnings = [warning_line(w) for w in warnings]
        return self.snap

    def _poll_status(self):
        # one try: on a lossy link a resend would keep the next key (space: stop) waiting
        fields, _ = self._timed(self.pen.request, "STATUS", 0)
        self.snap.status = Status.from_fields(fields)

    def _take_events(self, now):
        for name, fields, message in self._new_events():
            self._events.append((now - self.started, name, describe_event(fields, message)))
        self.snap.events = list(self._events)

    def _take_telemetry(self, now):
        counts, latest = self.pen.link.counts, self.pen.link.latest
        lines = counts["telemetry"]
        if lines != self.snap.telemetry_lines and latest:
            self.snap.status = Status.from_fields(latest)
        self.snap.telemetry_lines = lines
        self.snap.bad_lines = counts["bad_lines"]
        self._samples.append((now, lines))
        while now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        since, lines_then = self._samples[0]
        self.snap.telemetry_per_s = (lines - lines_then) / (now - since) if now > since else 0.0


@contextmanager
def _keys_from(stream):
    """stream's file descriptor, in cbreak mode if it is a terminal (each key arrives at
    once, unechoed); the terminal's settings come back however the monitor ends."""
    fd = stream.fileno()
    if not os.isatty(fd):
        yield fd
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_keys(fd, timeout):
    """The keys typed within timeout s ("" if none); None once stdin is closed."""
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return ""
    try:
        data = os.read(fd, 64)
    except OSError:  # EIO: the terminal hung up
        return None
    return data.decode("ascii", "replace") if data else None


def _run_monitor(monitor, live, keys_fd):
    while True:
        live.update(monitor_view(monitor.refresh()), refresh=True)
        keys = _read_keys(keys_fd, FRAME_S)
        if keys is None:
            return  # nobody is left to press stop: quit, and close() stops the needles
        for key in keys:
            if not monitor.press(key):
                return


class _Recording:
    """`pen monitor --record`: a thread writes each telemetry line as it arrives (the
    monitor's frames, 0.1 s apart, would time it too coarsely) and each event, which it
    then hands to the monitor to show."""

    def __init__(self, recorder):
        self.recorder = recorder
        self._events = queue.Queue()
        recorder.on_event = lambda *event: self._events.put(event)
        self._stop = threading.Event()
        self.error = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="pen-record")
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.recorder.poll()
            except LinkError:  # no telemetry (off, or the board restarting): events go on
                self.recorder.write_events()
            except Exception as e:  # noqa: BLE001 - the monitor's thread reports it
                self.error = e
                return

    def events(self):
        out = []
        while not self._events.empty():
            out.append(self._events.get_nowait())
        return out

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)
        if self.error is not None:
            raise self.error


@contextmanager
def _recorded(pen, path):
    if path is None:
        yield None
        return
    with Recorder(pen, path) as recorder:
        recording = _Recording(recorder)
        try:
            yield recording
        finally:
            recording.stop()


@command()
@click.option("--record", "record_path", type=click.Path(dir_okay=False), default=None,
              help="also record telemetry and events to this CSV (as `pen record` does)")
def monitor(ctx, record_path):
    """Full-screen live view with keys: s start, space stop (at once), c clear, h home,
    q quit. Quitting with the needles running stops them."""
    # with --json the view goes to stderr and stdout gets the last frame's data
    console = Console(stderr=ctx.obj["json"])
    on_screen = console.file.isatty()
    with pen_of(ctx) as pen, _recorded(pen, record_path) as recording, \
            _keys_from(sys.stdin) as keys_fd, \
            Live(console=console, screen=on_screen, auto_refresh=False,
                 transient=ctx.obj["json"]) as live:
        watched = _Monitor(pen, port_of(ctx), events=recording and recording.events)
        _run_monitor(watched, live, keys_fd)
    if ctx.obj["json"]:
        emit(ctx, watched.snap, None)
    if recording is not None and not ctx.obj["json"]:
        r = recording.recorder
        click.echo("recorded %d lines (%d telemetry, %d events) to %s" % (
            r.rows, r.telemetry_rows, r.event_rows, r.path), err=True)


# ---- pen record -----------------------------------------------------------------------------
def _progress(recorder):
    return "recording to %s: %d lines (%d telemetry, %d events), %.1f s  (Ctrl-C ends it)" % (
        recorder.path, recorder.rows, recorder.telemetry_rows, recorder.event_rows,
        recorder.elapsed_s)


@command()
@click.option("-o", "--output", "path", required=True, type=click.Path(dir_okay=False),
              help="CSV file to write")
@click.option("--for", "seconds", type=Duration(), default=None,
              help="stop after this long, e.g. 30s, 2m (default: Ctrl-C)")
def record(ctx, path, seconds):
    """Record telemetry lines and board events to CSV until Ctrl-C or --for."""
    ended_by = "time"
    with pen_of(ctx) as pen, Recorder(pen, path) as recorder, \
            Live(console=stderr_console(), transient=True, refresh_per_second=4) as live:
        try:
            recorder.run(seconds or math.inf,
                         on_progress=lambda r: live.update(_progress(r)))
        except KeyboardInterrupt:
            ended_by = "interrupt"  # the ordinary end of an open-ended recording
    summary = {"path": str(recorder.path), "seconds": round(recorder.elapsed_s, 3),
               "rows": recorder.rows, "telemetry": recorder.telemetry_rows,
               "events": recorder.event_rows, "ended_by": ended_by}
    if ctx.obj["json"]:
        emit(ctx, summary, None)
    else:
        click.echo("recorded %(rows)d lines (%(telemetry)d telemetry, %(events)d events) in "
                   "%(seconds).1f s to %(path)s" % summary, err=True)


# ---- pen plot -------------------------------------------------------------------------------
@command()
@click.argument("csv_path", metavar="SESSION.CSV")
@click.option("-o", "--output", "png_path", type=click.Path(dir_okay=False), default=None,
              help="PNG file to write (default: the CSV's name with .png)")
def plot(ctx, csv_path, png_path):
    """Plot a recording: rate, depth, current and temperature against time, faults marked
    (needs matplotlib: pip install 'penctl[plot]')."""
    png = render(csv_path, png_path or os.path.splitext(csv_path)[0] + ".png")
    emit(ctx, {"png": str(png)}, "plotted %s" % png)
