"""How long the host waits for a board.

A real board answers in milliseconds whatever else the host is doing: the waits of this
package are bounds against a board that is gone or hung. A virtual board's CPU is the
host's, and a busy host keeps it (and the threads that carry its serial link) waiting for
seconds. PEN_TIMEOUT_SCALE (a number, at least 1; default 1) multiplies every wait for a
board's answer, prompt or boot. It never changes the protocol's own timing (the keepalive
period, the link timeout, the run limit): those are the board's business. The test suite
sets it for virtual boards.
"""

import os

from .errors import UsageError

ENV = "PEN_TIMEOUT_SCALE"


def scaled(seconds):
    """`seconds` of patience, scaled for this host."""
    return seconds * factor()


def factor():
    text = os.environ.get(ENV, "1")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1:
        raise UsageError("%s is %r: give a number of at least 1 (how many times longer to wait "
                         "for a board than a real board needs)" % (ENV, text))
    return value
