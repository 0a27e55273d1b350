"""`make demo`: a short treatment on the virtual board, with live status and a summary."""

import argparse
import statistics
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import Pen
from .sim import VirtualBoard

console = Console()


def status_table(st, elapsed):
    table = Table(title="live status  %.1f s" % elapsed)
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
    return table


def treatment(pen, depth_mm, rate_hz, seconds):
    console.print("homing the depth actuator ...")
    pen.home()
    pen.set(depth_mm=depth_mm, rate_hz=rate_hz)
    console.print("set depth %.2f mm, rate %d Hz; starting" % (depth_mm, rate_hz))
    start_strokes = pen.status().strokes
    pen.start()
    t0 = time.monotonic()
    samples = []
    with Live(console=console, refresh_per_second=10) as live:
        for st in pen.telemetry():
            elapsed = time.monotonic() - t0
            live.update(status_table(st, elapsed))
            if elapsed > 1.5:  # after the rate and depth ramps
                samples.append(st)
            if st.faults or elapsed >= seconds:
                break
    final = pen.stop()
    ran = time.monotonic() - t0
    return ran, final.strokes - start_strokes, samples, final


def summary(ran, strokes, samples, final, depth_mm, faults):
    rates = [s.rate_hz for s in samples] or [0.0]
    depth_err = [abs(s.depth_mm - depth_mm) for s in samples] or [0.0]
    console.print()
    table = Table(title="treatment summary", show_header=False)
    table.add_row("time run", "%.1f s" % ran)
    table.add_row("strokes delivered", str(strokes))
    table.add_row("mean rate", "%.2f Hz (sd %.2f)" % (statistics.mean(rates),
                                                      statistics.pstdev(rates)))
    table.add_row("depth error", "mean %.3f mm, max %.3f mm" % (statistics.mean(depth_err),
                                                               max(depth_err)))
    table.add_row("final state", final.state)
    table.add_row("faults", ", ".join(f["code"] for f in faults) or "none")
    console.print(table)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", default="virtual")
    parser.add_argument("--depth", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args(argv)
    with VirtualBoard(args.board) as board:
        console.print("virtual board %r up at %s" % (args.board, board.port))
        with Pen(board.port) as pen:
            console.print("connected: firmware %s, protocol %s" % (pen.info["fw"],
                                                                    pen.info["proto"]))
            ran, strokes, samples, final = treatment(pen, args.depth, args.rate, args.seconds)
            summary(ran, strokes, samples, final, args.depth, pen.faults())
        board.check()


if __name__ == "__main__":
    main()
