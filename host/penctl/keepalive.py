"""The host's keepalive while the needles run: KA frames on a fixed schedule, so the board's
link timeout never stops a run whose host is there, and always stops one whose host is not."""

import threading
import time

from .errors import LinkError
from .firmware import wire


class Keepalive:
    """KA every `period` s (five to the shortest link timeout) on `link` (a Transport), each
    under a fresh number from `next_seq`, from start() to stop()."""

    def __init__(self, link, next_seq, period=0.1):
        self.link = link
        self.next_seq = next_seq
        self.period = period
        self._running = None  # (stop event, thread)

    @property
    def running(self):
        return self._running is not None

    def start(self):
        """On a fixed schedule: a lost keepalive or answer is never resent, the next one on
        time is the resend. (Waiting out a lost answer's timeout, then probing for a REPL,
        left the board without a frame for a second or more; waiting for each answer before
        the next period made a lost one cost two periods.) A host that kept this thread
        waiting gets one out at once and the schedule goes on from there, without a burst."""
        self.stop()
        stop = threading.Event()
        t = threading.Thread(target=self._loop, args=(stop,), daemon=True, name="pen-keepalive")
        self._running = (stop, t)
        t.start()

    def stop(self):
        running, self._running = self._running, None
        if running is not None:
            running[0].set()
            running[1].join(timeout=2)

    def _loop(self, stop):
        period = self.period
        due, seq = time.monotonic(), None
        while not stop.wait(max(0.0, due + period - time.monotonic())):
            due = max(due + period, time.monotonic() - period / 2)
            if seq is not None:
                self.link.forget(seq)  # its answer, if it came, is no one's business
            seq = self.next_seq()
            self.link.forget(seq)
            try:
                self.link.write_line(wire.frame(wire.request(seq, "KA")))
            except LinkError:
                continue
