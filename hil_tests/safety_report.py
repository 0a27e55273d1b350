"""`make safety-report [PORT=...]`: the hazard table as Markdown, each test with its evidence
for the firmware in this checkout (penctl.evidence): pass, FAIL, skip, stale (a result from
another firmware) or missing. Exits 1 when a hazard lacks current passing evidence on the
virtual board. With --port, a real board's evidence, listed apart; tests that need the
virtual board's fault injection cannot run there and are listed as such."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from hazards import HAZARDS, INTERLOCKS, stated_reaction_ticks  # noqa: E402
from penctl import boards, evidence  # noqa: E402

# verdicts that are current, passing evidence on each kind of board
CURRENT = {"pass"}
CURRENT_ON_A_REAL_BOARD = {"pass", "skip"}  # skipped there: needs the fault injection


def main(argv=None, results=evidence.RESULTS):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", default=None, help="a real board's evidence (its URL)")
    args = parser.parse_args(argv)
    kind = evidence.identify(args.port) if args.port else evidence.VIRTUAL
    firmware = evidence.firmware_id()
    known = evidence.load(results)
    runs = known.get(kind, {})
    print("# Hazard table\n")
    print("Evidence for firmware %s on the %s%s.\n" % (
        firmware, "virtual board (definition %s)" % evidence.board_id("virtual")
        if kind == evidence.VIRTUAL else "board %s at %s" % (kind, args.port),
        "" if runs else ": none recorded yet; run `make test` (`make hil PORT=...` for a real "
        "board) first"))
    if args.port and kind.startswith("port "):
        others = sorted(k for k in known if k != evidence.VIRTUAL)
        print("The board at %s did not answer HELLO, so its chip id is unknown; evidence is "
              "recorded for: %s.\n" % (args.port, ", ".join(others) or "no real board"))
    print("| hazard | cause | interlock | fault codes | tests (evidence) |")
    print("|---|---|---|---|---|")
    lacking = []
    good = CURRENT if kind == evidence.VIRTUAL else CURRENT_ON_A_REAL_BOARD
    for h in HAZARDS:
        marks = []
        for test in h["tests"]:
            mark = evidence.verdict(runs.get(test), firmware)
            if mark not in good:
                lacking.append((h["hazard"], test, mark))
            if mark == "skip" and kind != evidence.VIRTUAL:
                mark = "cannot be tested on a real board"
            marks.append("%s: %s" % (mark, test.split("::", 1)[1]))
        print("| %s | %s | %s | %s | %s |" % (h["hazard"], h["cause"], h["interlock"],
                                            ", ".join(h["faults"]) or "-", "<br>".join(marks)))
    _interlocks()
    stamps = sorted({r["at"] for r in runs.values()})
    if stamps:
        print("\nResults recorded from %s to %s." % (stamps[0], stamps[-1]))
    if lacking:
        print("\n%d tests lack current passing evidence, e.g. %s (%s)." % (
            len(lacking), lacking[0][1], lacking[0][2]))
    return 1 if lacking else 0


def _interlocks():
    board = boards.load("virtual")
    print("\n# Interlocks on the virtual board\n")
    print("| injected | fault code | stated reaction (control ticks of %d ms) |"
          % board["timing"]["tick_ms"])
    print("|---|---|---|")
    for name, (code, *_rest) in sorted(INTERLOCKS.items()):
        print("| %s | %s | %d |" % (name, code, stated_reaction_ticks(name, board)))


if __name__ == "__main__":
    sys.exit(main())
