"""Treatment sessions as the board records them: one SESSION record in its event log per
finished session (firmware/treatment.py), read here into Session objects, listed, exported
as CSV or JSON, and written up as a treatment summary a clinician can file (HTML, with the
session's plot when a recording of it is given)."""

import base64
import csv
import dataclasses
import datetime
import html
import io
import json
import tempfile
from pathlib import Path

from .errors import UsageError
from .firmware import wire


@dataclasses.dataclass
class Session:
    n: int  # the board's session number
    profile: str
    cartridge: str  # its ROM id, 16 hex digits
    started: int  # unix seconds (0: the board's clock was not set)
    ended: int  # the last the board knew of it (a power-off ends it later)
    started_up: str  # boot:uptime ms, the board's own clock
    ended_up: str
    needle_s: float  # time needling
    strokes: int
    depth_mm: float  # mean over the strokes
    depth_max_mm: float
    rate_hz: float  # strokes over time needling
    rate_max_hz: float
    end: str  # operator, cartridge (another fitted), power-off
    faults: list  # fault codes latched during the session

    @property
    def started_text(self):
        return _when(self.started)

    @property
    def ended_text(self):
        return _when(self.ended)


def _when(unix):
    if not unix:
        return "unknown (board clock not set)"
    return datetime.datetime.fromtimestamp(unix, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S UTC")


def parse(text):
    """A Session of a SESSION record's text."""
    name, pairs, _ = wire.split_text(text)
    if name != "SESSION":
        raise UsageError("not a session record: %r" % text[:40])
    f = dict(pairs)
    try:
        return Session(int(f["n"]), f["profile"], f["cart"], int(f["t0"]), int(f["t1"]),
                       f["up0"], f["up1"], int(f["needle_ms"]) / 1000, int(f["strokes"]),
                       float(f["dep"]), float(f["dep_max"]), float(f["hz"]),
                       float(f["hz_max"]), f["end"],
                       [] if f.get("faults", "-") == "-" else f["faults"].split(","))
    except (KeyError, ValueError) as e:
        raise UsageError("session record %r is incomplete: %s" % (text[:60], e)) from None


def from_log(records):
    """The sessions in a board's log records (Pen.log()), oldest first."""
    return [parse(r["text"]) for r in records if r["event"] == "SESSION"]


def find(sessions, n):
    for s in sessions:
        if s.n == n:
            return s
    have = ", ".join(str(s.n) for s in sessions) or "none"
    raise UsageError("no session %d in the board's log (sessions there: %s); the log keeps "
                     "its last 64 records" % (n, have))


def to_json(sessions):
    return json.dumps([dataclasses.asdict(s) for s in sessions], indent=2)


def to_csv(sessions):
    out = io.StringIO()
    names = [f.name for f in dataclasses.fields(Session)]
    writer = csv.writer(out)
    writer.writerow(names)
    for s in sessions:
        row = dataclasses.asdict(s)
        row["faults"] = ",".join(s.faults)
        writer.writerow([row[k] for k in names])
    return out.getvalue()


ROWS = (
    ("Session", lambda s: str(s.n)), ("Treatment area (profile)", lambda s: s.profile),
    ("Cartridge", lambda s: s.cartridge), ("Started", lambda s: s.started_text),
    ("Ended", lambda s: "%s (%s)" % (s.ended_text, s.end)),
    ("Time needling", lambda s: "%.1f s" % s.needle_s), ("Strokes", lambda s: str(s.strokes)),
    ("Depth delivered, mean / max", lambda s: "%.3f / %.3f mm" % (s.depth_mm, s.depth_max_mm)),
    ("Stroke rate, mean / max", lambda s: "%.1f / %.1f Hz" % (s.rate_hz, s.rate_max_hz)),
    ("Faults", lambda s: ", ".join(s.faults) or "none"),
)


def report_html(session, device, recording=None):
    """A treatment summary: the session's numbers, the device (board name, chip id,
    firmware) and, given the CSV of `pen run --record`, its plot."""
    rows = "".join("<tr><th>%s</th><td>%s</td></tr>" % (html.escape(k), html.escape(f(session)))
                   for k, f in ROWS)
    dev = "".join("<tr><th>%s</th><td>%s</td></tr>" % (html.escape(k), html.escape(str(v)))
                  for k, v in device.items())
    plot = _plot(recording) if recording else "<p>No recording of this session was given.</p>"
    return ("<!doctype html><html><head><meta charset='utf-8'><title>Treatment session %d"
            "</title><style>body{font-family:sans-serif;max-width:50em}th{text-align:left;"
            "padding-right:2em}</style></head><body><h1>Treatment session %d</h1>"
            "<table>%s</table><h2>Device</h2><table>%s</table><h2>Plot</h2>%s</body></html>\n"
            % (session.n, session.n, rows, dev, plot))


def _plot(recording):
    from .plot import render

    with tempfile.TemporaryDirectory() as tmp:
        png = render(Path(recording), Path(tmp) / "session.png")
        data = base64.b64encode(png.read_bytes()).decode()
    return "<img alt='rate, depth, current and temperature' src='data:image/png;base64,%s'>" \
        % data
