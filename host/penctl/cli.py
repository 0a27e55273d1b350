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


def _port(ctx):
    if not ctx.obj["port"]:
        raise click.UsageError("no port: pass --port PORT or set PEN_PORT (try `pen sim`)")
    return ctx.obj["port"]


def _pen(ctx):
    return Pen(_port(ctx))


def _console():
    from rich.console import Console

    return Console(stderr=True)


@cli.command()
@click.option("--board", default="virtual", show_default=True)
@click.option("--download", is_flag=True, help="start in the ROM bootloader (for esptool)")
def sim(board, download):
    """Run a virtual board in the foreground and print its port."""
    from .sim import VirtualBoard

    with VirtualBoard(board) as b:
        if download:
            b.enter_download_mode()
        click.echo("virtual board %r at %s%s  (Ctrl-C to stop)" % (
            board, b.port, " in download mode" if download else ""))
        try:
            while True:
                time.sleep(0.5)
                b.check()
        except KeyboardInterrupt:
            pass


@cli.command("flash")
@click.option("--firmware", "firmware", required=True, type=click.Path(dir_okay=False),
              help="MicroPython .bin for the board's chip (from micropython.org/download)")
@click.option("--board", default="esp32-devkitc", show_default=True)
@click.option("--erase", is_flag=True, help="erase the whole flash first")
@click.option("--no-stub", is_flag=True, help="talk only to the ROM bootloader (slower; the "
              "virtual board has no stub)")
@click.option("--before", default="default-reset", show_default=True,
              type=click.Choice(["default-reset", "no-reset"]),
              help="no-reset on a PTY, where DTR/RTS cannot reset the board")
@click.option("--after", default="hard-reset", show_default=True,
              type=click.Choice(["hard-reset", "no-reset"]))
@click.pass_context
def flash_cmd(ctx, firmware, board, erase, no_stub, before, after):
    """Flash a MicroPython image (checked first), verify it, report the chip."""
    from .flash import flash

    report = flash(_port(ctx), firmware, board, erase, not no_stub, before, after,
                   echo=lambda line: click.echo(line, err=True))
    if ctx.obj["json"]:
        click.echo(json.dumps(report))
    else:
        click.echo("flashed %d bytes at 0x%x and verified: %s, MAC %s, flash %s" % (
            report["bytes"], report["offset"], report["chip"], report["mac"],
            report["flash_size"]))


@cli.command("deploy")
@click.option("--board", default=None, help="board definition to install (default: the one "
              "on the board, else esp32-devkitc)")
@click.option("--mpy", is_flag=True, help="compile the modules to .mpy for the board's own "
              "bytecode format and architecture (mpy-cross)")
@click.pass_context
def deploy_cmd(ctx, board, mpy):
    """Copy the firmware and board definition (only what changed), verify, restart."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from .deploy import deploy

    port = _port(ctx)
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), DownloadColumn(),
                  console=_console(), transient=True) as bar:
        tasks = {}

        def progress(name, done, total):
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        report = deploy(port, board, mpy, log=bar.console.print if not ctx.obj["json"]
                        else None, progress=progress)
    if ctx.obj["json"]:
        click.echo(json.dumps(report.__dict__))
    else:
        click.echo("deployed firmware %s (%s) for %s in %.1f s: %d copied (%d bytes), "
                   "%d unchanged, %d removed" % (
                       report.version, "mpy " + report.mpy_arch if report.mpy_arch else
                       "source", report.board, report.seconds, len(report.copied),
                       report.bytes_copied, len(report.unchanged), len(report.removed)))


@cli.command()
@click.pass_context
def version(ctx):
    """Host version, the firmware on the board, and whether they match."""
    from . import __version__
    from .deploy import firmware_version

    host_fw = firmware_version()
    with _pen(ctx) as pen:
        board_fw, proto = pen.info.get("fw", "?"), pen.info.get("proto", "?")
    info = {"host": __version__, "host_firmware": host_fw, "board_firmware": board_fw,
            "protocol": int(proto), "match": board_fw == host_fw}
    if ctx.obj["json"]:
        click.echo(json.dumps(info))
        return
    click.echo("host penctl %s (deploys firmware %s), board firmware %s, protocol %s: %s" % (
        __version__, host_fw, board_fw, proto,
        "match" if info["match"] else "MISMATCH, run pen deploy"))


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

