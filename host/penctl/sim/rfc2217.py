"""The virtual board as an RFC 2217 port on 127.0.0.1, carrying DTR and RTS.

pyserial's PortManager speaks the protocol; DTR/RTS land on ModemLines, which models the
ESP32 dev board's auto-reset circuit (two transistors): EN is pulled low while RTS is
asserted and DTR is not, IO0 while DTR is asserted and RTS is not. EN has a capacitor, so
the chip samples IO0 a few milliseconds after EN is released: low boots the ROM bootloader,
high boots MicroPython.
Bytes go to the board's own UART (its link bridge) in-process, so it is the same UART
either way, without crossing the board's PTY.
"""

import socket
import threading
import time

from serial.rfc2217 import PortManager


class ModemLines:
    """The serial-port object PortManager drives: settings are accepted, DTR/RTS are wired
    to EN and IO0 of the board."""

    def __init__(self, board):
        self.board = board
        self.baudrate, self.bytesize, self.parity, self.stopbits = 115200, 8, "N", 1
        self.xonxoff = self.rtscts = self.break_condition = False
        self.cts = self.dsr = self.ri = self.cd = False
        self._dtr = self._rts = False
        self.en_low = False
        self._release = None  # the pending boot while EN's capacitor charges

    @property
    def dtr(self):
        return self._dtr

    @dtr.setter
    def dtr(self, value):
        self._dtr = bool(value)
        self._apply()

    @property
    def rts(self):
        return self._rts

    @rts.setter
    def rts(self, value):
        self._rts = bool(value)
        self._apply()

    EN_RC_S = 0.08  # spans one RFC 2217 round trip (pyserial polls acks every 50 ms)

    def _apply(self):
        en_low = self._rts and not self._dtr
        if en_low and not self.en_low:
            self._release = None
            self.board.hold_in_reset()
        elif self.en_low and not en_low:
            self._release = release = object()
            threading.Thread(target=self._boot, args=(release,), daemon=True).start()
        self.en_low = en_low

    def _boot(self, release):
        time.sleep(self.EN_RC_S)
        if self._release is release:  # EN stayed high: the chip samples IO0 and boots
            self._release = None
            self.board.release_reset(download=self._dtr and not self._rts)

    def reset_input_buffer(self):
        pass

    def reset_output_buffer(self):
        pass


class Rfc2217Server:
    def __init__(self, board):
        self.board = board
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.url = "rfc2217://127.0.0.1:%d" % self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="pen-rfc2217")
        self._thread.start()

    def close(self):
        self._stop.set()
        self.sock.close()
        self._thread.join(timeout=2)

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a UART, not a stream
                self._session(conn)

    def _session(self, conn):
        uart = self.board.bridge.attach()
        uart.settimeout(0.05)
        lines = ModemLines(self.board)
        lock = threading.Lock()

        class Writer:
            @staticmethod
            def write(data):
                with lock:
                    conn.sendall(data)

        manager = PortManager(lines, Writer())
        done = threading.Event()

        def board_to_client():
            while not done.is_set():
                try:
                    data = uart.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                try:
                    Writer.write(b"".join(manager.escape(data)))
                except OSError:
                    return

        pump = threading.Thread(target=board_to_client, daemon=True)
        pump.start()
        conn.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    data = conn.recv(4096)
                except TimeoutError:
                    continue
                if not data:
                    break
                payload = b"".join(manager.filter(data))
                if payload:
                    uart.sendall(payload)
        except OSError:
            pass
        finally:
            done.set()
            pump.join(timeout=1)
            uart.close()
            self.board.bridge.detach()
