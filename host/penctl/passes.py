"""`make passes [N=200] [SECONDS=2] [PORT=...]`: treatment passes one after another, as a
clinic day would run them, each through the same routine as `pen run --for` (home if
needed, set, start, follow telemetry, stop); then one summary line. Exits 1 if any pass
ended otherwise than by its time, with a fault, or away from READY.

Without PORT it runs on a virtual board of its own. The figure that matters is the count of
passes that did not end cleanly: run it on a busy machine to see that load is no fault."""

import argparse
import contextlib
import sys
import time

from . import Pen
from .errors import PenError
from .session import run_pass
from .sim import VirtualBoard


def _board(port, board):
    if port:
        return contextlib.nullcontext(port)
    return _virtual(board)


@contextlib.contextmanager
def _virtual(name):
    with VirtualBoard(name, needles_mm=0.0) as board:
        yield board.url  # no PTY: a busy host's kernel held PTYs for seconds (docs/figures.md)


def run(port, n, seconds, depth_mm, rate_hz, echo=print):
    """(passes run, [(pass number, what went wrong)], [PassReport]) of n passes."""
    bad, reports = [], []
    with Pen(port) as pen:
        for i in range(1, n + 1):
            try:
                report = run_pass(pen, depth_mm, rate_hz, seconds)
            except PenError as e:
                bad.append((i, "%s: %s" % (type(e).__name__, e)))
                continue
            reports.append(report)
            if report.ended_by != "time" or report.faults or report.final_state != "READY":
                bad.append((i, "ended by %s in %s, faults %s" % (
                    report.ended_by, report.final_state, ",".join(report.faults) or "none")))
            if i % 20 == 0 or i == n:
                echo("%d/%d passes, %d not clean" % (i, n, len(bad)))
    return reports, bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", default=None, help="a real board (pyserial URL)")
    parser.add_argument("--board", default="virtual", help="the virtual board's definition")
    parser.add_argument("-n", type=int, default=200, help="passes (default 200)")
    parser.add_argument("--seconds", type=float, default=2.0, help="each pass (default 2)")
    parser.add_argument("--depth", type=float, default=0.5, help="mm (default 0.5)")
    parser.add_argument("--rate", type=float, default=100.0, help="Hz (default 100)")
    args = parser.parse_args(argv)
    if args.n < 1 or args.seconds <= 0:
        parser.error("-n must be at least 1 and --seconds above 0")
    t0 = time.monotonic()
    with _board(args.port, args.board) as port:
        reports, bad = run(port, args.n, args.seconds, args.depth, args.rate)
    for number, what in bad:
        print("pass %d: %s" % (number, what))
    worst = max((r.depth_error_max_mm for r in reports), default=0.0)
    rates = [r.mean_rate_hz for r in reports] or [0.0]
    print("passes: %d of %d s in %.0f s, %d not clean; mean rate %.1f-%.1f Hz, worst depth "
          "error %.3f mm, strokes %d" % (args.n, args.seconds, time.monotonic() - t0, len(bad),
                                          min(rates), max(rates), worst,
                                          sum(r.strokes for r in reports)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
