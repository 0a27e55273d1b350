"""The `pen` command: click groups over the penctl library. The library raises typed
errors; only main() here turns them into one sentence on stderr and an exit code:
0 success, 2 usage, 3 refused by the board, 4 fault, 5 link, 130 interrupted. Under
--json the sentence is a JSON object on stderr ({"error", "message", "exit"}), so a
script reads the failure the way it reads the answer."""

import json
import signal
import sys

import click

from ..client import Pen
from ..errors import FaultError, LinkError, PenError, RefusedError, UsageError
from ..firmware.protocol import WARNINGS

EXIT = {RefusedError: 3, FaultError: 4, LinkError: 5, UsageError: 2}
INTERRUPTED = 130
WARNING_TEXT = dict(WARNINGS)

# what clears a warning, shown wherever the warning is (the board's text says what is wrong)
WARNING_HINTS = {"CONFIG": "save settings to clear it: `pen config reset` (the safe defaults) "
                           "or `pen profile use NAME`"}


def warning_line(name):
    """A warning, what it means and, where something clears it, how."""
    hint = WARNING_HINTS.get(name)
    return "warning %s: %s%s" % (name, WARNING_TEXT.get(name, ""), "; " + hint if hint else "")


class Interrupted(Exception):
    """Ctrl-C ended a command after it said what had been done (exit 130)."""


@click.group()
@click.option("--port", envvar="PEN_PORT", help="serial port or pyserial URL (or PEN_PORT)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def cli(ctx, port, as_json):
    """Drive a microneedling pen (or a virtual one: `pen sim`) over its serial port."""
    ctx.obj = {"port": port, "json": as_json}


def _set_json(ctx, param, value):
    if value:
        ctx.obj["json"] = True


def _set_port(ctx, param, value):
    if value is not None:  # after the name it wins over --port before it and PEN_PORT
        ctx.obj["port"] = value


def command(group=None, name=None):
    """A subcommand that also takes --json and --port after its name
    (`pen status --port X --json`)."""
    def wrap(f):
        f = click.option("--json", "as_json", is_flag=True, expose_value=False,
                         callback=_set_json, help="machine-readable output")(f)
        f = click.option("--port", expose_value=False, callback=_set_port,
                         help="serial port or pyserial URL (as before the command's name)")(f)
        return (group or cli).command(name)(click.pass_context(f))
    return wrap


def port_of(ctx):
    if not ctx.obj["port"]:
        raise click.UsageError("no port: pass --port PORT or set PEN_PORT (`pen ports` lists "
                               "them; `pen sim` starts a virtual board)")
    return ctx.obj["port"]


def pen_of(ctx):
    return Pen(port_of(ctx))


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def emit(ctx, data, human):
    """JSON for scripts, else the human text (a string or a rich renderable)."""
    if ctx.obj["json"]:
        click.echo(json.dumps(data, default=lambda o: o.__dict__))
    elif isinstance(human, str):
        click.echo(human)
    else:
        from rich.console import Console

        Console().print(human)


from . import bench_cmds, board_cmds, config_cmds, monitor_cmds, selftest_cmds  # noqa: E402,F401,I001
from . import session_cmds, treatment_cmds  # noqa: E402,F401,I001


def usage_sentence(e):
    """click's error as one sentence with where to look: its usage and help lines go."""
    text = e.format_message().strip().rstrip(".")
    if text[1:2].islower():  # "No such option", not a name such as PEN_PORT
        text = text[:1].lower() + text[1:]
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.UsageError) and ctx is not None:
        text += "; see `%s --help`" % ctx.command_path
    return text


def _wants_json(argv):
    # read from the words, not the context: a usage error can come before any is made
    words = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in words


def fail(code, message, exit_code, as_json):
    """One failure on stderr (a sentence, or a JSON object under --json), then exit."""
    if as_json:
        click.echo(json.dumps({"error": code, "message": message, "exit": exit_code}),
                   err=True)
    else:
        click.echo("error: %s" % message, err=True)
    sys.exit(exit_code)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = _wants_json(argv)
    # Ctrl-C is how `pen run` stops the needles and `pen record` ends. Python leaves SIGINT
    # ignored when it starts so (a script's background job): `pen` takes it back
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        cli(args=argv, standalone_mode=False, prog_name="pen")
    except (click.exceptions.Abort, KeyboardInterrupt, Interrupted) as e:
        fail("INTERRUPTED", str(e) or "interrupted", INTERRUPTED, as_json)
    except click.exceptions.NoArgsIsHelpError as e:
        e.show()  # a bare `pen`: the help is the answer
        sys.exit(2)
    except click.ClickException as e:
        fail("USAGE", usage_sentence(e), 2, as_json)
    except PenError as e:
        exit_code = next((c for t, c in EXIT.items() if isinstance(e, t)), 1)
        fail(e.code or type(e).__name__.replace("Error", "").upper(), str(e), exit_code, as_json)
