"""Session recordings: telemetry lines and board events as CSV rows, and reading them back.

One row per telemetry line or event, timed on the host's monotonic clock from the start
of the recording (the board's uptime restarts with the board; the host's clock does not).
"""

import csv
import math
import time
from pathlib import Path

from . import patience
from .errors import UsageError
from .firmware import wire
from .status import FIELDS

# A column per status field, named by its Status attribute; a number is written with the
# wire's own decimals (status.Field.text), exactly as the board sent it.
COLUMNS = ("time_s", "kind") + tuple(f.attribute for f in FIELDS) + ("event", "detail")
NUMBERS = tuple(f.attribute for f in FIELDS if f.decimals is not None)
_NAMES = tuple(f.attribute for f in FIELDS if f.names)


def describe_event(fields, message):
    """An event's fields and message as one text: `code=OVERTEMP tc=60.0 : why`."""
    return wire.text("", list(fields.items()), message)


def parse_event(detail):
    """(fields, message) back from describe_event()'s text."""
    _, fields, message = wire.split_text(detail)
    return dict(fields), message


class Recorder:
    """Writes a Pen's telemetry and events to a CSV file while run() or poll() is called.

    Use as a context manager: the header is written on entry, the file closed on exit;
    what the pen received before entry is not recorded.
    Rows are line-buffered, so a recording cut short (Ctrl-C, kill) keeps what it had.
    """

    def __init__(self, pen, path, telemetry_timeout=None, clock=time.monotonic, on_event=None):
        """on_event(name, fields, message) is called for each event written, for a
        caller that shows them too (the events are the recorder's to take)."""
        self.pen = pen
        self.on_event = on_event
        self.path = Path(path)
        # 2 s without a telemetry line, times PEN_TIMEOUT_SCALE, is a silent board
        self.telemetry_timeout = patience.scaled(2.0) if telemetry_timeout is None \
            else telemetry_timeout
        self.clock = clock
        self.telemetry_rows = 0
        self.event_rows = 0
        self._file = None

    @property
    def rows(self):
        return self.telemetry_rows + self.event_rows

    @property
    def elapsed_s(self):
        return self.clock() - self.started

    def __enter__(self):
        try:
            self._file = open(self.path, "w", newline="", buffering=1)  # closed by __exit__
        except OSError as e:
            raise UsageError("cannot write %s: %s" % (self.path, e.strerror or e)) from e
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        self.started = self.clock()
        # lines and events queued before the start are left out: they would get a time
        # they did not arrive at
        self.pen.events()
        self._telemetry = self.pen.telemetry(timeout=self.telemetry_timeout, fresh=True)
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self._write_events()
        finally:
            self._file.close()

    def run(self, seconds=math.inf, on_progress=None):
        """Record for `seconds` (until interrupted by default); on_progress(self) after
        every telemetry line. A silent board raises LinkError after telemetry_timeout."""
        deadline = self.clock() + seconds
        while self.clock() < deadline:
            self.poll()
            if on_progress is not None:
                on_progress(self)

    def poll(self):
        """Wait for the next telemetry line and write it, after the events that came
        before it."""
        self.take(next(self._telemetry))

    def take(self, status):
        """Write a telemetry line that someone else read from the pen just now (`pen run
        --record`: the pass follows the telemetry), after the events that came before it."""
        now = self.elapsed_s
        self._write_events(now)
        self._writer.writerow(telemetry_row(now, status))
        self.telemetry_rows += 1

    def write_events(self):
        """Write the events received so far (with no telemetry to wait for)."""
        self._write_events()

    def _write_events(self, now=None):
        now = self.elapsed_s if now is None else now
        for name, fields, message in self.pen.events():
            self._writer.writerow(event_row(now, name, describe_event(fields, message)))
            self.event_rows += 1
            if self.on_event is not None:
                self.on_event(name, fields, message)


def telemetry_row(time_s, status):
    row = {f.attribute: f.text(getattr(status, f.attribute)) for f in FIELDS}
    row.update(time_s="%.3f" % time_s, kind="telemetry", event="", detail="")
    return [row[c] for c in COLUMNS]


def event_row(time_s, name, detail):
    row = dict.fromkeys(COLUMNS, "")
    row.update(time_s="%.3f" % time_s, kind="event", event=name, detail=detail)
    return [row[c] for c in COLUMNS]


def read(path):
    """The rows of a recording as dicts: numbers as floats (None where empty), strokes
    an int, faults and warnings lists of names. Raises UsageError for a file that is
    missing or is not a recording."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != COLUMNS:
                raise UsageError("%s is not a `pen record` CSV: its header is %s, expected %s"
                                 % (path, ",".join(reader.fieldnames or ["(none)"]),
                                    ",".join(COLUMNS)))
            return [_typed(row, reader.line_num, path) for row in reader]
    except (UnicodeDecodeError, csv.Error) as e:
        raise UsageError("%s is not a `pen record` CSV: %s" % (path, e)) from e
    except OSError as e:
        raise UsageError("cannot read %s: %s" % (path, e.strerror or e)) from e


def _typed(row, line, path):
    try:
        out = dict(row, time_s=float(row["time_s"]))
        out.update({c: _number(row[c]) for c in NUMBERS})
        out.update({c: _names(row[c]) for c in _NAMES})
    except (TypeError, ValueError) as e:
        raise UsageError("%s line %d: %s" % (path, line, e)) from e
    return out


def _names(text):
    return text.split(",") if text else []


def _number(text):
    """A number column's value: int where it was written without decimals (strokes,
    milliamperes), None where empty."""
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return float(text)
