# The serial link to the host over the REPL's UART (sys.stdin/sys.stdout): assembles
# lines byte by byte (sys.stdin.read(n) can block on ESP32 after poll), answers a repeated
# frame with its first reply (a sequence number reused for another frame is refused), and
# writes frames. No control characters are
# ever sent, so a terminal or mpremote on the same cable sees plain text.
import select
import sys
from array import array

import protocol as P
import wire
from micropython import const

_NL = const(10)
_CR = const(13)
_ETX = const(3)  # Ctrl-C: the realtime STOP (main.py turns KeyboardInterrupt off)
STOP = const(-1)  # what read_line() returns for it
_REMEMBER = const(8)  # replies kept for retries: more than the host has in flight
# Bytes read per call: the link task's pass reads at most its lines' worth of them, so a
# flood cannot hold the control tick off (several calls per pass keep up with the wire).
_BURST = const(96)


class Link:
    def __init__(self):
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        self.stdin = sys.stdin.buffer  # bytes, one at a time
        self.one = bytearray(1)  # read into: read(1) would allocate a bytes for each
        self.writer = wire.Writer(sys.stdout.buffer)  # telemetry, without allocating
        self.buf = bytearray(P.MAX_LINE)
        self.len = 0
        self.overlong = False
        # the last _REMEMBER requests, a ring made once: sequence number (0: none), frame's
        # CRC (wire.crc_of) and reply (None: none yet; "": a plain OK, the Writer's)
        self.seqs = array("i", bytes(4 * _REMEMBER))
        self.crcs = array("i", bytes(4 * _REMEMBER))
        self.replies = [None] * _REMEMBER
        self.slot = 0  # where the next request goes
        self.got = array("i", bytes(8))  # seq and CRC of wire.read_request's request
        self.frames_ok = 0
        self.frames_bad = 0
        self.executed = 0

    def read_line(self):
        """The length of one complete line, which is in buf until the next call (text()
        gives it as str); None when no full line is waiting or _BURST bytes were read
        without ending one (the rest waits for the next call); or STOP for a Ctrl-C: a
        realtime STOP, acted on at once and outside the line buffer (as grbl's realtime
        bytes), so a partial line neither delays it nor is lost by it."""
        n = _BURST
        while n and self.waiting():
            n -= 1
            if not self.stdin.readinto(self.one, 1):
                return None
            c = self.one[0]
            if c == _ETX:
                return STOP
            if c == _NL or c == _CR:
                if self.overlong:
                    self.overlong = False
                    self.len = 0
                    self.send(wire.error(-1, "MALFORMED", "line longer than %d bytes"
                                         % P.MAX_LINE))
                    continue
                if self.len:
                    n = self.len
                    self.len = 0
                    return n
                continue
            if c < 32 or c > 126:
                continue  # control bytes and non-ASCII never belong to a frame
            if self.len >= P.MAX_LINE:
                self.overlong = True
            else:
                self.buf[self.len] = c
                self.len += 1
        return None

    def waiting(self):
        """Whether a byte waits; ipoll allocates nothing, where poll() builds a list at each
        call (96 bytes on the VM, 500 times a second from the link task)."""
        for _ in self.poll.ipoll(0):
            return True
        return False

    def text(self, n):
        """The line read_line() gave the length of, as str."""
        return bytes(self.buf[:n]).decode("ascii", "replace")

    def send(self, body):
        if not self.writer.line(body):  # longer than its buffer: a LOG page, FAULTS
            sys.stdout.write(wire.frame(body))
            sys.stdout.write("\n")

    def reply(self, seq, body):
        """Send the reply `body` (wire.ok's or wire.error's; "": a plain OK) to request
        seq, kept for a resend of the request."""
        last = (self.slot - 1) % _REMEMBER
        if self.seqs[last] == seq and self.replies[last] is None:
            self.replies[last] = body  # the answer repeat() keeps for it
        self._send_reply(seq, body)

    def _send_reply(self, seq, body):
        if body:
            self.send(body)
        else:
            self.writer.ok(seq)

    def forget_others(self):
        """Forget every request but the one being answered: a new host's numbers are not
        an earlier host's."""
        keep = (self.slot - 1) % _REMEMBER
        for i in range(_REMEMBER):
            if i != keep:
                self.seqs[i] = 0
                self.replies[i] = None

    def repeat(self, seq, crc):
        """True if the frame of sequence number seq (and wire.crc_of() crc) is answered
        here: with its first reply, if it was answered already, or with ERR SEQ_REUSED, if
        seq was answered for another frame (a second writer, a stale host); neither runs.
        False for a new seq, which is remembered, by its frame's CRC, for the reply to
        come."""
        for i in range(_REMEMBER):
            if self.seqs[i] == seq:
                if self.crcs[i] == crc and self.replies[i] is not None:
                    self._send_reply(seq, self.replies[i])
                else:
                    self.send(wire.error(seq, "SEQ_REUSED", "%d answered another frame; use "
                                         "a new one" % seq))
                return True
        i = self.slot
        self.seqs[i] = seq
        self.crcs[i] = crc
        self.replies[i] = None
        self.slot = (i + 1) % _REMEMBER
        return False
