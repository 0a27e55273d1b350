"""Only the wire layer (firmware/wire.py) composes or splits a protocol line: every other
module of the firmware and of penctl calls it. This test reads their source and fails on
the shapes a hand-written line takes: an event, telemetry or error head, a reply's
'<seq> OK', a 'name=value' pair, a CRC trailer, or a split on the protocol's separators."""

import ast
import re
from pathlib import Path

import pytest
from penctl.paths import CHECKOUT, FIRMWARE_DIR, firmware_sources

HOST_DIR = Path(__file__).resolve().parents[1] / "host" / "penctl"
WIRE = FIRMWARE_DIR / "wire.py"
# main.py's minimal lockout speaks the protocol by itself on purpose: it runs when the
# firmware's own modules (wire.py among them) are damaged, so it imports none of them
MINIMAL_LOCKOUT = "# The minimal lockout."

# a line's head, a reply, a name=value pair, a CRC trailer
_COMPOSED = re.compile(r"^(! |~ |- ERR|OK\b|ERR\b)|%[ds] (OK|ERR)\b|\w=%|%s=|\*%08X| : %")
_SEPARATORS = (" : ", " | ", ";", "; ", " *", "=")
_SPLITTERS = ("split", "partition", "rpartition")
_JOINERS = (" : ", " | ")  # "; " joins an operator's list of reasons too
# the docs' markdown tables are joined with " | ": no protocol line
_JOINS_ALLOWED = ("docs.py",)


def _modules():
    sources = [p for p in firmware_sources() if p != WIRE]
    sources += sorted(p for p in HOST_DIR.rglob("*.py") if "sim" not in p.parts)
    return sources


def _findings(path):
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if MINIMAL_LOCKOUT not in node.value and _COMPOSED.search(node.value):
                found.append("line %d composes %r" % (node.lineno, node.value[:40]))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            first = node.args[0] if node.args else None
            if node.func.attr in _SPLITTERS and isinstance(first, ast.Constant) \
                    and first.value in _SEPARATORS:
                found.append("line %d splits on %r" % (node.lineno, first.value))
            if node.func.attr == "join" and isinstance(receiver, ast.Constant) \
                    and receiver.value in _JOINERS and path.name not in _JOINS_ALLOWED:
                found.append("line %d joins with %r" % (node.lineno, receiver.value))
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(CHECKOUT)))
def test_only_the_wire_layer_writes_or_reads_protocol_lines(path):
    assert not _findings(path)


def test_the_check_finds_a_hand_written_line(tmp_path):
    # the shapes the firmware and the host used before the wire layer
    for text in ('events.append("! FAULT code=%s : %s" % (a, b))',
                 'link.reply(seq, "ERR %s : %s" % (code, message))',
                 'return "st=%s" % P.STATES[s]',
                 'return "%d OK" % seq',
                 'for part in message.split(" | "): pass',
                 'head, _, message = body.partition(" : ")',
                 'name, _, value = tok.partition("=")',
                 'x = " | ".join(items)', 'parts = message.split(";")'):
        path = tmp_path / "m.py"
        path.write_text(text + "\n")
        assert _findings(path), text
