"""Flash a MicroPython image onto a board with esptool.

The image is checked before anything is written (ESP image magic, chip id in its header
against the board's chip); esptool (run as `python -m esptool`, the real CLI) detects the
chip, uploads its stub flasher (unless told not to), writes at the chip's app offset, and
verifies the MD5 the chip computes.
"""

import functools
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


def _esptool(port, chip, args, stub, before, after, echo, attempts=7, config=None):
    cmd = [sys.executable, "-m", "esptool", "--chip", chip.name, "--port", port,
           "--before", before, "--after", after, "--connect-attempts", str(attempts)]
    if not stub:
        cmd.append("--no-stub")
    env = dict(os.environ, ESPTOOL_CFGFILE=config) if config else None
    proc = subprocess.Popen(cmd + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        echo(line.rstrip("\n"))
    proc.wait()
    output = "".join(lines)
    if proc.returncode:
        for pattern, message in _FAILURES:
            if pattern.search(output):
                raise LinkError(message % {"port": port}, "FLASH")
        raise LinkError("esptool failed (exit %d): %s" % (
            proc.returncode, output.strip().splitlines()[-1] if output.strip() else "no output"),
            "FLASH")
    return output


def _field(output, label):
    match = re.search(r"^%s:\s*(.+)$" % label, output, re.M)
    return match.group(1).strip() if match else "?"


def flash(port, firmware, board="esp32-devkitc", erase=False, stub=True, before="default-reset",
          after="hard-reset", echo=lambda line: None, connect_attempts=7, compress=False):
    """Check the image, then erase (optionally), write and verify it. Returns what esptool
    reported: chip, MAC, flash size, offset and bytes written."""
    definition = boards.load(board)
    chip = chips.CHIPS[definition["chip"]]
    check_image(firmware, chip)
    with tempfile.TemporaryDirectory(prefix="pen-flash-") as tmp:
        config = None
        if "physics" in definition:  # a virtual board
            config = os.path.join(tmp, "esptool.cfg")
            Path(config).write_text(VIRTUAL_ROM_TIMINGS)
        esptool = functools.partial(_esptool, port, chip, echo=echo, config=config)
        return _flash_with(esptool, chip, firmware, erase, stub, before, after,
                           connect_attempts, compress)


def _flash_with(esptool, chip, firmware, erase, stub, before, after, connect_attempts,
                compress):
    stay = "no-reset"
    info = esptool(["flash-id"], stub, before, stay, attempts=connect_attempts)
    report = {"chip": _field(info, "Chip type"), "mac": _field(info, "MAC"),
              "flash_size": _field(info, "Detected flash size"), "offset": chip.app_offset,
              "bytes": Path(firmware).stat().st_size}
    if erase:
        if stub:
            esptool(["erase-flash"], stub, "no-reset", stay)
        else:  # the ROM has no erase-all; it erases regions
            size = report["flash_size"].rstrip("MB")
            length = int(size) * 1024 * 1024 if size.isdigit() else 4 * 1024 * 1024
            esptool(["erase-region", "0x0", hex(length)], stub, "no-reset", stay)
    write = ["write-flash"] + (["-z"] if compress else []) + [hex(chip.app_offset), str(firmware)]
    # entered afresh with `before`: a port opened anew asserts DTR with RTS, and with DTR
    # asserted the auto-reset circuit cannot pull EN low, so the hard reset after the write
    # would not reset (esptool's reset sequence ends with DTR released)
    out = esptool(write, stub, before, after)
    if "Hash of data verified" not in out:
        raise LinkError("esptool wrote the image but did not verify it; flash again", "FLASH")
    return report
