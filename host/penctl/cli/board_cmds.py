"""Board-level commands: a virtual board, finding ports, flashing, deploying, versions."""

import contextlib
import itertools
import json
import os
import signal
import stat
import tempfile
import time
from pathlib import Path

import click

from ..errors import UsageError
from . import command, emit, pen_of, port_of, stderr_console

# USB-UART bridges found on ESP32 dev boards, and Espressif's own USB (VID 0x303A)
ESP32_BRIDGES = {(0x10C4, 0xEA60): "CP210x", (0x1A86, 0x7523): "CH340",
                 (0x1A86, 0x55D4): "CH9102", (0x0403, 0x6001): "FT232R",
                 (0x0403, 0x6010): "FT2232"}
ESPRESSIF_VID = 0x303A


def _interrupted(signum, frame):
    raise KeyboardInterrupt


# every start is a board fresh from the factory, as a real one is before its first setup
FRESH_NOTE = ("its flash is fresh, with no saved settings: it warns CONFIG until you save "
              "some (`pen config reset` saves the safe defaults, `pen profile use NAME` a "
              "profile)")


def runtime_dir():
    """Where `pen sim` puts its stable links and says it is running: the user's runtime
    directory (XDG_RUNTIME_DIR), else one of the user's own under the temp directory."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        path = Path(base) / "penctl"
    else:
        path = Path(tempfile.gettempdir()) / ("penctl-%d" % os.getuid())
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as e:
        raise UsageError("cannot use %s: %s; give `pen sim --link PATH`" % (
            path, e.strerror or e)) from e
    # a shared temp directory: someone else's directory (or a link) there is not ours
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UsageError("%s is not a directory of yours; give `pen sim --link PATH`" % path)
    return path


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_sims():
    """The virtual boards `pen sim` runs now: dicts with port, board, pid. An entry whose
    process is gone, or whose link no longer leads to a terminal, is removed."""
    found = []
    try:
        home = runtime_dir()
    except UsageError:
        return found  # nowhere for one to have said so
    for entry in sorted(home.glob("sim-*.json")):
        try:
            sim = json.loads(entry.read_text())
            live = _alive(int(sim["pid"])) and os.path.islink(sim["port"]) and \
                os.path.exists(sim["port"])
        except (OSError, ValueError, KeyError, TypeError):
            sim, live = None, False
        if live:
            found.append(sim)
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
        # its link, if it is still one: nothing else makes links there
        if sim and os.path.islink(sim.get("port", "")) and \
                Path(sim["port"]).parent == entry.parent:
            with contextlib.suppress(OSError):
                os.unlink(sim["port"])
    return found


def _sim_link(board, link):
    """The path the virtual board's port will have: --link, else <runtime dir>/<board>
    (then <board>-2, ... while those are taken)."""
    taken = {s["port"] for s in running_sims()}

    def free(path):
        return path not in taken and not os.path.exists(path)  # a dangling link is free

    if link is None:
        base = str(runtime_dir() / board)
        link = next(path for path in (base if n == 1 else "%s-%d" % (base, n)
                                      for n in itertools.count(1)) if free(path))
    link = os.path.abspath(link)
    if not os.path.isdir(os.path.dirname(link)):
        raise UsageError("no directory %s for the link; create it or give another --link"
                         % os.path.dirname(link))
    if link in taken:
        raise UsageError("a virtual board already runs at %s; stop it first or give another "
                         "--link" % link)
    if os.path.islink(link) and not os.path.exists(link):
        os.unlink(link)  # left by a board that could not clean up (killed)
    elif os.path.lexists(link):
        raise UsageError("%s exists and is not a link of a stopped virtual board; give "
                         "another --link" % link)
    return link


@command()
@click.option("--board", default="virtual", show_default=True)
@click.option("--download", is_flag=True, help="start in the ROM bootloader (for esptool)")
@click.option("--link", default=None, type=click.Path(dir_okay=False),
              help="the port's path, the same at every start (default: <board> under "
              "$XDG_RUNTIME_DIR/penctl, or under the temp directory)")
def sim(ctx, board, download, link):
    """Run a virtual board in the foreground and print its port (a stable path)."""
    from ..sim import VirtualBoard

    link = _sim_link(board, link)
    entry = runtime_dir() / ("sim-%d.json" % os.getpid())
    # a service manager or a script stops it with SIGTERM: clean up as on Ctrl-C
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        with VirtualBoard(board, link=link) as b:
            entry.write_text(json.dumps({"port": b.port, "board": board, "pid": os.getpid()}))
            if download:
                b.enter_download_mode()
            emit(ctx, {"board": board, "port": b.port, "rfc2217": None},
                 "virtual board %r at %s%s  (Ctrl-C to stop)\n%s" % (
                     board, b.port, " in download mode" if download else "", FRESH_NOTE))
            _serve(b)
    finally:
        with contextlib.suppress(OSError):
            entry.unlink()


def _serve(b):
    try:
        told = 0
        while True:  # a VM that dies is a panic: the board boots again; say so
            time.sleep(0.5)
            for crash in b.crashes[told:]:
                click.echo("virtual board: panic, rebooted: %s" % crash, err=True)
            told = len(b.crashes)
    except KeyboardInterrupt:
        pass


def likely_board(port):
    if port.vid == ESPRESSIF_VID:
        return "Espressif USB"
    return ESP32_BRIDGES.get((port.vid, port.pid), "")


@command()
def ports(ctx):
    """Serial ports, likely ESP32 boards first, then running virtual boards (`pen sim`)."""
    from serial.tools import list_ports

    found = sorted(list_ports.comports(), key=lambda p: (not likely_board(p), p.device))
    rows = [{"port": p.device, "description": p.description, "usb": "%04x:%04x" % (
        p.vid, p.pid) if p.vid else "", "likely_esp32": bool(likely_board(p)),
             "bridge": likely_board(p)} for p in found]
    rows += [{"port": s["port"], "description": "virtual board %r (`pen sim`, pid %d)" % (
        s["board"], s["pid"]), "usb": "", "likely_esp32": False, "bridge": "",
              "virtual": True} for s in running_sims()]
    lines = ["%-24s %-10s %s%s" % (r["port"], r["usb"], r["description"],
                                   "  <- likely an ESP32 (%s)" % r["bridge"]
                                   if r["likely_esp32"] else "") for r in rows]
    emit(ctx, rows, "\n".join(lines) or "no serial ports found (is the board plugged in? "
         "`pen sim` starts a virtual one)")


@command(name="flash")
@click.option("--firmware", "firmware", required=True, type=click.Path(dir_okay=False),
              help="MicroPython .bin for the board's chip (from micropython.org/download)")
@click.option("--board", default="esp32-devkitc", show_default=True)
@click.option("--erase", is_flag=True, help="erase the whole flash first")
@click.option("--no-stub", is_flag=True, help="talk only to the ROM bootloader, without "
              "esptool's stub flasher (slower)")
@click.option("--before", default="default-reset", show_default=True,
              type=click.Choice(["default-reset", "no-reset"]),
              help="no-reset on a PTY, where DTR/RTS cannot reset the board")
@click.option("--after", default="hard-reset", show_default=True,
              type=click.Choice(["hard-reset", "no-reset"]))
def flash_cmd(ctx, firmware, board, erase, no_stub, before, after):
    """Flash a MicroPython image (checked first), verify it, report the chip."""
    from ..flash import flash

    report = flash(port_of(ctx), firmware, board, erase, not no_stub, before, after,
                   echo=lambda line: click.echo(line, err=True))
    emit(ctx, report, "flashed %d bytes at 0x%x and verified: %s, MAC %s, flash %s" % (
        report["bytes"], report["offset"], report["chip"], report["mac"], report["flash_size"]))


@command(name="deploy")
@click.option("--board", default=None, help="board definition to install (default: the one "
              "on the board, else esp32-devkitc)")
@click.option("--mpy/--source", default=True, show_default=True,
              help="modules as .mpy for the board's own bytecode format (mpy-cross), or as "
              "source the board compiles at each boot (more heap taken, slower boot)")
def deploy_cmd(ctx, board, mpy):
    """Copy the firmware and board definition (only what changed), verify, restart."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    from ..deploy import deploy

    port = port_of(ctx)
    with Progress(TextColumn("{task.description:<16}"), BarColumn(), DownloadColumn(),
                  console=stderr_console(), transient=True) as bar:
        tasks = {}

        def progress(name, done, total):
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        report = deploy(port, board, mpy, log=None if ctx.obj["json"] else bar.console.print,
                        progress=progress)
    emit(ctx, report, "deployed firmware %s (%s) for %s in %.1f s: %d copied (%d bytes), "
         "%d unchanged, %d removed" % (
             report.version, "mpy " + report.mpy_arch if report.mpy_arch else "source",
             report.board, report.seconds, len(report.copied), report.bytes_copied,
             len(report.unchanged), len(report.removed)))


@command()
def version(ctx):
    """Host version, the firmware on the board, and whether they match."""
    from .. import __version__
    from ..deploy import firmware_version

    host_fw = firmware_version()
    with pen_of(ctx) as pen:
        board_fw, proto = pen.info.get("fw", "?"), pen.info.get("proto", "?")
        board, uid = pen.info.get("board", "?"), pen.info.get("uid", "?")
    info = {"host": __version__, "host_firmware": host_fw, "board_firmware": board_fw,
            "protocol": int(proto), "match": board_fw == host_fw, "board": board, "uid": uid}
    emit(ctx, info, "host penctl %s (deploys firmware %s), board %s (chip id %s) firmware %s, "
         "protocol %s: %s" % (__version__, host_fw, board, uid, board_fw, proto,
                              "match" if info["match"] else "MISMATCH, run pen deploy"))
