"""pen deploy: mpremote (as a library) copies the firmware and the board definition, the
manifest goes last, the board then runs what was deployed. A damaged file keeps the
motor locked out (INTEGRITY) until a good deploy."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import motor_stopped, start_run, wait_until
from penctl import LinkError, Pen, RefusedError
from penctl.deploy import deploy
from penctl.paths import FIRMWARE_DIR
from penctl.sim import VirtualBoard
from test_lifecycle import PLANTED_ESCAPE, escape_from_the_app, patched_firmware


def firmware_tree(tmp_path):
    """The firmware the board under test was built from (a mutant's, under safety-mutants)."""
    return Path(os.environ.get("PEN_FIRMWARE_DIR") or FIRMWARE_DIR)


def firmware_copy(tmp_path, version):
    fw = tmp_path / "fw"
    shutil.copytree(firmware_tree(tmp_path), fw, ignore=shutil.ignore_patterns(".*", "__py*"))
    src = (fw / "codes.py").read_text()
    (fw / "codes.py").write_text(src.replace('FIRMWARE_VERSION = "', 'FIRMWARE_VERSION = "%s+'
                                                % version, 1))
    return fw


def test_deploy_runs_the_new_firmware_and_a_second_deploy_copies_nothing(port, tmp_path):
    fw = firmware_copy(tmp_path, "t%d" % os.getpid())
    try:
        first = deploy(port, firmware_dir=fw)
        assert first.copied == ["codes.py"]  # the only file that differs
        with Pen(port) as pen:
            assert pen.info["fw"] == first.version and first.version.startswith("t")
        second = deploy(port, firmware_dir=fw)
        assert second.copied == [] and second.bytes_copied == 0 and not second.removed
        assert "codes.py" in second.unchanged and "board.json" in second.unchanged
    finally:
        deploy(port, firmware_dir=firmware_tree(tmp_path))  # a real board is left as found


def test_source_deploy_runs_and_the_default_mpy_deploy_replaces_it(port, tmp_path):
    source = deploy(port, mpy=False, firmware_dir=firmware_tree(tmp_path))
    assert not source.mpy_arch
    assert "controller.py" in source.copied and "controller.mpy" in source.removed
    with Pen(port) as pen:
        assert pen.home().state == "READY"  # the board compiles the source at boot
    compiled = deploy(port, firmware_dir=firmware_tree(tmp_path))
    assert compiled.mpy_arch  # what the board itself said it loads
    assert "controller.mpy" in compiled.copied and "controller.py" in compiled.removed
    # the boot files, and codes.py whose texts a .mpy would keep on the heap, stay source
    assert {"main.py", "codes.py"}.isdisjoint(compiled.copied + compiled.removed)
    with Pen(port) as pen:
        assert pen.home().state == "READY"


def _one_byte_changed(data):
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


DAMAGE = {  # the modules as deployed: .mpy by default
    "supervisor-edited": ("supervisor.mpy", _one_byte_changed),
    "controller-half-copied": ("controller.mpy", lambda b: b[: len(b) // 2]),
    "protocol-half-copied": ("protocol.mpy", lambda b: b[: len(b) // 2]),
}


@pytest.mark.injects
@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_file_locks_the_motor_out_until_a_good_deploy(board, damage):
    name, change = DAMAGE[damage]
    target = board.flash_dir / name
    target.write_bytes(change(target.read_bytes()))
    board.reset()
    if name.startswith("protocol."):  # the lockout itself cannot speak: it says so and stops
        wait_until(lambda: "INTEGRITY %s hash mismatch" % name in board.output(), 5,
                   "the integrity message")
        with pytest.raises(LinkError):
            Pen(board.port, connect_timeout=2)
    else:
        with Pen(board.port) as pen:
            assert pen.status().faults == ["INTEGRITY"]
            assert name in pen.faults()[0]["detail"]
            for command in ("HOME", "START", "CLEAR"):
                with pytest.raises(RefusedError):
                    pen.request(command)
    time.sleep(0.3)
    assert motor_stopped(board) and board.observe()["motor_duty"] == 0
    fixed = deploy(board.port, firmware_dir=board.firmware_dir)
    assert fixed.copied == [name]
    with Pen(board.port) as pen:
        assert pen.status().faults == []
        assert pen.home().state == "READY"


@pytest.mark.injects
def test_deploy_from_a_board_left_at_the_repl_with_its_watchdog_running(tmp_path):
    # an exception out of the app leaves the board at the REPL, its watchdog running
    fw = patched_firmware(tmp_path, *PLANTED_ESCAPE)
    with VirtualBoard(firmware_dir=fw) as board:
        escape_from_the_app(board, Pen(board.port))
        report = deploy(board.port, firmware_dir=board.firmware_dir)
        assert report.copied == []
        assert 3 not in board.observe()["resets"]  # no watchdog reset cut the deploy short
        with Pen(board.port) as pen:
            assert pen.status().state == "IDLE"
        board.check()


@pytest.mark.injects
def test_mpremote_cannot_interrupt_the_running_firmware_so_deploy_needs_service_mode(board):
    # mpremote's Ctrl-C interrupts nothing while the app runs (kbd_intr(-1)): each one is a
    # realtime STOP, the raw REPL never comes, and the board stays in its app
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.port,
                           "exec", "print('got in')"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "got in" not in done.stdout
    assert "raw repl" in (done.stdout + done.stderr).lower()
    assert board.observe()["resets"] == [1] and board.observe()["vm_running"]
    with Pen(board.port) as pen:
        assert pen.status().state == "IDLE"


@pytest.mark.injects
def test_watchdog_survives_soft_reset_so_mpremote_needs_service_mode(tmp_path):
    # what a deploy that forgot service mode would meet on a board left at the REPL (an
    # exception out of the app): mpremote's soft reset keeps the watchdog the firmware
    # started, the raw REPL never feeds it, the board resets
    fw = patched_firmware(tmp_path, *PLANTED_ESCAPE)
    with VirtualBoard(firmware_dir=fw) as board:
        escape_from_the_app(board, Pen(board.port))
        mpremote = subprocess.Popen([sys.executable, "-m", "mpremote", "connect", board.port,
                                     "exec", "import time\ntime.sleep(4)\nprint('survived')"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_until(lambda: 3 in board.observe()["resets"], 8, "a watchdog reset")
        finally:
            mpremote.kill()  # it waits for ever for the end of an exec the reset cut off
            out, _ = mpremote.communicate()
        assert "survived" not in out


@pytest.mark.injects
def test_deploy_refused_while_the_needles_run(board):
    pen = start_run(Pen(board.port), board)
    pen._stop_keepalive()
    pen.link.close()  # the host program ended without STOP: the run lasts to the link timeout
    with pytest.raises(RefusedError) as refused:
        deploy(board.port)
    assert "stop the pen" in str(refused.value) and refused.value.code == "STATE"
    assert not (board.flash_dir / "service").exists()


@pytest.mark.injects
def test_deploy_errors_are_clear(board, tmp_path):
    with pytest.raises(LinkError, match="cannot open"):
        deploy(str(tmp_path / "no-such-port"))
    with Pen(board.port):  # another program holds the port
        with pytest.raises(LinkError, match="no other program"):
            deploy(board.port)
    board.hold_in_reset()
    with pytest.raises(LinkError, match="no MicroPython REPL"):
        deploy(board.port)


def test_pen_deploy_and_pen_version_commands(port):
    def pen(*args):
        done = subprocess.run([sys.executable, "-m", "penctl", "--port", port, *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if "--json" in args else done.stdout

    report = pen("--json", "deploy")
    assert report["copied"] == [] and report["version"]
    version = pen("--json", "version")
    assert version["board_firmware"] == report["version"] and version["match"] is True
    assert "match" in pen("version")
