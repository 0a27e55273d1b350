"""The virtual board as an RFC 2217 port on 127.0.0.1, carrying DTR and RTS.

pyserial's PortManager speaks the protocol; DTR/RTS land on ModemLines, which models the
ESP32 dev board's auto-reset circuit (two transistors): EN is pulled low while RTS is
asserted and DTR is not, IO0 while DTR is asserted and RTS is not. EN has a capacitor, so
the chip samples IO0 a few milliseconds after EN is released: low boots the ROM bootloader,
high boots MicroPython.

esptool steps from "in reset" (DTR off, RTS on) to "boot mode selected" (DTR on, RTS off)
with two writes, DTR first (esp_pylib serial_reset.classic_bootloader_reset, which esptool
uses on rfc2217:// ports). On a USB bridge they land microseconds apart, well inside EN's
RC delay; over RFC 2217 pyserial waits for each write's acknowledgement (50 ms polls), and
between them EN would be released with IO0 still high. So, as esptool's own RFC 2217
server recognises its reset sequence on the server side (esp_rfc2217_server/
esp_port_manager.py), DTR asserted while EN is held low is taken as the first half of that
step: EN stays low until the next line change arrives (or 0.5 s pass, when the circuit's
own verdict stands), and the circuit keeps its real delay.
Bytes go to the board's own UART (its link bridge) in-process, so it is the same UART
either way, without crossing the board's PTY.
"""

import socket
import threading
import time

from serial.rfc2217 import PortManager

from .. import patience


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
        self._step = None  # DTR's half of esptool's step to boot mode, awaiting RTS's

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

    # EN's RC on a DevKitC V4 (esp32_devkitc_v4-sch: 10 kOhm to 3V3, 0.1 uF to ground):
    # tau = 1 ms, and the chip leaves reset as EN crosses 0.75 VDD (its VIH), ln 4 tau
    # later: 1.4 ms, taken as 2 ms
    EN_RC_S = 0.002
    STEP_S = 0.5  # how long DTR's half of esptool's step to boot mode holds EN low

    def _apply(self, step_over=False):
        en_low = self._rts and not self._dtr
        if self.en_low and self._dtr and self._rts and not step_over:  # DTR's half of a step
            self._step = step = object()
            threading.Thread(target=self._step_ends, args=(step,), daemon=True).start()
            return
        self._step = None
        if en_low and not self.en_low:
            self._release = None
            self.board.hold_in_reset()
        elif self.en_low and not en_low:
            self._release = release = object()
            threading.Thread(target=self._boot, args=(release,), daemon=True).start()
        self.en_low = en_low

    def _step_ends(self, step):
        time.sleep(self.STEP_S)
        if self._step is step:  # no second half came: the lines stand as they are
            self._step = None
            self._apply(step_over=True)

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
        # pyserial's client gives the server 3 s of the host's time to answer its option
        # negotiation (at open, and after each reset esptool pulses); this server is a thread
        # of this host, which a busy host kept from running for longer (esptool's "Remote
        # does not seem to support RFC2217"): the host's patience for a virtual board
        self.url = "rfc2217://127.0.0.1:%d?timeout=%g" % (self.sock.getsockname()[1],
                                                           patience.scaled(3))
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
