"""The `pen` command. This first cut offers the virtual board and the basic session
commands; every failure is one sentence and a distinct exit code."""

import json
import sys
import time

import click

from . import Pen
from .errors import FaultError, LinkError, PenError, RefusedError

EXIT = {RefusedError: 3, FaultError: 4, LinkError: 5}


@click.group()
@click.option("--port", envvar="PEN_PORT", help="serial port or pyserial URL (or PEN_PORT)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def cli(ctx, port, as_json):
    ctx.obj = {"port": port, "json": as_json}


def _pen(ctx):
    if not ctx.obj["port"]:
        raise click.UsageError("no port: pass --port PORT or set PEN_PORT (try `pen sim`)")
    return Pen(ctx.obj["port"])


@cli.command()
@click.option("--board", default="virtual", show_default=True)
def sim(board):
    """Run a virtual board in the foreground and print its port."""
    from .sim import VirtualBoard

    with VirtualBoard(board) as b:
        click.echo("virtual board %r at %s  (Ctrl-C to stop)" % (board, b.port))
        try:
            while True:
                time.sleep(0.5)
                b.check()
        except KeyboardInterrupt:
            pass


@cli.command()
@click.pass_context
def status(ctx):
    """State, faults, targets and readings."""
    with _pen(ctx) as pen:
        st = pen.status()
    if ctx.obj["json"]:
        click.echo(json.dumps(st.__dict__))
    else:
        for key, value in st.__dict__.items():
            click.echo("%-16s %s" % (key, value))


@cli.command()
@click.pass_context
def home(ctx):
    """Home the depth actuator."""
    with _pen(ctx) as pen:
        click.echo(pen.home().state)


def main():
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(2)
    except PenError as e:
        click.echo("error: %s" % e, err=True)
        sys.exit(next((c for t, c in EXIT.items() if isinstance(e, t)), 1))
