"""The firmware's event log ring in CPython, on a temporary directory as its flash:
wraparound, numbering across boots, the LOST record, torn records, a refused flash."""

import errno

import pytest
from firmware_import import eventlog


@pytest.fixture(autouse=True)
def flash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(log, texts):
    for i, text in enumerate(texts):
        log.add(i, text)
        if i % 10 == 9:
            log.flush()
    log.flush()


def test_the_ring_keeps_the_newest_records_in_order_and_numbers_never_repeat(flash):
    log = eventlog.EventLog()
    write(log, ["E%d" % i for i in range(150)])
    records = log.read(0, 1000)
    assert [r[3] for r in records] == ["E%d" % i for i in range(150 - 64, 150)]
    assert (flash / eventlog.FILE).stat().st_size == 64 * 256  # it never grows past its ring
    again = eventlog.EventLog()  # the next boot
    assert again.boot == log.boot + 1 and again.seq == records[-1][0] + 1


def test_a_full_queue_keeps_its_newest_records_and_counts_the_lost_ones():
    log = eventlog.EventLog()
    for i in range(20):
        log.add(i, "E%d" % i)
    texts = [r[3] for r in log.read(0, 100)]
    assert texts[0] == "LOST records=4" and texts[1:] == ["E%d" % i for i in range(4, 20)]
    seqs = [r[0] for r in log.read(0, 100)]
    log.flush()
    assert [r[0] for r in log.read(0, 100)] == seqs  # a number shown is the number kept


def test_a_torn_record_is_skipped_and_the_rest_read(flash):
    log = eventlog.EventLog()
    write(log, ["A", "B", "C"])
    data = bytearray((flash / eventlog.FILE).read_bytes())
    second = log.read(0, 10)[1][0] % 64 * 256
    data[second + 5:second + 20] = b"x" * 15
    (flash / eventlog.FILE).write_bytes(bytes(data))
    assert [r[3] for r in eventlog.EventLog().read(0, 10)] == ["A", "C"]


def test_a_flash_that_refuses_keeps_the_log_and_the_queue(monkeypatch):
    log = eventlog.EventLog()
    write(log, ["A"])
    log.add(0, "B")

    def refuse(name, mode="r"):
        raise OSError(errno.EIO, "EIO")
    with monkeypatch.context() as patched:
        patched.setattr(eventlog, "open", refuse, raising=False)
        with pytest.raises(OSError):
            log.flush()
    assert [r[3] for r in log.read(0, 10)] == ["A", "B"]  # nothing wiped, B still queued
    log.flush()
    assert [r[3] for r in eventlog.EventLog().read(0, 10)] == ["A", "B"]


def test_reading_the_log_stops_at_the_end_of_its_ring(flash):
    # the firmware writes only inside its ring; a longer file (damage, an old format) is
    # never read past it, so a boot's scan is bounded in time and heap whatever the file
    log = eventlog.EventLog()
    write(log, ["A", "B"])
    ring = 64 * 256
    stray = eventlog.wire.frame("999 1 0 STRAY").ljust(255) + "\n"
    with open(flash / eventlog.FILE, "ab") as f:
        f.write(b"\0" * (ring - f.tell()) + stray.encode() * 100)
    again = eventlog.EventLog()
    assert [r[3] for r in again.read(0, 100)] == ["A", "B"]
    assert again.seq == log.seq


# a FAULT as the supervisor logs it: code, the readings that tripped it, and why
LONG_FAULT = ("FAULT code=TACH_LOST ma=1234 tc=48.5 mv=11860 hz=101.49 dep=0.750 : drive "
              "40000/65535 and 1234 mA: motor turns, no pulses from the tachometer for 250 ms")


def test_a_fault_record_keeps_its_whole_text(flash):
    log = eventlog.EventLog()
    write(log, ["A", LONG_FAULT, "B"])
    assert [r[3] for r in eventlog.EventLog().read(0, 10)] == ["A", LONG_FAULT, "B"]


def old_log(flash, records, size=128):
    """An event log as the firmware before whole FAULT texts wrote it: records of 128
    bytes; (seq, boot, up, text) each."""
    data = bytearray()
    for seq, boot, up, text in records:
        at = seq % 64 * size
        line = eventlog.wire.frame(eventlog.wire.record(seq, boot, up, text))[: size - 1]
        data[len(data):] = b"\0" * max(0, at + size - len(data))
        data[at:at + size] = (line.ljust(size - 1) + "\n").encode()
    (flash / eventlog.FILE).write_bytes(bytes(data))


OLD = [(seq, 3 + seq // 30, 100 * seq, "E%d" % seq) for seq in range(30, 100)]  # wrapped


def test_an_old_log_of_shorter_records_is_read_and_numbered_on(flash):
    old_log(flash, OLD)
    log = eventlog.EventLog()
    assert log.read(0, 100) == OLD[-64:]
    assert log.boot == OLD[-1][1] + 1 and log.seq == OLD[-1][0] + 1
    write(log, [LONG_FAULT])
    again = eventlog.EventLog()
    assert again.read(0, 100)[-1][3] == LONG_FAULT and again.read(0, 100)[:-1] == OLD[-63:]


class CutAfter:
    """A file whose n-th write is torn (half its bytes land) by a power cut."""

    def __init__(self, f, box):
        self.f, self.box = f, box

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def seek(self, at):
        return self.f.seek(at)

    def read(self, n):
        return self.f.read(n)

    def write(self, data):
        self.box[0] -= 1
        if self.box[0] == 0:
            self.f.write(data[: len(data) // 2])
            raise OSError(errno.EIO, "power cut")
        return self.f.write(data)


@pytest.mark.parametrize("cut_at", [1, 2, 17, 33, 40, 63, 64])
def test_an_upgrade_cut_short_goes_on_at_the_next_boot(flash, monkeypatch, cut_at):
    old_log(flash, OLD)
    box = [cut_at]
    real_open = open
    with monkeypatch.context() as patched:
        patched.setattr(eventlog, "open",
                        lambda name, mode="r": CutAfter(real_open(name, mode), box),
                        raising=False)
        eventlog.EventLog()  # the boot the power went in (it must not raise)
    assert box[0] == 0
    # seq 64 sits in slot 0, the last one moved: its own write tears it, the one record a
    # cut may cost; every other record is kept
    kept = [r for r in OLD[-64:] if cut_at != 64 or r[0] != 64]
    assert eventlog.EventLog().read(0, 100) == kept
