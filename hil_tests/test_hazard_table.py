"""The hazard table is complete: every fault code the protocol defines is tripped by a
named test, and every test the table names exists."""

import subprocess
import sys
from pathlib import Path

import pytest
from hazards import HAZARDS, INTERLOCKS
from penctl.firmware import protocol as P

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def collected(request):
    """The test ids that exist: this run's own when it collected every named one (a whole
    suite's run, each xdist worker collecting it all), else a collection of hil_tests."""
    here = {item.nodeid for item in request.session.items}
    if {t for h in HAZARDS for t in h["tests"]} <= here:
        return here
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                          "no:xdist", "hil_tests"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return {line.strip() for line in out.splitlines() if "::" in line}


def test_every_fault_code_has_a_hazard_and_a_test():
    covered = {code for h in HAZARDS if h["tests"] for code in h["faults"]}
    missing = [name for name in [name for name, _ in P.FAULTS] if name not in covered]
    assert missing == [], "fault codes with no hazard entry and test: %s" % missing


def test_every_injectable_interlock_is_in_a_hazard():
    codes = {code for h in HAZARDS for code in h["faults"]}
    assert {spec[0] for spec in INTERLOCKS.values()} <= codes


def test_every_named_test_exists(collected):
    named = {t for h in HAZARDS for t in h["tests"]}
    assert sorted(named - collected) == []


def test_every_hazard_names_evidence():
    for h in HAZARDS:
        assert h["tests"], h["hazard"]
        assert h["cause"] and h["interlock"]
