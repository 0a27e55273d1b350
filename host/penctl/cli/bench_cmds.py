"""`pen bench`: the board's own figures from DIAG (control tick, allocation, heap), from any
board, real or virtual: on a real one, the figures the README's real-board column wants."""

import time

import click

from . import command, emit, pen_of

# units of the DIAG fields known today; a field DIAG gains is printed all the same, its
# unit read from a word of its name where one says it (tick_us_mean, alloc_per_s)
UNITS = {"ticks": "ticks", "alloc_bytes": "B", "mem_free": "B",
         "frames_ok": "frames", "frames_bad": "frames", "executed": "commands"}
WORDS = (("us", "us"), ("ms", "ms"), ("bytes", "B"), ("mem", "B"))


def unit(name):
    if name in UNITS:
        return UNITS[name]
    if name.endswith("_per_s"):
        return "B/s" if name.startswith(("alloc", "mem")) else "/s"
    words = name.split("_")
    return next((u for word, u in WORDS if word in words), "")


def number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def figures(fields, seconds):
    """DIAG's fields with their units (the window is the one since the DIAG before:
    `seconds` long)."""
    out = {k: {"value": number(v), "unit": unit(k)} for k, v in fields.items()}
    out["window_s"] = {"value": seconds, "unit": "s"}
    return out


@command()
@click.option("--for", "seconds", type=click.FloatRange(0.2, 600), default=2.0,
              show_default=True, help="the window DIAG's figures cover, in seconds")
def bench(ctx, seconds):
    """The board's control tick (mean, max), allocation and free heap, from DIAG, over a
    fresh window of --for seconds of whatever the board is doing (run `pen start` in another
    shell first for the figures while RUNNING)."""
    with pen_of(ctx) as pen:
        pen.request("DIAG")  # ends the window before: the next covers only the wait
        time.sleep(seconds)
        fields, _ = pen.request("DIAG")
        board = pen.info.get("board", "?")
    data = figures(fields, seconds)
    width = max(len(k) for k in data)
    lines = ["board %s, DIAG over %.1f s:" % (board, seconds)]
    lines += ["  %-*s  %s %s" % (width, k, v["value"], v["unit"]) for k, v in data.items()]
    emit(ctx, {"board": board, "figures": data}, "\n".join(x.rstrip() for x in lines))
