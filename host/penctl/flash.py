"""Flash a MicroPython image onto a board with esptool.

The image is checked before anything is written (ESP image magic, chip id in its header
against the board's chip); then the real esptool, through its scripting API in a process of
its own (flash_session.py), on one connection: it detects the chip, uploads its stub flasher
(unless told not to), erases if asked, writes at the chip's app offset, and verifies the MD5
the chip computes.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import boards, chips
from .errors import LinkError, RefusedError, UsageError


def check_image(path, chip):
    """Raise RefusedError unless `path` is an ESP image for `chip` (a chips.Chip)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError("no firmware image at %s; download the ESP32 MicroPython image from "
                         "https://micropython.org/download/ and pass its path" % path)
    header = path.read_bytes()[:24]
    if len(header) < 24 or header[0] != chips.IMAGE_MAGIC:
        raise RefusedError("%s is not an ESP firmware image (first byte %s, expected 0xe9); "
                           "nothing was written" % (path, "0x%02x" % header[0] if header else
                                                    "missing"), "IMAGE")
    image_chip = int.from_bytes(header[12:14], "little")
    if image_chip != chip.image_chip_id:
        other = chips.BY_IMAGE_ID.get(image_chip)
        raise RefusedError("%s is built for %s, but the board has an %s; nothing was written"
                           % (path, other.name if other else "chip id %d" % image_chip,
                              chip.name), "IMAGE")


_FAILURES = [
    (re.compile(r"could not open port|No such file or directory|Errno 2", re.I),
     "cannot open %(port)s: check the port name (pen ports lists them)"),
    (re.compile(r"Resource temporarily unavailable|Could not exclusively lock|busy", re.I),
     "%(port)s is busy: close the program holding it (pen monitor, mpremote, a terminal)"),
    (re.compile(r"Failed to connect|No serial data received|Wrong boot mode", re.I),
     "the board on %(port)s did not answer the ROM bootloader: put it in download mode "
     "(hold BOOT, press EN) and try again"),
    (re.compile(r"This chip is (\S+)", re.I),
     "the board on %(port)s is not the chip its board definition names: pick the right --board"),
]


# A virtual board's ROM bootloader is a thread of the host, not silicon: a busy host can
# keep it from answering for seconds, where a chip's ROM answers in microseconds and
# esptool waits 0.1 s for a sync and 3 s for any answer ("No more data to read from the
# serial port" in a loaded test run; a busy host's kernel held every PTY for 45 s at
# once). esptool's own configuration file, its documented
# way to tune its timings to a link, gives it that link's patience; a real board's ROM
# keeps esptool's own figures.
VIRTUAL_ROM_TIMINGS = ("[esptool]\ntimeout = 90\nsync_timeout = 1\n"
                       "mem_end_rom_timeout = 90\n")


def _run(command, echo, config=None):
    env = dict(os.environ, ESPTOOL_CFGFILE=config) if config else None
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        echo(line.rstrip("\n"))
    proc.wait()
    return proc.returncode, "".join(lines)


def _failure(port, returncode, output):
    for pattern, message in _FAILURES:
        if pattern.search(output):
            return LinkError(message % {"port": port}, "FLASH")
    return LinkError("esptool failed (exit %d): %s" % (
        returncode, output.strip().splitlines()[-1] if output.strip() else "no output"), "FLASH")


def _field(output, label):
    match = re.search(r"^%s:\s*(.+)$" % label, output, re.M)
    return match.group(1).strip() if match else "?"


def flash(port, firmware, board="esp32-devkitc", erase=False, stub=True, before="default-reset",
          after="hard-reset", echo=lambda line: None, connect_attempts=7, compress=False):
    """Check the image, then erase (optionally), write and verify it, on one connection
    (flash_session.py). Returns what esptool reported: chip, MAC, flash size, offset and
    bytes written."""
    definition = boards.load(board)
    chip = chips.CHIPS[definition["chip"]]
    check_image(firmware, chip)
    command = [sys.executable, "-m", "penctl.flash_session", "--chip", chip.name,
               "--port", port, "--before", before, "--after", after,
               "--connect-attempts", str(connect_attempts)]
    command += [flag for flag, wanted in (("--no-stub", not stub), ("--erase", erase),
                                          ("--compress", compress)) if wanted]
    command += [hex(chip.app_offset), str(firmware)]
    with tempfile.TemporaryDirectory(prefix="pen-flash-") as tmp:
        config = None
        if "physics" in definition:  # a virtual board
            config = os.path.join(tmp, "esptool.cfg")
            Path(config).write_text(VIRTUAL_ROM_TIMINGS)
        returncode, output = _run(command, echo, config)
    if returncode:
        raise _failure(port, returncode, output)
    if "Hash of data verified" not in output:
        raise LinkError("esptool wrote the image but did not verify it; flash again", "FLASH")
    return {"chip": _field(output, "Chip type"), "mac": _field(output, "MAC"),
            "flash_size": _field(output, "Detected flash size"), "offset": chip.app_offset,
            "bytes": Path(firmware).stat().st_size}
