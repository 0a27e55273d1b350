"""`pen selftest`: does the hardware agree with the firmware (bring-up of a board)."""

import sys

import click

from ..errors import FaultError
from ..selftest import SPIN_HZ, run_selftest
from ..views import selftest_view
from . import Interrupted, command, emit, pen_of

PROMPT = ("Spin the motor at %g Hz for up to 2 s, needles in? A cartridge must be fitted and "
          "the pen held clear of skin. [y/N] " % SPIN_HZ)


@command()
@click.option("--yes", "-y", is_flag=True,
              help="spin the motor without asking (with --json it spins only with --yes)")
def selftest(ctx, yes):
    """Check the board's hardware against its firmware: each sensor as read (mV) against
    the range the firmware holds it to, the e-stop loop and the cartridge switch, latched
    faults, a homing of the depth actuator, and, with a cartridge fitted and once you
    confirm, a brief spin of the motor at the lowest rate with the needles in (START, then
    STOP: the board's interlocks apply). Exit 4 if a check fails."""
    def confirm():
        if yes:
            return True
        if ctx.obj["json"]:
            return False  # a script is never asked: it says --yes
        click.echo(PROMPT, nl=False, err=True)
        answer = sys.stdin.readline()  # end of input is a no
        return answer.strip().lower() in ("y", "yes")

    try:
        with pen_of(ctx) as pen:
            report = run_selftest(pen, confirm)
    except KeyboardInterrupt:
        # the spin's own finally has stopped the motor (and Pen.close() sends STOP too)
        raise Interrupted("selftest interrupted: the motor is stopped") from None
    emit(ctx, report, selftest_view(report))
    failed = report.failed()
    if failed:
        raise FaultError("selftest failed: %s; each failed check says what to look at" % (
            ", ".join(c.name for c in failed)), "SELFTEST")
    if not ctx.obj["json"]:
        skipped = [c.name for c in report.checks if c.result == "skip"]
        click.echo("selftest passed%s" % (" (skipped: %s)" % ", ".join(skipped)
                                          if skipped else ""))
