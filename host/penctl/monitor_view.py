"""What `pen monitor` draws (rich renderables); no I/O of its own."""

from dataclasses import dataclass, field

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .views import status_table

KEYS_HELP = "keys:  s start   space stop   c clear   h home   q quit"


@dataclass
class MonitorSnapshot:
    """Everything one frame of the monitor shows."""

    port: str
    elapsed_s: float
    status: object = None  # the latest penctl.client.Status, None before the first
    events: list = field(default_factory=list)  # (time_s, name, text), oldest first
    telemetry_per_s: float = 0.0
    telemetry_lines: int = 0
    bad_lines: int = 0
    round_trip_ms: float | None = None
    message: str = ""
    warnings: list = field(default_factory=list)  # each active warning and how to clear it


def monitor_view(snap):
    # keys and the last command's outcome first: a short terminal crops the bottom
    parts = [Text("pen monitor  %s  %.1f s" % (snap.port, snap.elapsed_s), style="bold"),
             Text(KEYS_HELP, style="dim")]
    if snap.message:
        parts.append(Text(snap.message, style="bold yellow"))
    parts += [Text(w, style="yellow") for w in snap.warnings]
    return Group(*parts, _readings(snap), _link_table(snap), _events_table(snap))


def _readings(snap):
    if snap.status is None:
        return Text("waiting for the board's first reading")
    return status_table(snap.status, title="readings")


def _link_table(snap):
    table = Table(title="link", show_header=False)
    table.add_row("telemetry", "%.1f lines/s (%d lines)" % (snap.telemetry_per_s,
                                                           snap.telemetry_lines))
    table.add_row("bad lines", str(snap.bad_lines))
    rtt = "-" if snap.round_trip_ms is None else "%.1f ms" % snap.round_trip_ms
    table.add_row("last request round-trip", rtt)
    return table


def _events_table(snap):
    table = Table(title="recent events", show_header=False)
    table.add_column("time", justify="right")
    table.add_column("event")
    table.add_column("detail")
    for time_s, name, text in snap.events:
        style = "bold red" if name == "FAULT" else ""
        table.add_row("%.1f s" % time_s, Text(name, style=style), text)
    if not snap.events:
        table.add_row("", "none yet", "")
    return table
