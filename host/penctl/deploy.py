"""Deploy the pen firmware onto a board with mpremote.

mpremote is used as a library: one connection and one raw-REPL session for the whole job,
with progress per file. The order makes every interruption safe:

1. A running firmware is asked for SERVICE (refused while the needles run): it restarts
   without the application and its watchdog, so the REPL is free. A board already at the
   REPL (service mode, bare MicroPython) is used as it is; one whose firmware cannot be
   asked is put in service mode from the REPL.
2. The board's files are hashed on the board. Everything the bundle does not hold (files
   and folders) is removed, but the manifest and the firmware's data (integrity.DATA); then
   only files whose hash differs are copied.
3. The manifest (integrity.py's format) is written last. Until then the board's old
   manifest no longer matches, so a half-done deploy boots into the INTEGRITY lockout,
   never into a mix of old and new modules.
4. The service flag is removed, the board soft-resets (boot.py, main.py) and the deploy
   waits until the firmware answers with its version.
"""

import ast
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import boards, patience
from .client import Pen
from .errors import LinkError, RefusedError, UsageError
from .firmware import app_mode, integrity
from .paths import FIRMWARE_DIR, firmware_sources

BOARD_FILE = "board.json"
CODE_SUFFIXES = (".py", ".mpy")
# MicroPython runs boot.py and main.py only as source. codes.py too stays source: a .mpy
# module keeps every constant of its file alive while it is loaded, and codes holds the
# operators' texts, which the board drops once it has run (about 10 KB of heap).
SOURCE_ONLY = ("boot.py", "main.py", "codes.py")
# MicroPython's native architectures, indexed as in sys.implementation._mpy >> 10
MPY_ARCHES = (None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
              "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc")


@dataclass
class Report:
    board: str
    version: str = ""
    mpy_arch: str = ""  # empty: deployed as source
    copied: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    bytes_copied: int = 0
    seconds: float = 0.0


# ---- what goes onto the board -----------------------------------------------------------------
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
    import hashlib

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


# ---- the board side ---------------------------------------------------------------------------
# Sent after integrity.py's own source, so the board hashes its files with the very code
# that checks them at boot, whatever the board holds now.
_SURVEY = """
def _survey():
    import json, sys
    files = {}
    for n in os.listdir():
        files[n] = %r if os.stat(n)[0] & 0x4000 else digest(n)
    try:
        with open(%r) as f:
            board = json.load(f).get("name")
    except Exception:
        board = None
    print(repr({"files": files, "board": board, "mpy": getattr(sys.implementation, "_mpy", 0)}))
_survey()
"""
FOLDER = "<folder>"  # the survey's entry for a folder (no hash)
_REMOVE = """
import os
def _rm(n):
    if os.stat(n)[0] & 0x4000:
        for e in os.listdir(n):
            _rm(n + "/" + e)
        os.rmdir(n)
    else:
        os.remove(n)
_rm(%r)
"""
_PROMPT = b">>> "
_CHUNK = 1024  # bytes per write; raw-paste flow control keeps the board's buffer safe


class BoardRepl:
    """The board's raw REPL through mpremote's SerialTransport, with pen-sized errors."""

    def __init__(self, port):
        from mpremote.transport import TransportError
        from mpremote.transport_serial import SerialTransport

        self.port = port
        self.error = TransportError
        for _ in range(5):  # a port just closed by the client may take a moment
            try:
                self.t = SerialTransport(port, baudrate=115200)
                return
            except TransportError:
                time.sleep(0.2)
        raise LinkError("cannot open %s: check the port name and that no other program "
                        "(pen monitor, mpremote, a terminal) holds it" % port, "OPEN")

    def close(self):
        self.t.close()

    def enter(self):
        try:
            self.t.enter_raw_repl(soft_reset=False, timeout_overall=patience.scaled(5))
        except self.error:
            raise LinkError("the board on %s gives no MicroPython REPL: is MicroPython flashed "
                            "(pen flash) and the board powered?" % self.port, "NO_REPL") from None

    def exec(self, code):
        try:
            return self.t.exec(code).decode()
        except self.error as e:
            raise LinkError("the board failed while deploying: %s" % e, "REPL") from None

    def wait_prompt(self, timeout=15):
        """After a reset: wait until the friendly REPL answers a bare Enter with its prompt
        (its first prompt may have gone out before the port was open)."""
        deadline = time.monotonic() + patience.scaled(timeout)
        while time.monotonic() < deadline:
            self.t.serial.write(b"\r")
            if self.t.read_until(1, _PROMPT, timeout=0.5).endswith(_PROMPT):
                return
        raise LinkError("the board on %s did not come back to the REPL after its reset"
                        % self.port, "NO_REPL")

    def in_service_mode(self):
        return self.exec("import os\nprint(%r in os.listdir())" % app_mode.SERVICE_FLAG) \
            .strip() == "True"

    def survey(self):
        """{'files': {name: sha256}, 'board': name or None, 'mpy': sys.implementation._mpy}"""
        source = (FIRMWARE_DIR / "integrity.py").read_text()
        return ast.literal_eval(self.exec(source + _SURVEY % (FOLDER, BOARD_FILE)).strip())

    def write(self, name, data, progress):
        try:
            self.t.fs_writefile(name, data, chunk_size=_CHUNK, progress_callback=progress)
        except (self.error, OSError) as e:
            raise LinkError("writing %s on the board failed: %s" % (name, e), "WRITE") from None

    def remove(self, name):
        """Remove a file, or a folder with everything in it."""
        self.exec(_REMOVE % name)

    def hard_reset(self):
        self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        time.sleep(0.3)
        self.wait_prompt()

    def soft_reset(self):
        """Friendly-REPL Ctrl-D: boot.py and then main.py run, as after power-on."""
        self.t.exit_raw_repl()
        time.sleep(0.1)
        self.t.serial.write(b"\x04")


