"""penctl's socket:// handler (penctl/urlhandler): what pyserial's own got wrong for a UART."""

import socket
import time

import penctl.transport  # noqa: F401  (puts penctl's handlers ahead of pyserial's)
import serial


def _served():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    return server, "socket://127.0.0.1:%d" % server.getsockname()[1]


def test_in_waiting_counts_the_bytes_and_nodelay_is_set():
    server, url = _served()
    with server, serial.serial_for_url(url, timeout=0.05) as port:
        peer, _ = server.accept()
        with peer:
            peer.sendall(b"x" * 100)
            deadline = time.monotonic() + 30
            while port.in_waiting < 100 and time.monotonic() < deadline:
                time.sleep(0.001)
            assert port.in_waiting == 100  # pyserial's own says 1
            assert port.read(port.in_waiting) == b"x" * 100 and port.in_waiting == 0
            nodelay = port._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert nodelay


def test_close_does_not_sleep(monkeypatch):
    server, url = _served()
    with server:
        port = serial.serial_for_url(url)
        slept = []
        monkeypatch.setattr(time, "sleep", slept.append)
        port.close()
        assert slept == [] and not port.is_open  # pyserial's own sleeps 0.3 s here
