"""PEN_MICROPYTHON: the virtual board runs the VM binary it names (a 32-bit build, to judge
the heap as an ESP32 sees it: docs/figures.md#heap), deploys .mpy files for that binary's
format, and refuses a name it cannot run rather than running another VM in its place."""

import pytest
from penctl import Pen, VirtualBoardError
from penctl.sim import VirtualBoard, vm_process

pytestmark = pytest.mark.injects  # the virtual board's own machinery
ENV = "PEN_MICROPYTHON"  # as the README names it


def test_pen_micropython_names_the_vm_the_board_runs_and_asks_for_its_mpy_format(
        tmp_path, monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    real = vm_process.find_micropython()
    vm_process.vm_mpy_arch()  # the default VM's format, known to this host process
    calls = tmp_path / "calls"
    wrapper = tmp_path / "micropython"
    # the pinned VM itself, under another name that notes each run of it
    wrapper.write_text('#!/bin/sh\necho "$@" >> %s\nexec %s "$@"\n' % (calls, real))
    wrapper.chmod(0o755)
    monkeypatch.setenv(ENV, str(wrapper))
    with VirtualBoard(needles_mm=0.0) as board, Pen(board.url) as pen:
        assert pen.status().state == "IDLE"
        board.check()
    runs = calls.read_text().splitlines()
    assert any("sys.implementation._mpy" in run for run in runs), (
        "the .mpy format was not asked of the named VM (%s)" % runs)
    assert any("heapsize=" + board.heap in run and "sim_start.py" in run for run in runs), (
        "the board did not run the named VM (%s)" % runs)


@pytest.mark.parametrize("what", ["missing", "not executable", "a directory"])
def test_a_pen_micropython_that_cannot_run_is_an_error_not_another_vm(
        tmp_path, monkeypatch, what):
    named = tmp_path / "micropython"
    if what == "not executable":
        named.write_text("#!/bin/sh\n")
    elif what == "a directory":
        named.mkdir()
    monkeypatch.setenv(ENV, str(named))
    with pytest.raises(VirtualBoardError, match="PEN_MICROPYTHON=%s" % named):
        with VirtualBoard(needles_mm=0.0):
            pass