# ---- the job ----------------------------------------------------------------------------------
def deploy(port, board=None, mpy=True, log=None, progress=None, firmware_dir=None):
    """Deploy the firmware to the board on `port`; returns a Report.

    board: a board definition name; default: the one the board holds, else esp32-devkitc.
    mpy: the modules go as .mpy for the board's own format (the default: nothing to compile
    at boot, and less of the heap taken), else as source.
    log(message) reports steps; progress(name, done, total) the bytes of each file copied.
    """
    log = log or (lambda message: None)
    started = time.monotonic()
    # everything that can be wrong on this side is found before the board is touched: a
    # typo must not leave the pen in service mode at the raw REPL
    expected = check_options(board, mpy, firmware_dir)
    asked = _ask_for_service(port, log, board)
    repl = BoardRepl(port)
    try:
        if asked:
            repl.wait_prompt()
        repl.enter()
        if not repl.in_service_mode():  # quickly: a watchdog may still be running
            log("putting the board in service mode from the REPL (no watchdog)")
            repl.exec("open(%r, 'w').close()" % app_mode.SERVICE_FLAG)
            repl.hard_reset()
            repl.enter()
        found = repl.survey()
        report = Report(board=board or found["board"] or "esp32-devkitc")
        report.mpy_arch = mpy_target(found["mpy"]) if mpy else ""
        files = bundle(report.board, report.mpy_arch if mpy else None, firmware_dir)
        # first: a folder where a file goes must go before the file can be written
        _remove_stale(repl, files, found["files"], report, log)
        _copy_changed(repl, files, found["files"], report, progress or (lambda *a: None), log)
        _finish(repl, files, log)
    finally:
        repl.close()
    report.version = _wait_for_firmware(port, expected, log)
    report.seconds = round(time.monotonic() - started, 1)
    return report


def check_options(board, mpy, firmware_dir):
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


def _ask_for_service(port, log, board=None):
    """True if a running firmware agreed to restart in service mode. Without a board name,
    the one the firmware reports must be known here (checked before SERVICE)."""
    try:
        with Pen(port, timeout=patience.scaled(0.5), retries=3,
                 connect_timeout=patience.scaled(2)) as pen:
            said = pen.info.get("board", "?")
            if board is None and said != "?":
                boards.load(said)
            log("firmware %s answers; restarting it in service mode" % pen.info.get("fw", "?"))
            pen.service()
            return True
    except RefusedError as e:
        raise RefusedError("deploy refused by the board (%s): stop the pen and try again"
                           % e.message, e.code) from None
    except LinkError as e:
        if e.code not in ("REPL", "NO_ANSWER", "PROTOCOL"):
            raise
        log("no pen firmware answers on %s; using the MicroPython REPL" % port)
        return False


def _copy_changed(repl, files, on_board, report, progress, log):
    import hashlib

    for name, data in files.items():
        if on_board.get(name) == hashlib.sha256(data).hexdigest():
            report.unchanged.append(name)
            continue
        log("copying %s (%d bytes)" % (name, len(data)))
        repl.write(name, data, lambda done, total, name=name: progress(name, done, total))
        report.copied.append(name)
        report.bytes_copied += len(data)


def _remove_stale(repl, files, on_board, report, log):
    """Remove everything on the board this deploy does not put there, folders included,
    but the manifest and the firmware's own data (integrity.DATA): the boot check takes
    anything else for a mismatch, as a stray .py or package would shadow a module."""
    for name in sorted(on_board):
        kept = name in files and on_board[name] != FOLDER
        if not kept and name != integrity.MANIFEST and name not in integrity.DATA:
            log("removing %s%s" % (name, "/ and everything in it" if on_board[name] == FOLDER
                                   else ""))
            repl.remove(name)
            report.removed.append(name)
            on_board.pop(name)


def _finish(repl, files, log):
    log("writing the manifest and leaving service mode")
    tmp = integrity.MANIFEST + ".new"
    repl.write(tmp, manifest(files).encode(), None)
    repl.exec("import os\ntry:\n os.remove(%r)\nexcept OSError:\n pass\nos.rename(%r, %r)\n"
              "os.remove(%r)" % (integrity.MANIFEST, tmp, integrity.MANIFEST,
                                 app_mode.SERVICE_FLAG))
    repl.soft_reset()


def _wait_for_firmware(port, expected, log, timeout=15):
    log("waiting for the firmware to answer")
    time.sleep(0.3)
    try:
        with Pen(port, connect_timeout=patience.scaled(timeout)) as pen:
            version = pen.info.get("fw", "?")
            status = pen.status()
            # main.py's minimal lockout says fw=? and answers nothing but HELLO, STATUS, SERVICE
            minimal = version == "?"
            locked = "INTEGRITY" in status.faults and not minimal
            faults = pen.faults() if locked else []
    except LinkError as e:
        raise LinkError("the files are on the board but the firmware did not start: %s"
                        % e.message, e.code) from None
    if minimal:
        raise RefusedError("the files are on the board but the firmware did not start: the "
                           "board runs its minimal lockout (%s); its boot output says why"
                           % ",".join(status.faults), "BOOT")
    if locked:
        raise RefusedError("the board rejects the deployed files (INTEGRITY): %s"
                           % "; ".join(f["detail"] for f in faults), "INTEGRITY")
    if version != expected:
        raise RefusedError("the board runs firmware %s after deploying %s" % (
            version, expected), "VERSION")
    return version
