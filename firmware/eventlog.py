# The fault and event log on the flash: a ring of fixed-size records in one file, so it
# never grows and each record is written in place. Every record carries a sequence number
# (its slot is seq % _SLOTS), the boot it belongs to, uptime and the event's text, and is
# one protocol frame, so a record torn by a power cut fails its CRC and is skipped.
# Events queue in RAM and are written when the needles are still (app.py), never from the
# control tick: at most _QUEUE records can be lost to a power cut, and only those not yet
# flushed (the README states the bound).
import protocol as P
from micropython import const

FILE = "events.log"
_SLOTS = const(64)
_RECORD = const(128)  # bytes a record, newline included
_QUEUE = const(16)


def _parse(raw):
    """(seq, boot, up_ms, text) of a record's bytes, or None if torn or blank."""
    try:
        body = P.unframe(raw.decode())
        seq, boot, up, text = body.split(" ", 3)
        return int(seq), int(boot), int(up), text
    except (ValueError, P.ProtocolError):
        return None


class EventLog:
    def __init__(self):
        self.queue = []
        self.lost = 0  # records dropped from a full queue since the last flush
        newest = (0, 0)
        for rec in self._records():
            if rec[0] > newest[0]:
                newest = rec[:2]
        self.seq = newest[0] + 1
        self.boot = newest[1] + 1  # the boot counter survives in the newest record

    def _records(self):
        try:
            f = open(FILE, "rb")
        except OSError:
            return
        with f:
            while True:
                raw = f.read(_RECORD)
                if not raw:
                    return
                rec = _parse(raw)
                if rec:
                    yield rec

    def add(self, up_ms, text):
        if len(self.queue) >= _QUEUE:
            self.queue.pop(0)
            self.lost += 1
        self.queue.append((up_ms, text.replace("|", "/")))

    def flush(self):
        """Write the queued records (call only while the needles are still)."""
        if self.lost:
            self.queue.insert(0, (self.queue[0][0], "LOST records=%d" % self.lost))
            self.lost = 0
        try:
            f = open(FILE, "r+b")
        except OSError:
            f = open(FILE, "wb")
        with f:
            while self.queue:
                up, text = self.queue[0]
                body = "%d %d %d %s" % (self.seq, self.boot, up, text)
                line = P.frame(body[: _RECORD - 8])
                f.seek((self.seq % _SLOTS) * _RECORD)
                f.write(line + " " * (_RECORD - 1 - len(line)) + "\n")
                self.queue.pop(0)
                self.seq += 1

    def read(self, since, count):
        """Up to `count` records with seq >= since, oldest first; the queue's included."""
        found = [rec for rec in self._records() if rec[0] >= since]
        seq = self.seq
        for up, text in self.queue:
            if seq >= since:
                found.append((seq, self.boot, up, text))
            seq += 1
        found.sort()
        return found[:count]

    def last_seq(self, boot, prefix):
        """Number of the newest record of that boot whose text starts with prefix, or 0."""
        best = 0
        for rec in self._records():
            if rec[1] == boot and rec[0] > best and rec[3].startswith(prefix):
                best = rec[0]
        return best
