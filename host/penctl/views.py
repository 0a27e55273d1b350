"""How the CLI and the demo draw things (rich tables); no I/O of their own."""

from rich.table import Table


def status_table(st, elapsed=None, title="live status"):
    table = Table(title="%s  %.1f s" % (title, elapsed) if elapsed is not None else title)
    table.add_column("reading")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_row("state", st.state, "")
    table.add_row("stroke rate", "%.2f Hz" % st.rate_hz, "%.2f Hz" % st.target_rate_hz)
    table.add_row("needle depth", "%.3f mm" % st.depth_mm, "%.3f mm" % st.target_depth_mm)
    table.add_row("motor current", "%.0f mA" % st.current_ma, "")
    table.add_row("handpiece temperature", "%.1f C" % st.temperature_c, "")
    table.add_row("supply", "%.2f V" % st.supply_v, "")
    table.add_row("strokes", str(st.strokes), "")
    table.add_row("faults", ",".join(st.faults) or "none", "")
    table.add_row("warnings", ",".join(st.warnings) or "none", "")
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
