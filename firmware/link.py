# The serial link to the host over the REPL's UART (sys.stdin/sys.stdout): assembles
# lines byte by byte (sys.stdin.read(n) can block on ESP32 after poll), answers repeated
# sequence numbers with the first reply, and writes frames. No control characters are
# ever sent, so a terminal or mpremote on the same cable sees plain text.
import select
import sys

import protocol as P
from micropython import const

_NL = const(10)
_CR = const(13)
_REMEMBER = const(8)  # replies kept for retries: more than the host has in flight
# Bytes read per call: the link task's pass reads at most its lines' worth of them, so a
# flood cannot hold the control tick off (several calls per pass keep up with the wire).
_BURST = const(96)


class Link:
    def __init__(self):
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self.stdin = sys.stdin.buffer  # bytes, one at a time
        self.buf = bytearray(P.MAX_LINE)
        self.len = 0
        self.overlong = False
        self.answered = []  # (seq, reply) of the last _REMEMBER commands
        self.frames_ok = 0
        self.frames_bad = 0
        self.executed = 0

    def read_line(self):
        """One complete line as str, or None when no full line is waiting or _BURST bytes
        were read without ending one (the rest waits for the next call)."""
        n = _BURST
        while n and self.poll.poll(0):
            n -= 1
            b = self.stdin.read(1)
            if not b:
                return None
            c = b[0]
            if c == _NL or c == _CR:
                if self.overlong:
                    self.overlong = False
                    self.len = 0
                    self.send("- ERR MALFORMED : line longer than %d bytes" % P.MAX_LINE)
                    continue
                if self.len:
                    line = bytes(self.buf[: self.len]).decode("ascii", "replace")
                    self.len = 0
                    return line
                continue
            if c < 32 or c > 126:
                continue  # control bytes and non-ASCII never belong to a frame
            if self.len >= P.MAX_LINE:
                self.overlong = True
            else:
                self.buf[self.len] = c
                self.len += 1
        return None

    def send(self, body):
        sys.stdout.write(P.frame(body))
        sys.stdout.write("\n")

    def reply(self, seq, body):
        text = "%d %s" % (seq, body)
        self.answered.append((seq, text))
        if len(self.answered) > _REMEMBER:
            self.answered.pop(0)
        self.send(text)

    def repeat(self, seq):
        """True (and the first reply resent) if seq was already answered."""
        for done, text in self.answered:
            if done == seq:
                self.send(text)
                return True
        return False
