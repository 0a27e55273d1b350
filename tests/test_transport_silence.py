"""Telemetry silence is judged by the host's reader, not the wall clock: a host too busy to
run the reader for a while (the board's lines waiting in the kernel) is not a silent board."""

import socket
import threading
import time

import pytest
from penctl.errors import LinkError
from penctl.firmware import wire
from penctl.transport import Transport

LINE = (wire.frame(wire.telemetry("st=IDLE")) + "\n").encode()


class _Board:
    """A TCP peer on 127.0.0.1 sending a telemetry line every 20 ms while `talking`."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.url = "socket://127.0.0.1:%d" % self.server.getsockname()[1]
        self.talking = threading.Event()
        self.talking.set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            while not self.done.wait(0.02):
                if self.talking.is_set():
                    conn.sendall(LINE)

    def close(self):
        self.done.set()
        self.thread.join(timeout=30)
        self.server.close()


@pytest.fixture
def board_and_link():
    board = _Board()
    link = Transport(board.url)
    yield board, link
    link.close()
    board.close()


def _hold_reader(link, seconds):
    """Keep the reader from reading for `seconds`, as a busy host keeps a thread from
    running: its next read waits, and the board's lines wait in the kernel meanwhile."""
    read, released = link.serial.read, time.monotonic() + seconds

    def held(size=1):
        time.sleep(max(0.0, released - time.monotonic()))
        return read(size)

    link.serial.read = held


def test_a_reader_the_host_holds_up_is_no_silence(board_and_link):
    board, link = board_and_link
    assert link.next_telemetry(5.0)
    _hold_reader(link, 2.0)
    time.sleep(0.1)  # the reader is inside the held read
    while not link.telemetry.empty():
        link.telemetry.get_nowait()
    assert link.next_telemetry(0.5)["st"] == "IDLE"  # waited for the reader, not 0.5 s


def test_a_silent_board_is_still_found_silent(board_and_link):
    board, link = board_and_link
    assert link.next_telemetry(5.0)
    board.talking.clear()
    time.sleep(0.1)
    while not link.telemetry.empty():
        link.telemetry.get_nowait()
    with pytest.raises(LinkError, match="no telemetry for 0.5 s") as info:
        link.next_telemetry(0.5)
    assert info.value.code == "NO_TELEMETRY"
