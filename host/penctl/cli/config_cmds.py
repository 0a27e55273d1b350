"""Settings and treatment profiles saved on the board: `pen config`, `pen profile`."""

from contextlib import contextmanager

import click
from rich.table import Table

from ..errors import RefusedError
from ..firmware.protocol import PROFILES, SAVED, spec
from . import cli, command, emit, pen_of


class ProfileName(click.ParamType):
    """A profile name from the firmware's table; checked here so that a typo is a usage
    error (exit 2) with the valid names, before any port is opened."""

    name = "profile"

    def convert(self, value, param, ctx):
        if value not in (p[0] for p in PROFILES):
            self.fail("no profile %r; choose one of: %s" % (
                value, ", ".join(p[0] for p in PROFILES)), param, ctx)
        return value


def _profile(name):
    """One profile as plain numbers (mm, Hz) for JSON and tables."""
    name, depth_um, rate_chz, area = next(p for p in PROFILES if p[0] == name)
    return {"name": name, "area": area, "depth_cap_mm": depth_um / 1000,
            "rate_cap_hz": rate_chz / 100}


def _caps(name):
    p = _profile(name)
    return "depth cap %.2f mm, rate cap %.0f Hz" % (p["depth_cap_mm"], p["rate_cap_hz"])


def _range_help(name, what):
    _, unit, _, lo, hi, _ = spec(name)
    return "%s, %d..%d %s" % (what, lo, hi, unit)  # every saved value has 0 decimals


@contextmanager
def _nothing_saved():
    # the board checks every value before it writes any, so a refusal leaves the old file
    try:
        yield
    except RefusedError as e:
        raise RefusedError("%s; nothing was saved" % e.message, e.code) from e


# ---- pen config ---------------------------------------------------------------------------------

@cli.group()
def config():
    """Settings saved on the board's flash: profile, telemetry, link timeout, run limit,
    and the sensors' calibration."""


def config_table(values, title):
    table = Table(title=title, show_header=False)
    table.add_row("profile", values["profile"], _caps(values["profile"]))
    for name in SAVED:
        table.add_row(name.replace("_", " "), "%s %s" % (values[name], spec(name)[1]), "")
    table.caption = ("from the board's settings file" if values["source"] == "saved" else
                     "safe defaults: the board has no usable settings file "
                     "(`pen config set` or `pen config reset` saves one)")
    return table


@command(group=config, name="get")
def config_get(ctx):
    """Show the saved settings and whether they are the safe defaults."""
    with pen_of(ctx) as pen:
        values = pen.config()
    emit(ctx, values, config_table(values, "saved settings"))


@command(group=config, name="set")
@click.option("--profile", type=ProfileName(), help="treatment profile (`pen profile list`)")
@click.option("--telemetry", type=int, help=_range_help("telemetry", "telemetry lines per "
                                                         "second (0 = off)"))
@click.option("--link-timeout", type=int, help=_range_help("link_timeout", "host silence "
                                                            "that stops a run"))
@click.option("--run-limit", type=int, help=_range_help("run_limit", "longest continuous run"))
@click.option("--current-zero", type=int, help=_range_help(
    "current_zero", "calibration: current-sense output at zero current"))
@click.option("--supply-gain", type=int, help=_range_help(
    "supply_gain", "calibration: supply divider trim"))
@click.option("--test-mode", type=int, help=_range_help(
    "test_mode", "keyed: 1 lets test cartridges run (HIL on a real board, docs/sessions.md)"))
def config_set(ctx, **options):
    """Save settings, applied now and at boot; refused while running."""
    values = {k: v for k, v in options.items() if v is not None}
    if not values:
        raise click.UsageError("nothing to set: give --profile or one of %s" % ", ".join(
            "--" + name.replace("_", "-") for name in SAVED))
    with pen_of(ctx) as pen, _nothing_saved():
        saved = pen.config(**values)
    emit(ctx, saved, config_table(saved, "settings saved"))


@command(group=config, name="reset")
def config_reset(ctx):
    """Save the safe defaults, with the most restrictive profile (the unit's calibration
    is kept)."""
    with pen_of(ctx) as pen, _nothing_saved():
        saved = pen.defaults()
    emit(ctx, saved, config_table(saved, "safe defaults saved: the %s profile (%s)" % (
        saved["profile"], _caps(saved["profile"]))))


# ---- pen profile --------------------------------------------------------------------------------

@cli.group()
def profile():
    """Treatment profiles: the depth and stroke-rate caps for an area of the body."""


def profiles_table(rows, active):
    table = Table(title="treatment profiles")
    for name in ("", "profile", "area", "depth cap", "rate cap"):
        table.add_column(name, justify="right" if "cap" in name else "left")
    for row in rows:
        mark = "*" if row["name"] == active else ""
        table.add_row(mark, row["name"], row["area"], "%.2f mm" % row["depth_cap_mm"],
                      "%.0f Hz" % row["rate_cap_hz"], style="bold" if mark else None)
    table.caption = ("* active on the board" if active else
                     "active profile unknown: pass --port (or set PEN_PORT) to mark it")
    return table


@command(group=profile, name="list")
def profile_list(ctx):
    """List the profiles and caps; with a port, mark the active one."""
    active = None
    if ctx.obj["port"]:  # the table itself is on the host: it is useful without a board
        with pen_of(ctx) as pen:
            active = pen.get()["profile"]
    rows = [_profile(p[0]) for p in PROFILES]
    for row in rows:
        row["active"] = None if active is None else row["name"] == active
    emit(ctx, rows, profiles_table(rows, active))


@command(group=profile, name="show")
@click.argument("name", type=ProfileName())
def profile_show(ctx, name):
    """Show one profile's area and caps."""
    p = _profile(name)
    emit(ctx, p, "%s (%s): %s" % (name, p["area"], _caps(name)))


@command(group=profile, name="use")
@click.argument("name", type=ProfileName())
def profile_use(ctx, name):
    """Switch and save the profile; refused while the needles run."""
    with pen_of(ctx) as pen:
        with _nothing_saved():
            saved = pen.use_profile(name)
        caps = pen.get()  # the caps the board now enforces, board cap included
    saved.update(cap=caps["cap"], rate_cap=caps["rate_cap"])
    emit(ctx, saved, "profile %s in use: depth cap %s mm, rate cap %s Hz" % (
        name, caps["cap"], caps["rate_cap"]))
