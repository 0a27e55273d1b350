"""`make safety-report`: the hazard table as Markdown, with each test's last result
(from .pen-results/hil.json, written by every HIL run)."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from conftest import RESULTS  # noqa: E402
from hazards import HAZARDS, INTERLOCKS, stated_reaction_ticks  # noqa: E402
from penctl import boards  # noqa: E402

MARK = {"passed": "pass", "failed": "FAIL", "skipped": "skip"}


def main():
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    print("# Hazard table\n")
    print("| hazard | cause | interlock | fault codes | tests (last result) |")
    print("|---|---|---|---|---|")
    for h in HAZARDS:
        tests = "<br>".join("%s: %s" % (MARK.get(results.get(t, {}).get("outcome"), "not run"),
                                        t.split("::", 1)[1]) for t in h["tests"])
        print("| %s | %s | %s | %s | %s |" % (h["hazard"], h["cause"], h["interlock"],
                                            ", ".join(h["faults"]) or "-", tests))
    board = boards.load("virtual")
    print("\n# Interlocks on the virtual board\n")
    print("| injected | fault code | stated reaction (control ticks of %d ms) |"
          % board["timing"]["tick_ms"])
    print("|---|---|---|")
    for name, (code, *_rest) in sorted(INTERLOCKS.items()):
        print("| %s | %s | %d |" % (name, code, stated_reaction_ticks(name, board)))
    stamps = sorted({r["at"] for r in results.values()})
    print("\nResults: %s" % ("last run %s" % stamps[-1] if stamps else
                            "none recorded yet; run `make test` first"))


if __name__ == "__main__":
    main()
