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
    assert (flash / eventlog.FILE).stat().st_size == 64 * 128  # it never grows past its ring
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
    second = log.read(0, 10)[1][0] % 64 * 128
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
    ring = 64 * 128
    stray = eventlog.wire.frame("999 1 0 STRAY").ljust(127) + "\n"
    with open(flash / eventlog.FILE, "ab") as f:
        f.write(b"\0" * (ring - f.tell()) + stray.encode() * 100)
    again = eventlog.EventLog()
    assert [r[3] for r in again.read(0, 100)] == ["A", "B"]
    assert again.seq == log.seq
