"""`pen session` (the one under way: show it, end it) and `pen sessions` (the finished ones in
the board's log: list, show, export as CSV or JSON, a treatment summary to file)."""

from pathlib import Path

import click

from .. import sessions as records
from ..views import session_detail, session_table
from . import cli, command, emit, pen_of, port_of


@cli.group()
def session():
    """The treatment session under way on the board."""


@command(group=session, name="show")
def session_show(ctx):
    """The open (or last) session: number, cartridge, time needling, strokes."""
    with pen_of(ctx) as pen:
        fields = pen.session()
    emit(ctx, fields, _current(fields))


@command(group=session, name="end")
def session_end(ctx):
    """End the session: its record goes into the board's log, and its cartridge is done."""
    with pen_of(ctx) as pen:
        fields = pen.session(end=True)
        done = records.find(pen.sessions(), int(fields["n"])) if int(fields["n"]) else None
    emit(ctx, fields, session_detail(done) if done else "no session to end")


def _current(fields):
    if not int(fields["n"]):
        return "no session yet: the first START with a cartridge opens one"
    return "session %s (%s): cartridge %s, %.1f s needling, %s strokes" % (
        fields["n"], "open" if fields["open"] == "1" else "ended", fields["cart"],
        int(fields["needle_ms"]) / 1000, fields["strokes"])


@cli.group(invoke_without_command=True)
@click.pass_context
def sessions(ctx):
    """Finished treatment sessions in the board's log (`pen sessions`: the list)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(sessions_list)


@command(group=sessions, name="list")
def sessions_list(ctx):
    """Every finished session the board's log holds, oldest first."""
    with pen_of(ctx) as pen:
        found = pen.sessions()
    emit(ctx, [s.__dict__ for s in found],
         session_table(found) if found else "no finished sessions in the board's log")


@command(group=sessions, name="show")
@click.argument("n", type=int)
def sessions_show(ctx, n):
    """One session's record."""
    with pen_of(ctx) as pen:
        found = records.find(pen.sessions(), n)
    emit(ctx, found.__dict__, session_detail(found))


@command(group=sessions, name="export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("-o", "--output", "path", type=click.Path(dir_okay=False), default="-",
              help="file to write (default: standard output)")
def sessions_export(ctx, fmt, path):
    """Every finished session as CSV or JSON."""
    with pen_of(ctx) as pen:
        found = pen.sessions()
    text = records.to_csv(found) if fmt == "csv" else records.to_json(found)
    if path == "-":
        click.echo(text, nl=False)
    else:
        Path(path).write_text(text)
        click.echo("wrote %d sessions to %s" % (len(found), path), err=True)


@command(group=sessions, name="report")
@click.argument("n", type=int)
@click.option("-o", "--output", "path", required=True, type=click.Path(dir_okay=False),
              help="the HTML file to write")
@click.option("--recording", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the session's CSV from `pen run --record`, plotted in the summary")
def sessions_report(ctx, n, path, recording):
    """A treatment summary of session N a clinician can file (HTML)."""
    with pen_of(ctx) as pen:
        found = records.find(pen.sessions(), n)
        device = {"board": pen.info.get("board"), "chip id": pen.info.get("uid"),
                  "firmware": pen.info.get("fw"), "port": port_of(ctx)}
    Path(path).write_text(records.report_html(found, device, recording))
    emit(ctx, {"report": path, "session": n}, "wrote the summary of session %d to %s" % (n, path))
