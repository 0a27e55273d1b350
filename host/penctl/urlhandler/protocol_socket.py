"""socket://HOST:PORT, pyserial's raw TCP port, made to behave as a UART for penctl:
- `in_waiting` counts the bytes waiting. pyserial's own answers 1 or 0 (whether any wait),
  so a reader that asks for `in_waiting` bytes took every line a byte at a time: three
  system calls a byte, seconds of lag on a busy host.
- Bytes go out when written (TCP_NODELAY). With Nagle's algorithm a small write waits for
  the peer's acknowledgement of the last one (up to 40 ms, delayed): mpremote's raw paste,
  a run of small writes, took twice as long.
- Closing takes no extra 0.3 s: pyserial's waits "for quick reconnects", and a deploy
  (four connections) spent a second on it.
For the virtual board's port (VirtualBoard.url) and any serial-to-TCP bridge (ser2net)."""

import array
import contextlib
import fcntl
import socket
import termios

from serial import PortNotOpenError
from serial.urlhandler import protocol_socket


class Serial(protocol_socket.Serial):
    def open(self):
        super().open()
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        if self.is_open and self._socket is not None:
            with contextlib.suppress(OSError):  # a peer gone first
                self._socket.shutdown(socket.SHUT_RDWR)
            self._socket.close()
            self._socket = None
        self.is_open = False

    @property
    def in_waiting(self):
        if not self.is_open:
            raise PortNotOpenError()
        count = array.array("i", [0])
        fcntl.ioctl(self._socket.fileno(), termios.FIONREAD, count)
        return count[0]
