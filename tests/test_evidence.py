"""HIL results are evidence only for the firmware and the board they ran on, and
`make safety-report` says so: stale, missing, and an exit code when a hazard lacks evidence."""

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest
from penctl import evidence
from penctl.paths import CHECKOUT as ROOT
from penctl.paths import FIRMWARE_DIR

HIL = ROOT / "hil_tests"


def _module(name):
    sys.path.insert(0, str(HIL))
    try:
        spec = importlib.util.spec_from_file_location(name, HIL / (name + ".py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(HIL))


report = _module("safety_report")
HAZARDS = _module("hazards").HAZARDS
ALL_TESTS = sorted({t for h in HAZARDS for t in h["tests"]})


def test_the_firmware_id_follows_the_source_tree(tmp_path):
    copy = tmp_path / "fw"
    shutil.copytree(FIRMWARE_DIR, copy)
    assert evidence.firmware_id(copy) == evidence.firmware_id()
    (copy / "caps.py").write_text((copy / "caps.py").read_text() + "\n# edited\n")
    assert evidence.firmware_id(copy) != evidence.firmware_id()


@pytest.fixture
def results(tmp_path):
    return tmp_path / "hil.json"


def passed(results, tests=ALL_TESTS, firmware=None, kind=evidence.VIRTUAL):
    evidence.record({t: "passed" for t in tests}, kind, firmware or evidence.firmware_id(),
                    evidence.board_id("virtual"), results)


def test_current_passing_evidence_for_every_hazard_reports_clean(results, capsys):
    passed(results)
    assert report.main([], results) == 0
    out = capsys.readouterr().out
    assert "Evidence for firmware %s" % evidence.firmware_id() in out
    assert "stale: " not in out and "missing: " not in out


def test_a_result_from_another_firmware_is_stale_and_a_missing_one_missing(results, capsys):
    passed(results, ALL_TESTS[1:], firmware="0123456789abcdef")
    assert report.main([], results) == 1
    out = capsys.readouterr().out
    assert "stale: " in out and "missing: " in out and "lack current passing evidence" in out


def test_a_real_boards_evidence_is_kept_apart_and_lists_what_it_cannot_test(results, capsys):
    passed(results)
    port = "/dev/ttyUSB0"
    evidence.record({ALL_TESTS[0]: "skipped"}, evidence.kind_of(port), evidence.firmware_id(),
                    None, results)
    assert report.main([], results) == 0  # the virtual board's evidence stands
    capsys.readouterr()
    assert report.main(["--port", port], results) == 1  # most is missing there
    assert "cannot be tested on a real board" in capsys.readouterr().out


def test_a_patched_firmware_run_records_no_evidence():
    before = evidence.RESULTS.read_bytes() if evidence.RESULTS.exists() else None
    env = dict(os.environ, PEN_FIRMWARE_DIR=str(FIRMWARE_DIR))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p",
                           "no:cacheprovider",
                           "hil_tests/test_hazard_table.py::test_every_hazard_names_evidence"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    after = evidence.RESULTS.read_bytes() if evidence.RESULTS.exists() else None
    assert after == before


def test_a_real_boards_results_are_filed_by_its_name_and_chip_id(tmp_path):
    # a run with --port (here on a virtual board started apart, as `make hil` would use a
    # real one) files its results under the name and chip id the board's HELLO gives
    from penctl.sim import VirtualBoard

    results = tmp_path / "hil.json"
    test = "hil_tests/test_refusals.py::test_start_refused_before_homing"
    with VirtualBoard(needles_mm=0.0) as board:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p",
                               "no:cacheprovider", test, "--port", board.url],
                              cwd=ROOT, env=dict(os.environ, PEN_RESULTS=str(results)),
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout
        kind = "virtual %s" % board.uid.hex()
        assert evidence.identify(board.url) == kind
    recorded = evidence.load(results)
    assert list(recorded) == [kind]
    assert recorded[kind][test]["outcome"] == "passed"
    assert recorded[kind][test]["firmware"] == evidence.firmware_id()
