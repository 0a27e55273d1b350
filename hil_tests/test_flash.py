"""Flashing with the real esptool against the virtual board's ROM bootloader."""

import hashlib
import os
import subprocess
import sys
import threading

import pytest
import serial
from conftest import board_sleep, patient_pen, wait_until
from penctl import LinkError, Pen, RefusedError, UsageError
from penctl.flash import VIRTUAL_ROM_TIMINGS, flash
from penctl.sim import VirtualBoard

pytestmark = pytest.mark.injects
PTY = {"stub": False, "before": "no-reset", "after": "no-reset"}


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
    flash(board.port, esp_image(tmp_path / "fw.bin"), "virtual", erase=True, **PTY)
    with open(board.flash_image, "r+b") as f:  # then the app header gets wiped
        f.seek(0x1000)
        f.write(b"\xff" * 32)
    board.reset()
    wait_until(lambda: "invalid header" in board.bridge.vm_output_tail() or
               not board.booted_app, 2, "boot refused")
    assert not board.booted_app and not board.observe()["vm_running"]


@pytest.mark.long
def test_esptool_over_rfc2217_with_the_real_reset_sequence(board, tmp_path):
    # DTR/RTS travel over RFC 2217 to the emulated auto-reset circuit: esptool's own
    # reset sequence enters the ROM bootloader, its hard reset boots the new image.
    # (Slow: pyserial's RFC 2217 client waits up to 50 ms for each purge acknowledgement.)
    image = esp_image(tmp_path / "fw.bin", size=2048)
    url = board.rfc2217_url
    # the virtual ROM's patience, as pen flash gives it (flash.py); the run's own ceiling
    # is a guard against a hang: under load its link waited on the kernel for 94 s
    cfg = tmp_path / "esptool.cfg"
    cfg.write_text(VIRTUAL_ROM_TIMINGS)
    env = dict(os.environ, ESPTOOL_CFGFILE=str(cfg))
    done = subprocess.run([sys.executable, "-m", "esptool", "--chip", "esp32", "--port", url,
                           "--no-stub", "write-flash", "0x1000", str(image)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Hash of data verified" in done.stdout and "Hard resetting" in done.stdout
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
