"""A timed treatment pass: home if needed, set, start, follow telemetry until the time is
up, a fault, or the operator stops it; then stop and say what was delivered. Library code:
it never prints; `on_status` sees every telemetry snapshot (the CLI draws its live view)."""

import statistics
import time
from dataclasses import dataclass, field

from .errors import RefusedError

SETTLE_S = 1.5  # rate and depth ramps are over by then; later samples judge the pass
# (a pass shorter than twice that is judged on its second half: the 300 Hz/s ramp to the
# 150 Hz maximum takes 0.5 s)


@dataclass
class PassReport:
    depth_mm: float
    rate_hz: float
    planned_s: float
    ran_s: float = 0.0
    strokes: int = 0
    mean_rate_hz: float = 0.0
    rate_sd_hz: float = 0.0
    depth_error_mean_mm: float = 0.0
    depth_error_max_mm: float = 0.0
    final_state: str = ""
    ended_by: str = ""  # "time", "fault" or "operator" (Ctrl-C)
    faults: list = field(default_factory=list)


def run_pass(pen, depth_mm=None, rate_hz=None, seconds=float("inf"), on_status=None):
    """Run one pass at the given settings (None: as the board has them); returns a
    PassReport. Ctrl-C (KeyboardInterrupt) stops the needles and ends the pass as the
    operator's stop."""
    homed = pen.status().state != "READY"
    if homed:
        pen.home()
    try:
        if depth_mm is not None or rate_hz is not None:
            pen.set(depth_mm=depth_mm, rate_hz=rate_hz)
        settings = pen.get()
        report = PassReport(float(settings["depth"]), float(settings["rate"]), seconds)
        strokes_before = pen.status().strokes
        pen.start()
    except RefusedError as e:
        if not homed:
            raise
        # a refusal says nothing changed, and the board did change nothing; but the pass
        # had homed first, and the operator must not think the needles stood still
        raise RefusedError("%s; the pass had homed the needles first (now at 0 mm, READY)"
                           % e.message, e.code) from e
    samples = []
    t0 = time.monotonic()
    try:
        report.ended_by = _follow(pen, seconds, t0, samples, on_status)
    except KeyboardInterrupt:
        report.ended_by = "operator"
    finally:
        report.ran_s = time.monotonic() - t0  # to the stop command; the ramp-down follows
        final = pen.stop()
    report.strokes = final.strokes - strokes_before
    report.final_state = final.state
    report.faults = [f["code"] for f in pen.faults()]
    _judge(report, samples)
    return report


def _follow(pen, seconds, t0, samples, on_status):
    settle = min(SETTLE_S, seconds / 2)
    for st in pen.telemetry(fresh=True):
        elapsed = time.monotonic() - t0
        if on_status:
            on_status(st, elapsed)
        if elapsed > settle and st.state == "RUNNING":
            samples.append(st)
        if st.faults or st.state not in ("RUNNING", "READY"):
            return "fault"
        if elapsed >= seconds:
            return "time"
    return "time"


def _judge(report, samples):
    rates = [s.rate_hz for s in samples] or [0.0]
    errors = [abs(s.depth_mm - report.depth_mm) for s in samples] or [0.0]
    report.mean_rate_hz = statistics.mean(rates)
    report.rate_sd_hz = statistics.pstdev(rates)
    report.depth_error_mean_mm = statistics.mean(errors)
    report.depth_error_max_mm = max(errors)
