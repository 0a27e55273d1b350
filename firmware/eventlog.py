# The fault and event log on the flash: a ring of fixed-size records in one file, so it
# never grows and each record is written in place. Every record carries a number (its slot
# is number % _SLOTS), the boot it belongs to, uptime and the event's text, and is one
# protocol frame, so a record torn by a power cut fails its CRC and is skipped.
# Events queue in RAM and are written when the needles are still (app.py), never from the
# control tick: at most _QUEUE records can be lost to a power cut, and only those not yet
# flushed (docs/safety.md, "Event log", states the bound).
import errno

import protocol as P
import wire
from micropython import const

FILE = "events.log"
_SLOTS = const(64)
# bytes a record, newline included: a FAULT's text (readings and why) whole; 64 of them take
# 16 KB of flash. Firmware before it wrote records of _OLD bytes: _upgrade() rewrites those.
_RECORD = const(256)
_OLD = const(128)
_QUEUE = const(16)


def _parse(raw):
    """(seq, boot, up_ms, text) of a record's bytes, or None if torn or blank."""
    try:
        return wire.split_record(wire.unframe(raw.decode()))
    except (ValueError, P.ProtocolError):
        return None


def _record(seq, boot, up, text):
    line = wire.frame(wire.record(seq, boot, up, text)[: _RECORD - 1 - P.TRAILER])
    return (line + " " * (_RECORD - 1 - len(line)) + "\n").encode()


def _upgrade():
    """Rewrite a log of _OLD-byte records in today's size, in place from the last slot
    down: each write lands only on old slots already moved, so a cut leaves every record
    old or moved (or the one being written torn), and the next boot goes on from there."""
    try:
        with open(FILE, "r+b") as f:
            for slot in range(0, _SLOTS, 2):
                f.seek(slot * _OLD + _OLD - 1)
                if f.read(1) == b"\n":  # an even slot's end: a record ends there only if old
                    break
            else:
                return
            for slot in range(_SLOTS - 1, -1, -1):
                f.seek(slot * _OLD)
                raw = f.read(_OLD)
                # the first half of a record moved by a cut-short boot can parse, but its
                # end is not a newline and its number not of this slot
                rec = _parse(raw) if raw[_OLD - 1 :] == b"\n" else None
                f.seek(slot * _RECORD)
                if rec and rec[0] % _SLOTS == slot:
                    f.write(_record(rec[0], rec[1], rec[2], rec[3]))
                elif not _parse(f.read(_RECORD)):  # not moved by a boot the power cut short
                    # a blank, so that no old record's end is left behind to look old
                    f.seek(slot * _RECORD)
                    f.write(b" " * (_RECORD - 1) + b"\n")
    except OSError:
        pass  # no log, or a flash that refuses: records() reads what there is


class EventLog:
    def __init__(self):
        _upgrade()
        self.queue = []  # [seq, up_ms, text] not yet on the flash
        self.lost = 0  # records dropped from the queue, counted by its first (a LOST record)
        self.read_error = None  # why the file could not be read, if it could not
        newest = (0, 0)
        for rec in self.records():
            if rec[0] > newest[0]:
                newest = rec[:2]
        self.seq = newest[0] + 1
        self.boot = newest[1] + 1  # the boot counter survives in the newest record

    def records(self):
        try:
            with open(FILE, "rb") as f:
                # only the ring: a longer file (damaged) must not stretch a boot's scan
                for _ in range(_SLOTS):
                    raw = f.read(_RECORD)
                    if not raw:
                        return
                    rec = _parse(raw)
                    if rec:
                        yield rec
        except OSError as e:
            if e.errno != errno.ENOENT:  # a damaged filesystem: the pen runs, and says so
                self.read_error = e

    def add(self, up_ms, text):
        """Queue a record; it has its number from now on. A full queue keeps its newest
        _QUEUE records: the oldest becomes a LOST record counting the ones dropped."""
        q = self.queue
        if self.lost:
            if len(q) > _QUEUE:
                q.pop(1)
                self.lost += 1
        elif len(q) >= _QUEUE:
            self.lost = 1
        if self.lost:
            q[0][2] = wire.text("LOST", [("records", self.lost)])
        q.append([self.seq, up_ms, text])
        self.seq += 1

    def flush(self):
        """Write the queued records (call only while the needles are still). OSError if
        the flash refuses; the queue is kept then."""
        try:
            f = open(FILE, "r+b")
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise  # never start a new, empty log over one that is there
            f = open(FILE, "wb")
        with f:
            for seq, up, text in self.queue:
                f.seek((seq % _SLOTS) * _RECORD)
                f.write(_record(seq, self.boot, up, text))
        self.queue = []
        self.lost = 0

    def read(self, since, count):
        """Up to `count` records with seq >= since, oldest first; the queue's included
        (LOG writes the queue first when it can, so a number it shows is never reused)."""
        found = [rec for rec in self.records() if rec[0] >= since]
        for seq, up, text in self.queue:
            if seq >= since:
                found.append((seq, self.boot, up, text))
        found.sort()
        return found[:count]
