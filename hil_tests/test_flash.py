"""Flashing with the real esptool against the virtual board's ROM bootloader."""

import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import serial
from conftest import board_sleep, patient_pen, wait_until
from penctl import LinkError, Pen, RefusedError, UsageError
from penctl.flash import VIRTUAL_ROM_TIMINGS, flash
from penctl.sim import VirtualBoard

# esptool as a library in this process reads its configuration once, at import: the virtual
# ROM's patience, as pen flash gives it (a busy host keeps the ROM's thread waiting)
_CFG = Path(tempfile.mkdtemp(prefix="pen-esptool-")) / "esptool.cfg"
_CFG.write_text(VIRTUAL_ROM_TIMINGS)
os.environ.setdefault("ESPTOOL_CFGFILE", str(_CFG))
from esptool.bin_image import ESP32FirmwareImage, ImageSegment  # noqa: E402
from esptool.loader import StubFlasher  # noqa: E402
from esptool.targets import CHIP_DEFS  # noqa: E402
from esptool.util import FatalError, UnsupportedCommandError  # noqa: E402

pytestmark = pytest.mark.injects
# DTR/RTS cannot travel on a PTY: the board is put in download mode by hand
PTY = {"before": "no-reset", "after": "no-reset"}


def esp_image(path, chip_id=0, size=50000, magic=0xE9, compressible=False):
    header = bytearray(24)
    header[0:4] = bytes([magic, 3, 2, 0x20])
    header[12:14] = chip_id.to_bytes(2, "little")
    body = (bytes(range(256)) * (size // 256 + 1))[:size - 24] if compressible else \
        os.urandom(size - 24)
    path.write_bytes(bytes(header) + body)
    return path


def flash_bytes(board):
    return board.flash_image.read_bytes()


def test_esptool_writes_verifies_and_the_board_boots_the_image(board, tmp_path):
    image = esp_image(tmp_path / "fw.bin")
    board.enter_download_mode()
    lines = []
    report = flash(board.port, image, "virtual", echo=lines.append, **PTY)
    assert report["chip"].startswith("ESP32") and report["mac"] == board.uid.hex(":")
    assert report["flash_size"] == "4MB" and report["offset"] == 0x1000
    assert any("Hash of data verified" in line for line in lines)
    data = flash_bytes(board)
    assert data[0x1000:0x1000 + image.stat().st_size] == image.read_bytes()
    board.reset()
    with patient_pen(board.url) as pen:
        assert pen.status().state == "IDLE"


@pytest.mark.long(11)
def test_erase_then_compressed_write(board, tmp_path):
    image = esp_image(tmp_path / "fw.bin", compressible=True)
    board.enter_download_mode()
    flash(board.port, image, "virtual", erase=True, compress=True, **PTY)
    assert any(op == 0x11 for op, _ in board.bridge.rom.log)  # FLASH_DEFL_DATA was used
    data = flash_bytes(board)
    assert data[0x1000:0x1000 + image.stat().st_size] == image.read_bytes()
    assert data[0x100000:0x100010] == b"\xff" * 16


def test_a_virtual_rom_a_busy_host_answers_late_still_takes_the_image(board, tmp_path):
    # a chip's ROM answers in microseconds; the virtual board's is a thread of the host,
    # which a busy host can keep waiting for seconds, longer than esptool's 3 s for an
    # answer (a loaded run ended in "Serial data stream stopped")
    image = esp_image(tmp_path / "fw.bin", size=6000)
    board.enter_download_mode()
    done = threading.Event()

    def busy_host():  # once the write has begun, the ROM's thread waits 3.5 s
        wait_until(lambda: done.is_set() or any(op == 0x02 for op, _ in board.bridge.rom.log),
                   30, "FLASH_BEGIN")
        with board.bridge.starved():
            done.wait(3.5)

    host = threading.Thread(target=busy_host)
    host.start()
    try:
        lines = []
        flash(board.port, image, "virtual", echo=lines.append, **PTY)
    finally:
        done.set()
        host.join()
    assert any("Hash of data verified" in line for line in lines)
    assert flash_bytes(board)[0x1000:0x1000 + 6000] == image.read_bytes()


@pytest.mark.parametrize("magic, chip_id, words", [
    (0x00, 0, "not an ESP firmware image"),
    (0xE9, 9, "built for esp32s3"),
])
def test_wrong_images_are_refused_before_anything_is_written(board, tmp_path, magic, chip_id,
                                                               words):
    image = esp_image(tmp_path / "bad.bin", chip_id=chip_id, magic=magic)
    board.enter_download_mode()
    before = hashlib.sha256(flash_bytes(board)).digest()
    with pytest.raises(RefusedError, match=words):
        flash(board.port, image, "virtual", **PTY)
    assert hashlib.sha256(flash_bytes(board)).digest() == before
    assert board.bridge.rom.log == []  # esptool was never even started


def test_missing_image_and_missing_port(board, tmp_path):
    with pytest.raises(UsageError, match="no firmware image"):
        flash(board.port, tmp_path / "none.bin", "virtual", **PTY)
    with pytest.raises(LinkError, match="cannot open"):
        flash(str(tmp_path / "ttyNOPE"), esp_image(tmp_path / "fw.bin"), "virtual", **PTY)


def test_busy_port_and_board_not_in_download_mode(board, tmp_path):
    image = esp_image(tmp_path / "fw.bin")
    with serial.serial_for_url(board.port, exclusive=True):
        with pytest.raises(LinkError, match="busy"):
            flash(board.port, image, "virtual", **PTY)
    with pytest.raises(LinkError, match="did not answer the ROM bootloader"):
        flash(board.port, image, "virtual", connect_attempts=1, **PTY)
    with patient_pen(board.url) as pen:  # the firmware shrugged off esptool's bytes
        assert pen.status().state == "IDLE"


def test_blank_flash_does_not_boot(board, tmp_path):
    board.enter_download_mode()
    flash(board.port, esp_image(tmp_path / "fw.bin"), "virtual", **PTY)
    with open(board.flash_image, "r+b") as f:  # then the app header gets wiped
        f.seek(0x1000)
        f.write(b"\xff" * 32)
    board.reset()
    wait_until(lambda: "invalid header" in board.bridge.vm_output_tail() or
               not board.booted_app, 2, "boot refused")
    assert not board.booted_app and not board.observe()["vm_running"]


@pytest.mark.long(25)
def test_esptool_over_rfc2217_with_the_real_reset_sequence(board, tmp_path):
    # DTR/RTS travel over RFC 2217 to the emulated auto-reset circuit: esptool's own
    # reset sequence enters the ROM bootloader, its stub flasher writes, its hard reset
    # boots the new image. (Slow: pyserial's RFC 2217 client waits up to 50 ms for each
    # purge acknowledgement.)
    image = esp_image(tmp_path / "fw.bin", size=2048)
    url = board.rfc2217_url
    # the virtual ROM's patience, as pen flash gives it (flash.py); the run's own ceiling
    # is a guard against a hang: under load its link waited on the kernel for 94 s
    cfg = tmp_path / "esptool.cfg"
    cfg.write_text(VIRTUAL_ROM_TIMINGS)
    env = dict(os.environ, ESPTOOL_CFGFILE=str(cfg))
    done = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32", "--port", url,
                           "write-flash", "0x1000", str(image)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Hash of data verified" in done.stdout and "Hard resetting" in done.stdout
    assert "Stub flasher running" in done.stdout
    assert flash_bytes(board)[0x1000:0x1000 + 2048] == image.read_bytes()
    wait_until(lambda: board.observe()["vm_running"], 5, "board boots after the hard reset")
    board_sleep(0.5)
    with Pen(url) as pen:
        assert pen.info["reset"] == "PWRON"
        assert pen.status().state == "IDLE"


def test_esp32s3_is_detected_by_its_chip_id_and_flashed_at_0x0(tmp_path):
    image = esp_image(tmp_path / "fw-s3.bin", chip_id=9)
    with VirtualBoard(chip="esp32s3") as board:
        board.enter_download_mode()
        lines = []
        report = flash(board.port, image, "esp32s3-devkitc", echo=lines.append, **PTY)
        assert report["chip"].startswith("ESP32-S3") and report["offset"] == 0
        assert report["mac"] == board.uid.hex(":")
        assert board.flash_image.read_bytes()[:image.stat().st_size] == image.read_bytes()
        with pytest.raises(RefusedError, match="built for esp32, but the board has an esp32s3"):
            flash(board.port, esp_image(tmp_path / "fw.bin"), "esp32s3-devkitc", **PTY)
        board.reset()  # the S3 boots what sits at 0x0
        with patient_pen(board.url) as pen:
            assert pen.status().state == "IDLE"


def rom_session(board):
    """esptool's loader, as a library, synced with the board's ROM in download mode."""
    board.enter_download_mode()
    esp = CHIP_DEFS["esp32"](board.url)
    try:
        esp.connect("no-reset", attempts=3)
    except BaseException:
        esp._port.close()
        raise
    return esp


def test_the_rom_answers_a_command_it_lacks_as_unsupported(board):
    # the ESP32 ROM has no GET_SECURITY_INFO: esptool's detection relies on its answer
    esp = rom_session(board)
    try:
        with pytest.raises(UnsupportedCommandError):
            esp.get_security_info(cache=False)
        assert esp.read_reg(0x40001000) == 0x00F01D83  # the ROM still answers
    finally:
        esp._port.close()


def test_the_flash_answers_only_after_spi_attach_with_its_id_and_sfdp(board):
    esp = rom_session(board)
    try:
        assert esp.flash_id(cache=False) == 0xFFFFFF  # SPI0 not attached: the bus reads high
        esp.flash_spi_attach(0)
        assert esp.flash_id(cache=False) == 0x1640EF  # a W25Q32: EF 40 16
        assert esp.read_spiflash_sfdp(0, 32) == 0x50444653  # "SFDP"
        assert esp.read_spiflash_sfdp(0x10, 8) == 0xFF  # no second header: not an XMC part
    finally:
        esp._port.close()


def test_esptools_stub_runs_and_erasing_takes_the_flash_chips_time(board):
    esp = rom_session(board)
    try:
        stub = esp.run_stub()
        assert stub.IS_STUB and stub.read_reg(0x40001000) == 0x00F01D83
        started = time.monotonic()
        stub.erase_region(0x100000, 0x100000)  # 16 blocks of 64 KB, 150 ms each
        assert time.monotonic() - started >= 16 * 0.150 * 0.9  # a busy host only adds
        assert flash_bytes(board)[0x100000:0x200000] == b"\xff" * 0x100000
    finally:
        esp._port.close()


def test_only_esptools_own_stub_runs(board):
    esp = rom_session(board)
    try:
        stub = StubFlasher(esp)
        stub.text = stub.text[:100] + bytes([stub.text[100] ^ 0xFF]) + stub.text[101:]
        esp._port.timeout = 5  # esptool's own waits for OHAI as long as the port does
        with pytest.raises(FatalError, match="Failed to start stub flasher"):
            esp.run_stub(stub)  # other code loaded to RAM runs, and says nothing
    finally:
        esp._port.close()


@pytest.mark.parametrize("stub", [True, False], ids=["stub", "rom"])
def test_load_ram_runs_code_that_is_not_the_stub_as_silent_code(board, tmp_path, stub):
    image = ESP32FirmwareImage()
    segment = ImageSegment(0x40080000, bytes(64))
    segment.name = ".iram0.text"
    image.segments, image.entrypoint = [segment], 0x40080000
    image.save(str(tmp_path / "ram.bin"))
    board.enter_download_mode()
    done = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32", "--port",
                           board.url, "--before", "no-reset"] + ([] if stub else ["--no-stub"])
                          + ["load-ram", str(tmp_path / "ram.bin")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "executing at 0x40080000" in done.stdout
    assert any(op == 0x06 for op, _ in board.bridge.rom.log)  # MEM_END, to run it
    esp = CHIP_DEFS["esp32"](board.url)
    try:
        with pytest.raises(FatalError):
            esp.connect("no-reset", attempts=1)  # the chip runs that code: no ROM answers
    finally:
        esp._port.close()
    board.reset()
    with patient_pen(board.url) as pen:
        assert pen.info["reset"] == "PWRON" and pen.status().state == "IDLE"


def test_a_terminal_opening_the_rfc2217_port_leaves_the_board_running(board):
    # pyserial asserts DTR then RTS as it opens a port: IO0 low, then both, never EN low
    with serial.serial_for_url(board.rfc2217_url, timeout=1):
        board_sleep(0.6)
    assert board.bridge.rom is None and board.observe()["vm_running"]
    with patient_pen(board.url) as pen:
        assert pen.info["reset"] == "PWRON"


@pytest.mark.long(23)
def test_pen_flash_with_its_defaults_over_rfc2217_boots_the_new_image(board, tmp_path):
    image = esp_image(tmp_path / "fw.bin", size=4096)
    lines = []
    report = flash(board.rfc2217_url, image, "virtual", echo=lines.append)
    assert report["mac"] == board.uid.hex(":")
    assert any("Stub flasher" in line for line in lines)
    assert flash_bytes(board)[0x1000:0x1000 + 4096] == image.read_bytes()
    wait_until(lambda: board.observe()["vm_running"], 10, "board boots after the hard reset")
    with patient_pen(board.url) as pen:
        assert pen.info["reset"] == "PWRON" and pen.status().state == "IDLE"
