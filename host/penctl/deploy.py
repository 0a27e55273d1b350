"""Deploy the pen firmware onto a board with mpremote.

What goes onto the board (the bundle, its manifest, .mpy compiling) is bundle.py's; this
module carries it over. mpremote is used as a library: one connection and one raw-REPL
session for the whole job, with progress per file. The order makes every interruption safe:

1. A running firmware is asked for SERVICE (refused while the needles run): it restarts
   without the application and its watchdog, so the REPL is free. A board already at the
   REPL (service mode, bare MicroPython) is used as it is; one whose firmware cannot be
   asked is put in service mode from the REPL.
2. The board's files are hashed on the board. Everything the bundle does not hold (files
   and folders) is removed, but the manifest and the firmware's data (integrity.DATA); then
   only files whose hash differs are copied.
3. The board's key (keys.py, firmware/auth.py): the one this host holds for the board's
   unique id, or a new one when it holds none (a board erased and reflashed, or new).
   The deploy and a key change are event log records.
4. The manifest (integrity.py's format) is written last, then its MAC under the key.
   Until then the board's old manifest no longer matches, so a half-done deploy boots
   into the INTEGRITY lockout, never into a mix of old and new modules.
5. The service flag is removed, the board soft-resets (main.py runs) and the deploy
   waits until the firmware answers with its version.
"""

import ast
import time
from dataclasses import dataclass, field

from . import board_key, boards, keys, patience
from .bundle import (  # noqa: F401 (firmware_version: `pen version` takes it from here)
    BOARD_FILE,
    bundle,
    check_buildable,
    firmware_version,
    manifest,
    mpy_target,
)
from .client import Pen
from .errors import LinkError, RefusedError
from .firmware import app_mode, integrity
from .paths import FIRMWARE_DIR


@dataclass
class Report:
    board: str
    version: str = ""
    mpy_arch: str = ""  # empty: deployed as source
    copied: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    key: str = ""  # "new", "written" (the host's, to a board without it) or "kept"
    bytes_copied: int = 0
    seconds: float = 0.0


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
        """Friendly-REPL Ctrl-D: main.py runs (after boot.py, if any), as after power-on."""
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
    expected = check_buildable(board, mpy, firmware_dir)
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
        key = board_key.place(repl, found["files"].get(integrity.KEY_FILE), report, log)
        board_key.record(repl, report, expected)
        _finish(repl, files, key, log)
    finally:
        repl.close()
    report.version = _wait_for_firmware(port, expected, log)
    report.seconds = round(time.monotonic() - started, 1)
    return report


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
    except keys.MissingKeyError:
        raise
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
        if not kept and name not in (integrity.MANIFEST, integrity.MAC) and \
                name not in integrity.DATA:
            log("removing %s%s" % (name, "/ and everything in it" if on_board[name] == FOLDER
                                   else ""))
            repl.remove(name)
            report.removed.append(name)
            on_board.pop(name)


def _finish(repl, files, key, log):
    log("writing the manifest and leaving service mode")
    tmp = integrity.MANIFEST + ".new"
    text = manifest(files)
    repl.write(tmp, text.encode(), None)
    repl.exec("import os\ntry:\n os.remove(%r)\nexcept OSError:\n pass\nos.rename(%r, %r)\n"
              % (integrity.MANIFEST, tmp, integrity.MANIFEST))
    # last: until the MAC matches, the boot check refuses the new manifest
    repl.write(integrity.MAC, integrity.manifest_mac(key, text).encode(), None)
    repl.exec("import os\nos.remove(%r)" % app_mode.SERVICE_FLAG)
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
