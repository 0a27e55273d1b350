"""The virtual board's UART as `socket://127.0.0.1:PORT`, pyserial's raw TCP URL: what the
tests use, beside the PTY a user opens. A busy host can hold a PTY's kernel worker for a
minute and more, and every `select` on the PTY waits for it (docs/figures.md, "Figures");
a connection here is a socket in the link bridge's own `select`, with no tty layer between."""

import socket
import threading


class SocketPort:
    def __init__(self, board):
        self.bridge = board.bridge
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = "socket://127.0.0.1:%d" % self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True, name="pen-socket")
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a UART, not a stream
            self.bridge.add_client(conn.detach())

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(timeout=2)
