"""The deploy's part in keyed access (firmware/auth.py): the key the board is to hold, and
the event log records of the deploy and of a key change. Run at the board's raw REPL
(deploy.BoardRepl), in service mode."""

import hashlib

from . import keys
from .firmware import integrity, wire


def place(repl, on_board, report, log):
    """The key the board is to hold: the host's for its unique id (written if the board's
    differs), or a new one. on_board: the survey's hash of the board's key file."""
    uid = repl.exec("import machine, binascii\n"
                    "print(binascii.hexlify(machine.unique_id()).decode())").strip()
    try:
        key = keys.load(uid)
        report.key = "kept" if on_board == hashlib.sha256(key).hexdigest() else "written"
    except keys.MissingKeyError:
        key = keys.new(uid)
        report.key = "new"
        log("a new key for board %s: %s (keep it: service mode and calibration need it)"
            % (uid, keys.path(uid)))
    if report.key != "kept":
        repl.write(integrity.KEY_FILE, key, None)
    return key


def record(repl, report, version):
    """The deploy, and a key change, as records for the board's event log: left in the file
    the firmware logs them from at its next boot (admin_cmds._deployed)."""
    lines = [wire.text("DEPLOY", [("fw", version), ("files", len(report.copied))])]
    if report.key != "kept":
        lines.append(wire.text("KEY", [("change", report.key)]))
    repl.write(integrity.DEPLOYED, "\n".join(lines).encode(), None)
