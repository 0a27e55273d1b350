"""How the CLI and the demo draw things (rich tables); no I/O of their own."""

from rich.console import Group
from rich.table import Table
from rich.text import Text

from .status import FIELDS

_TARGET = "target_"  # a field whose attribute is target_X is shown beside field X


def _shown(f, st):
    text = f.text(getattr(st, f.attribute)) or ("none" if f.names else "")
    return "%s %s" % (text, f.unit) if f.unit else text


def status_table(st, elapsed=None, title="live status"):
    """A row per status field (status.FIELDS), a target beside what it is the target of."""
    table = Table(title="%s  %.1f s" % (title, elapsed) if elapsed is not None else title)
    table.add_column("reading")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    targets = {f.attribute[len(_TARGET):]: f for f in FIELDS if f.attribute.startswith(_TARGET)}
    for f in FIELDS:
        if not f.attribute.startswith(_TARGET):
            target = targets.get(f.attribute)
            table.add_row(f.meaning, _shown(f, st), _shown(target, st) if target else "")
    return table


def pass_table(report):
    table = Table(title="treatment summary", show_header=False)
    planned = "" if report.planned_s == float("inf") else " for %.0f s" % report.planned_s
    table.add_row("set", "%.2f mm at %.0f Hz%s" % (report.depth_mm, report.rate_hz, planned))
    table.add_row("time run", "%.1f s (ended by %s)" % (report.ran_s, report.ended_by))
    table.add_row("strokes delivered", str(report.strokes))
    table.add_row("mean rate", "%.2f Hz (sd %.2f)" % (report.mean_rate_hz, report.rate_sd_hz))
    table.add_row("depth error", "mean %.3f mm, max %.3f mm" % (report.depth_error_mean_mm,
                                                               report.depth_error_max_mm))
    table.add_row("final state", report.final_state)
    table.add_row("faults", ", ".join(report.faults) or "none")
    return table


def log_table(records):
    table = Table(title="event log")
    for name, justify in (("#", "right"), ("boot", "right"), ("uptime", "right"),
                          ("event", "left"), ("", "left")):
        table.add_column(name, justify=justify)
    for r in records:
        style = "bold red" if r["event"] == "FAULT" else None
        table.add_row(str(r["seq"]), str(r["boot"]), "%.3f s" % (r["uptime_ms"] / 1000),
                      r["event"], r["text"].partition(" ")[2], style=style)
    return table



_RESULT_STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow"}


def selftest_view(report):
    """A SelftestReport: a row per check (what was read, against what, the result), then
    what to look at for each check that failed or was skipped (80 columns hold it)."""
    table = Table(title="selftest of %s" % report.board)
    table.add_column("check", no_wrap=True)
    table.add_column("read")
    table.add_column("valid")
    table.add_column("result", no_wrap=True)
    notes = []
    for c in report.checks:
        style = _RESULT_STYLE[c.result]
        table.add_row(c.name, c.value, c.range, Text(c.result.upper(), style=style))
        if c.hint:
            notes.append(Text.assemble((c.name, style), " (%s): %s" % (c.input, c.hint)))
    return Group(table, *notes)


def session_table(sessions):
    """Finished treatment sessions (sessions.Session), one row each."""
    table = Table(title="treatment sessions")
    for name in ("n", "profile", "cartridge", "started (UTC)", "needling", "strokes", "mm",
                 "end", "faults"):
        table.add_column(name, no_wrap=name in ("cartridge", "started (UTC)"))
    for s in sessions:
        table.add_row(str(s.n), s.profile, s.cartridge, s.started_text[:16],
                      "%.0f s" % s.needle_s, str(s.strokes), "%.2f" % s.depth_mm, s.end,
                      ",".join(s.faults) or "-")
    return table


def session_detail(session):
    """One session's record, a row a figure (what a treatment summary shows)."""
    from .sessions import ROWS

    table = Table(title="treatment session %d" % session.n, show_header=False)
    for name, value in ROWS:
        table.add_row(name, value(session))
    return table
