"""What goes onto a board: the firmware modules (as source or compiled to .mpy for the
board's own bytecode format) and its board definition, with the manifest the firmware's boot
check reads (integrity.py's format).

`pen deploy` (deploy.py) copies a bundle over mpremote; the virtual board (sim/) writes the
same bundle straight into its flash directory. Neither depends on the other, nor this module
on the client.
"""

import ast
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from . import boards
from .errors import UsageError
from .firmware import integrity
from .paths import FIRMWARE_DIR, firmware_sources

BOARD_FILE = "board.json"
# MicroPython runs main.py only as source. The firmware has no boot.py, and a deploy removes
# the one MicroPython writes on a new filesystem (inisetup.py): while boot.py runs, Ctrl-C
# is on, and one that interrupts it skips main.py for the REPL (ports/esp32/main.c at
# v1.26.0; docs/safety.md, "Ctrl-C"). codes.py too stays source: a .mpy
# module keeps every constant of its file alive while it is loaded, and codes holds the
# operators' texts, which the board drops once it has run (about 10 KB of heap).
SOURCE_ONLY = ("main.py", "codes.py")
# MicroPython's native architectures, indexed as in sys.implementation._mpy >> 10
MPY_ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")


def bundle(board_name, mpy_arch=None, firmware_dir=None):
    """{name: bytes} of everything deployed: the firmware modules and the board definition,
    in a stable order. With `mpy_arch` (an mpy-cross -march name, or "" for bytecode that
    loads on any architecture) the modules go as .mpy."""
    files = {}
    for src in firmware_sources(firmware_dir):
        if mpy_arch is not None and src.name not in SOURCE_ONLY:
            files[src.stem + ".mpy"] = compile_mpy(src, mpy_arch)
        else:
            files[src.name] = src.read_bytes()
    definition = boards.firmware_definition(boards.load(board_name))
    files[BOARD_FILE] = (boards.to_json(definition) + "\n").encode()
    return files


def manifest(files):
    """The manifest text for a bundle: one SHA-256 per deployed file."""
    return integrity.format_manifest(
        (name, hashlib.sha256(data).hexdigest()) for name, data in files.items())


def firmware_version(firmware_dir=None):
    """FIRMWARE_VERSION as written in a firmware tree's codes.py (read, not imported:
    the tree may be a patched copy)."""
    text = (Path(firmware_dir or FIRMWARE_DIR) / "codes.py").read_text()
    found = re.search(r'^FIRMWARE_VERSION = "([^"]+)"', text, re.M)
    if not found:
        raise UsageError("no FIRMWARE_VERSION in %s/codes.py" % (firmware_dir or FIRMWARE_DIR))
    return found.group(1)


_compiled = {}  # (name, source, arch) -> .mpy: each virtual board deploys the same files


def compile_mpy(src, arch):
    key = (src.name, src.read_bytes(), arch)
    if key not in _compiled:
        _compiled[key] = _mpy_cross(src, arch)
    return _compiled[key]


def _mpy_cross(src, arch):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / (src.stem + ".mpy")
        march = ["-march=" + arch] if arch else []
        # -O3: no line-number tables (a traceback still names each function; INTERNAL
        # reports carry no line numbers anyway), ~1 KB less heap on the VM
        done = subprocess.run([sys.executable, "-m", "mpy_cross", *march, "-O3",
                               "-s", src.name, "-o", str(out), str(src)],
                              capture_output=True, text=True)
        if done.returncode:
            raise UsageError("mpy-cross could not compile %s: %s" % (
                src.name, (done.stderr or done.stdout).strip()))
        return out.read_bytes()


def mpy_cross_version():
    """(major, minor) of the .mpy format the installed mpy-cross emits."""
    out = subprocess.run([sys.executable, "-m", "mpy_cross", "--version"],
                         capture_output=True, text=True).stdout
    found = re.search(r"mpy v(\d+)\.(\d+)", out)
    if not found:
        raise UsageError("cannot tell which .mpy format mpy-cross emits (%r)" % out.strip())
    return int(found.group(1)), int(found.group(2))


def mpy_target(mpy_word):
    """The board's .mpy format from sys.implementation._mpy: (major, minor, arch name).
    Raise UsageError if mpy-cross cannot build for it."""
    major, minor, arch_index = mpy_word & 0xFF, (mpy_word >> 8) & 3, mpy_word >> 10
    if not mpy_word or arch_index >= len(MPY_ARCHES):
        raise UsageError("the board does not say which .mpy files it loads; deploy with --source")
    if (major, minor) != mpy_cross_version():
        raise UsageError("the board loads .mpy v%d.%d but mpy-cross emits v%d.%d: deploy "
                         "with --source, or flash the MicroPython release mpy-cross matches"
                         % ((major, minor) + mpy_cross_version()))
    return MPY_ARCHES[arch_index] or ""


def check_buildable(board, mpy, firmware_dir):
    """Raise UsageError for anything of a deploy that can be checked without the board: the
    board definition, the firmware tree and each module's syntax, mpy-cross. Returns the
    firmware version the tree holds."""
    if board is not None:
        boards.load(board)
    source_dir = Path(firmware_dir or FIRMWARE_DIR)
    sources = firmware_sources(source_dir)
    if not sources:
        raise UsageError("no firmware modules in %s" % source_dir)
    for src in sources:
        try:
            ast.parse(src.read_bytes(), str(src))
        except (SyntaxError, ValueError) as e:
            raise UsageError("%s will not compile: %s" % (src.name, e)) from None
    if mpy:
        mpy_cross_version()
    return firmware_version(firmware_dir)
