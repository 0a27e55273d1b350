"""A recording as a PNG: rate, depth, current and temperature against time, faults marked.

matplotlib is an optional extra (`pip install 'penctl[plot]'`); it is imported only here,
and drawn with the Agg canvas directly so no GUI backend or pyplot state is involved.
"""

import math
from pathlib import Path

from .errors import UsageError
from .record import parse_event, read

# axis label, measured column, target column
PANELS = (
    ("stroke rate, Hz", "rate_hz", "target_rate_hz"),
    ("needle depth, mm", "depth_mm", "target_depth_mm"),
    ("motor current, mA", "current_ma", None),
    ("temperature, C", "temperature_c", None),
)
FAULT_COLOR = "tab:red"


def render(source, png_path):
    """Draw a recording (the rows read() returns, or a CSV path) to png_path; returns
    its Path. Raises UsageError when there is nothing to draw or no matplotlib."""
    rows = read(source) if isinstance(source, (str, Path)) else list(source)
    telemetry = [r for r in rows if r["kind"] == "telemetry"]
    if not any(_drawable(r[measured]) for r in telemetry for _, measured, _ in PANELS):
        raise UsageError("%s has no telemetry rows %sto plot; record with the board "
                         "connected and telemetry on" % (
                             _name(source), "with readings " if telemetry else ""))
    figure = _figure()
    axes = figure.subplots(len(PANELS), 1, sharex=True)
    times = [r["time_s"] for r in telemetry]
    for ax, (label, measured, target) in zip(axes, PANELS, strict=True):
        _draw_panel(ax, times, telemetry, label, measured, target)
    marks = fault_marks(rows)
    _mark_faults(axes, marks)
    axes[-1].set_xlabel("time, s")
    figure.suptitle("pen session: %.1f s, %d telemetry lines, faults: %s" % (
        times[-1] - times[0], len(telemetry), ", ".join(c for _, c in marks) or "none"))
    png_path = Path(png_path)
    try:
        figure.savefig(png_path, dpi=100)
    except OSError as e:
        raise UsageError("cannot write %s: %s" % (png_path, e.strerror or e)) from e
    return png_path


def fault_marks(rows, same_fault_s=1.0):
    """(time_s, code) of every fault that latched during the recording, sorted. From the
    FAULT events, and from the telemetry's fault list for a fault whose event the link
    lost (a fault already latched when the recording began is not marked)."""
    marks = [(r["time_s"], parse_event(r["detail"])[0].get("code", "?"))
             for r in rows if r["kind"] == "event" and r["event"] == "FAULT"]
    telemetry = [r for r in rows if r["kind"] == "telemetry"]
    latched = set(telemetry[0]["faults"]) if telemetry else set()
    for row in telemetry[1:]:
        for code in sorted(set(row["faults"]) - latched):
            if not any(c == code and abs(t - row["time_s"]) <= same_fault_s for t, c in marks):
                marks.append((row["time_s"], code))
        latched = set(row["faults"])
    return sorted(marks)


def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UsageError("plotting needs matplotlib, an optional extra: "
                         "pip install 'penctl[plot]'") from None
    figure = Figure(figsize=(10, 9), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _draw_panel(ax, times, telemetry, label, measured, target):
    ax.plot(times, _values(telemetry, measured), label="measured", linewidth=1.2)
    if target is not None:
        ax.plot(times, _values(telemetry, target), label="target", linestyle="--",
                drawstyle="steps-post", linewidth=1.0)
        ax.legend(loc="upper right", fontsize="small")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)


def _drawable(value):
    return value is not None and math.isfinite(value)


def _values(rows, column):
    return [math.nan if r[column] is None else r[column] for r in rows]


def _mark_faults(axes, marks):
    for t, code in marks:
        for ax in axes:
            ax.axvline(t, color=FAULT_COLOR, linestyle=":", linewidth=1.5)
        axes[0].text(t, 0.97, " " + code, transform=axes[0].get_xaxis_transform(),
                     color=FAULT_COLOR, fontsize="small", rotation=90, ha="right", va="top")


def _name(source):
    return str(source) if isinstance(source, (str, Path)) else "the recording"
