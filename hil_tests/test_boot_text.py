"""What an ESP32 prints at a reset before MicroPython starts (the ROM's lines at 115200, the
second-stage bootloader's up to its entry; a watchdog's panic first), on the board's UART,
and the host's tools reading past it: the client, deploy, mpremote, pen flash."""

import socket
import threading

import pytest
from conftest import mpremote, patient_pen, wait_until
from penctl.deploy import deploy
from penctl.flash import flash
from test_flash import PTY, esp_image, flash_bytes

pytestmark = pytest.mark.injects

POWERON = b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
SW_CPU = b"rst:0xc (SW_CPU_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
ENTRY = b"entry 0x4008059c\r\n"  # the second-stage bootloader's last line
TASK_WDT = b"task_wdt: Task watchdog got triggered"


class Listener:
    """A host on the board's UART that keeps all it receives (each socket:// connection
    sees everything the board sends)."""

    def __init__(self, board):
        clients = board.bridge.clients
        before = len(clients)
        host, port = board.url[len("socket://"):].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.data = bytearray()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        # connected is not yet on the UART: the board's server thread takes the connection
        # in its own time, and what the board sends before that reaches no one, as a real
        # UART's bytes before a host opens the port (a busy host lost the banner so)
        wait_until(lambda: len(clients) > before, 10, "the UART to take the listener")

    def _read(self):
        while True:
            try:
                chunk = self.sock.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            self.data += chunk

    def close(self):
        self.sock.close()
        self.thread.join(timeout=5)


def press_en(board, pen):
    board.reset()


def machine_reset(board, pen):
    pen.request("RESET")


def hang(board, pen):
    board.inject("hang")


RESETS = {  # how, what the UART shows in that order, what the firmware then reports
    "en": (press_en, [b"ets Jun  8 2016 00:22:57\r\n\r\n" + POWERON, ENTRY], "PWRON"),
    "machine.reset": (machine_reset, [SW_CPU, ENTRY], "HARD"),
    "watchdog": (hang, [TASK_WDT, b"Rebooting...\r\n", SW_CPU, ENTRY], "WATCHDOG"),
}


def in_order(data, parts):
    at = 0
    for part in parts:
        at = data.find(part, at)
        if at < 0:
            return False
    return True


@pytest.mark.parametrize("kind", sorted(RESETS))
def test_each_reset_prints_the_chips_boot_text_and_the_host_reads_past_it(board, kind):
    how, shown, cause = RESETS[kind]
    listener = Listener(board)
    try:
        with patient_pen(board.url) as pen:
            how(board, pen)
        wait_until(lambda: in_order(listener.data, shown), 30, "the boot text")
    finally:
        listener.close()
    with patient_pen(board.url) as pen:  # the client finds the firmware past the text
        assert pen.info["reset"] == cause
    report = deploy(board.url)  # resets into service mode and back: more boot text
    assert report.copied == [] and not report.removed
    with patient_pen(board.url) as pen:
        assert pen.info["fw"] == report.version
        pen.service()
    wait_until(lambda: "service mode" in board.output(), 30, "service-mode boot")
    assert mpremote(board.url, "exec", "print(6 * 7)").strip() == "42"


def test_download_mode_prints_its_banner_and_pen_flash_reads_past_it(board, tmp_path):
    listener = Listener(board)
    try:
        board.enter_download_mode()
        wait_until(lambda: b"waiting for download\r\n" in listener.data, 10, "the banner")
        assert b"boot:0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))" in listener.data
    finally:
        listener.close()
    image = esp_image(tmp_path / "fw.bin", size=4096)
    flash(board.url, image, "virtual", **PTY)  # esptool's default flow: the stub
    assert flash_bytes(board)[0x1000:0x1000 + 4096] == image.read_bytes()
    board.reset()
    with patient_pen(board.url) as pen:
        assert pen.info["reset"] == "PWRON" and pen.status().state == "IDLE"
