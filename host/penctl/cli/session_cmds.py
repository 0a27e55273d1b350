"""Session commands: what an operator does with the pen during a treatment."""

import contextlib
import re

import click
from rich.console import Console
from rich.live import Live

from ..errors import FaultError
from ..firmware import wire
from ..record import Recorder
from ..session import run_pass
from ..views import log_table, pass_table, status_table
from . import Interrupted, command, emit, pen_of, warning_line


class Duration(click.ParamType):
    """30s, 2m, 1m30s or plain seconds."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        found = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", value)
        if not value.strip() or not found or not any(found.groups()):
            self.fail("%r is not a duration (try 30s, 2m or 1m30s)" % value, param, ctx)
        minutes, seconds = (float(g) if g else 0.0 for g in found.groups())
        total = minutes * 60 + seconds
        if total <= 0:
            self.fail("a duration must be longer than zero", param, ctx)
        return total


@command()
def status(ctx):
    """State, faults, targets and readings."""
    with pen_of(ctx) as pen:
        st = pen.status()
    emit(ctx, st, status_table(st, title="pen status"))
    if not ctx.obj["json"]:
        for w in st.warnings:
            click.echo(warning_line(w))


@command()
def home(ctx):
    """Home the depth actuator (needles retract to 0 mm)."""
    with pen_of(ctx) as pen:
        st = pen.home()
    emit(ctx, st, "homed: %s, depth %.3f mm" % (st.state, st.depth_mm))


@command(name="set")
@click.option("--depth", type=float, help="needle depth, mm (0.05 mm steps)")
@click.option("--rate", type=float, help="stroke rate, Hz")
@click.option("--telemetry", type=int, help="telemetry lines per second (0 = off)")
@click.option("--link-timeout", type=int, help="ms of host silence that stops a run")
@click.option("--run-limit", type=int, help="longest continuous run, s")
def set_cmd(ctx, depth, rate, telemetry, link_timeout, run_limit):
    """Set depth, rate and other parameters; the board checks them against its caps."""
    params = {k: v for k, v in (("telemetry", telemetry), ("link_timeout", link_timeout),
                                ("run_limit", run_limit)) if v is not None}
    if depth is None and rate is None and not params:
        raise click.UsageError("nothing to set: give --depth, --rate or another option")
    with pen_of(ctx) as pen:
        pen.set(depth_mm=depth, rate_hz=rate, **params)
        values = pen.get()
    emit(ctx, values, wire.pairs(values.items()))


def _pass(ctx, depth, rate, seconds, record_path=None, open_ended=False):
    console = Console(stderr=ctx.obj["json"])
    with pen_of(ctx) as pen, _recording(pen, record_path) as recorder, \
            Live(console=console, refresh_per_second=8, transient=ctx.obj["json"]) as live:
        def on_status(st, t):
            if recorder is not None:
                recorder.take(st)
            live.update(status_table(st, t))

        report = run_pass(pen, depth, rate, seconds, on_status=on_status)
    if not ctx.obj["json"]:
        click.echo()
    emit(ctx, report, pass_table(report))
    if recorder is not None and not ctx.obj["json"]:
        click.echo("recorded %d lines (%d telemetry, %d events) to %s" % (
            recorder.rows, recorder.telemetry_rows, recorder.event_rows, recorder.path),
            err=True)
    if report.ended_by == "fault":
        raise FaultError("the pass ended on a fault: %s; see `pen faults`, clear with "
                         "`pen clear` once the cause is gone" % (", ".join(report.faults)
                                                                 or report.final_state))
    if report.ended_by == "operator" and not open_ended:
        # the summary says what was delivered; the exit code says it was not the plan
        raise Interrupted("interrupted: the pass was stopped after %.1f s of %.1f s"
                          % (report.ran_s, report.planned_s))


def _recording(pen, path):
    return Recorder(pen, path) if path else contextlib.nullcontext()


RECORD_HELP = ("also record its telemetry and events to this CSV (as `pen record` does; "
               "`pen plot` draws it)")


@command()
@click.option("--for", "seconds", type=Duration(), default=None,
              help="stop after this long (default: Ctrl-C or the board's run limit)")
@click.option("--record", "record_path", type=click.Path(dir_okay=False), default=None,
              help=RECORD_HELP)
def start(ctx, seconds, record_path):
    """Start the needles at the current settings and stay with them (live view) until
    Ctrl-C, --for or a fault: a run needs its host, the board stops it if the host goes.
    Homes first if the needles are not homed. Ctrl-C before --for is up exits 130;
    without --for it is the ordinary end (0)."""
    _pass(ctx, None, None, seconds or float("inf"), record_path, open_ended=seconds is None)


@command()
@click.option("--depth", type=float, required=True, help="needle depth, mm")
@click.option("--rate", type=float, required=True, help="stroke rate, Hz")
@click.option("--for", "seconds", type=Duration(), required=True, help="e.g. 30s, 2m")
@click.option("--record", "record_path", type=click.Path(dir_okay=False), default=None,
              help=RECORD_HELP)
def run(ctx, depth, rate, seconds, record_path):
    """A timed pass: home if needed, set, start, live view, stop; then what was delivered.
    Ctrl-C stops the needles, shows the summary and exits 130."""
    _pass(ctx, depth, rate, seconds, record_path)


@command()
def stop(ctx):
    """Ramp the needles down."""
    with pen_of(ctx) as pen:
        st = pen.stop()
    emit(ctx, st, "stopped: %s" % st.state)


@command()
def clear(ctx):
    """Clear latched faults whose cause is gone (refused, with the reason, otherwise)."""
    with pen_of(ctx) as pen:
        state = pen.clear()
    emit(ctx, {"state": state}, "cleared: %s" % state)


@command()
def faults(ctx):
    """Latched faults with the readings that tripped them, and active warnings (CONFIG:
    the saved settings were unusable and the safe defaults are in use)."""
    with pen_of(ctx) as pen:
        found = pen.faults()
        warnings = pen.status().warnings
    lines = ["%s  %s  [%s]" % (f["code"], f["detail"], f["readings"]) for f in found]
    lines = lines or ["no faults latched"]
    lines += [warning_line(w) for w in warnings] or ["no warnings"]
    emit(ctx, {"faults": found, "warnings": warnings}, "\n".join(lines))



@command(name="log")
@click.option("--since", type=click.IntRange(min=0), default=0,
              help="first record number to show (numbers never repeat)")
@click.option("--boots", type=click.IntRange(min=1), default=None,
              help="only the records of the last N boots")
def log_cmd(ctx, since, boots):
    """The board's fault and event log: boots with their reset cause, faults with their
    readings, clears, starts, stops, profile changes; record number, boot, uptime."""
    with pen_of(ctx) as pen:
        records = pen.log(since=since)
    if boots and records:
        first_boot = max(r["boot"] for r in records) - boots + 1
        records = [r for r in records if r["boot"] >= first_boot]
    emit(ctx, records, log_table(records) if records else "no log records%s" % (
        " from %d on" % since if since else ""))
