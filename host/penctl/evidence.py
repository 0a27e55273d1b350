"""HIL results as safety evidence: each one says which firmware and which board it is for.

A result is evidence only for the firmware it ran on the board it ran on. The firmware is
named by a hash of its source tree (firmware/*.py): the same whether a board got `.py` or
`.mpy` files and whether it is virtual or real. The board definition is hashed apart. Results
are kept per board ("virtual", or a real board's name and chip id from its HELLO, "port <url>"
if it did not answer), so a run on a real board never overwrites the virtual board's
evidence, and a run of a patched firmware (the mutants, `PEN_FIRMWARE_DIR`) records nothing
at all.
"""

import hashlib
import json
import os
import time
from pathlib import Path

from . import boards, patience
from .paths import CHECKOUT, FIRMWARE_DIR, firmware_sources

# PEN_RESULTS: another file (a test of the recording itself, a CI job's own)
RESULTS = Path(os.environ.get("PEN_RESULTS")
               or (CHECKOUT or Path.cwd()) / ".pen-results" / "hil.json")
VIRTUAL = "virtual"


def firmware_id(firmware_dir=FIRMWARE_DIR):
    """16 hex digits of SHA-256 over the firmware source tree (names and bytes)."""
    h = hashlib.sha256()
    for path in firmware_sources(firmware_dir):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def board_id(name):
    """16 hex digits of SHA-256 over the board definition as deployed (board.json)."""
    text = boards.to_json(boards.firmware_definition(boards.load(name)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def kind_of(port, hello=None):
    """The evidence's board: the virtual board, or a real one by the name and chip id its
    HELLO gave (the same board on any port), or by its port when it did not answer."""
    if not port:
        return VIRTUAL
    if hello and hello.get("uid"):
        return "%s %s" % (hello.get("board", "?"), hello["uid"])
    return "port %s" % port


def identify(port):
    """kind_of() a real board, asking it HELLO (None if it does not answer)."""
    from .client import Pen
    from .errors import PenError

    try:
        with Pen(port, timeout=patience.scaled(0.5), retries=2,
                 connect_timeout=patience.scaled(3)) as pen:
            return kind_of(port, pen.info)
    except PenError:
        return kind_of(port)


def load(path=RESULTS):
    """{board kind: {test node id: record}}; empty when nothing was recorded."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def record(outcomes, kind, firmware, board, path=RESULTS):
    """Add this run's {node id: outcome} to the board kind's evidence, stamped."""
    known = load(path)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    mine = known.setdefault(kind, {})
    for nodeid, outcome in outcomes.items():
        mine[nodeid] = {"outcome": outcome, "at": stamp, "firmware": firmware, "board": board}
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(known, indent=1, sort_keys=True))


def verdict(entry, firmware):
    """pass, FAIL, skip, stale (another firmware's result) or missing."""
    if entry is None:
        return "missing"
    if entry.get("firmware") != firmware:
        return "stale"
    return {"passed": "pass", "failed": "FAIL", "skipped": "skip"}.get(entry["outcome"],
                                                                    entry["outcome"])
