"""pen deploy: mpremote (as a library) copies the firmware and the board definition, the
manifest goes last, the board then runs what was deployed. A damaged file keeps the
motor locked out (INTEGRITY) until a good deploy."""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from conftest import board_sleep, motor_stopped, patient_pen, service_repl, start_run, wait_until
from penctl import LinkError, Pen, RefusedError, UsageError, patience
from penctl.deploy import deploy
from penctl.paths import FIRMWARE_DIR
from penctl.sim import VirtualBoard
from penctl.sim.vm import simhw


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


@pytest.mark.long(8)
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


@pytest.mark.long(24)
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
    with patient_pen(board.url) as pen:
        assert pen.status().faults == ["INTEGRITY"]
        if name.startswith("protocol."):
            # the lockout cannot run on a damaged protocol: main.py's minimal lockout answers
            # instead, in frames of its own (it was the REPL, where pen deploy could not ask)
            assert pen.info["fw"] == "?"
            assert "INTEGRITY %s hash mismatch" % name in board.output()
        else:
            assert name in pen.faults()[0]["detail"]
            assert pen.info["uid"] == board.uid.hex()  # the lockout says who it is too
        for command in ("HOME", "START", "CLEAR"):
            with pytest.raises(RefusedError):
                pen.request(command)
        # a Ctrl-C stops nothing in a lockout (nothing moves) and never ends it: it once
        # reached the lockout's parser as a line, and the board reset
        resets = board.observe()["resets"]
        pen.link.write_raw(b"\x03" * 3)
        assert pen.status().faults == ["INTEGRITY"]
        assert board.observe()["resets"] == resets
    assert ">>> " not in board.output()
    board_sleep(0.3)
    assert motor_stopped(board) and board.observe()["motor_duty"] == 0
    fixed = deploy(board.url, firmware_dir=board.firmware_dir)
    assert fixed.copied == [name]
    with patient_pen(board.url) as pen:
        assert pen.status().faults == []
        assert pen.home().state == "READY"


STRAYS = {  # what service mode can leave on the flash besides the deployed files
    # a package by a module's name shadows its .mpy: this one lifts every depth cap to 3 mm
    "package-shadowing-caps": ("caps", "__init__.py"),
    "file": ("notes.txt", None),
    "folder": ("lib", "x.py"),
}


@pytest.mark.injects
@pytest.mark.parametrize("stray", STRAYS)
def test_anything_on_the_flash_that_was_not_deployed_locks_out_until_a_deploy_removes_it(
        board, stray):
    name, inner = STRAYS[stray]
    target = board.flash_dir / name
    if inner is None:
        target.write_text("left here in service mode\n")
    else:
        target.mkdir()
        source = (board.firmware_dir / "caps.py").read_text()
        (target / inner).write_text(source.replace("P.PROFILES[self.profile][1]", "3000"))
    board.reset()
    with patient_pen(board.url) as pen:
        assert pen.status().faults == ["INTEGRITY"]
        assert pen.faults()[0]["detail"].startswith(name + " ")
        with pytest.raises(RefusedError):
            pen.request("HOME")
    assert motor_stopped(board)
    fixed = deploy(board.url, firmware_dir=board.firmware_dir)
    assert fixed.removed == [name] and fixed.copied == []  # the survey sees folders too
    assert not target.exists()
    with patient_pen(board.url) as pen:
        assert pen.status().faults == []
        assert pen.get()["cap"] == "0.500"  # periorbital's, the deployed caps module's


# a heap the application does not fit and the minimal lockout does: the lockout reads
# main.py (7.5 KB) in one block, and the stand-ins' objects (ROM on a chip) split the VM's
# free heap, so 60K left no such block once the ADC's model joined them; 80K, not the 72K
# that did for the ADC's alone: a loaded fresh clone with all of issue 15's stand-ins had
# these two boards silent for their whole patience (cause not caught: no diagnosis kept);
# 84K since select.poll's stand-in (the RTOS tick) joined them: at 80K the lockout could not
# read main.py's text (7.5 KB in one block) at any boot; 94K since the 1-Wire bus and the RTC
# (~10 KB) joined them
APP_DOES_NOT_FIT = "94K"


@pytest.mark.injects
def test_a_firmware_that_cannot_boot_resets_into_the_minimal_lockout_never_the_repl():
    # the application does not fit this heap (MemoryError at its imports, before the
    # watchdog exists): each failed boot resets the board, the third in a row leaves
    # main.py's minimal lockout answering, so the board can still be put in service mode
    with VirtualBoard(firmware_dir=os.environ.get("PEN_FIRMWARE_DIR"),
                      heap=APP_DOES_NOT_FIT) as board:
        with patient_pen(board.url, connect_timeout=30) as pen:
            assert pen.info["fw"] == "?" and pen.status().faults == ["INTERNAL"]
            with pytest.raises(RefusedError, match="3 boots in a row failed"):
                pen.request("HOME")
            assert board.resets == [1, 2, 2, 2]  # power-on, then a reset after each failure
            assert ">>> " not in board.output() and "MemoryError" in board.output()
            assert motor_stopped(board)
            pen.service()
        wait_until(lambda: ">>> " in board.output(), 10, "service mode's REPL")
        assert (board.flash_dir / "service").exists()
        assert not (board.flash_dir / "failed_boots").exists()  # the next boot tries again
        board.check()


@pytest.mark.injects
def test_a_reset_the_host_is_slow_to_carry_out_never_lets_main_py_end_at_the_repl():
    # machine.reset() never returns on a chip. On the virtual board the host carries it
    # out, and a busy host can take seconds to: a stand-in that gave up waiting let a
    # failed boot's main.py end at the REPL (a CI run found the board at ">>> ")
    with VirtualBoard(firmware_dir=os.environ.get("PEN_FIRMWARE_DIR"),
                      heap=APP_DOES_NOT_FIT) as board:
        with board.host_stalled():
            wait_until(lambda: "MemoryError" in board.output(), 10, "the first failed boot")
            time.sleep(3)  # the host's stall: the board's own threads cannot reset the VM
        with patient_pen(board.url, connect_timeout=30) as pen:
            assert pen.status().faults == ["INTERNAL"]  # the minimal lockout, as always
        assert ">>> " not in board.output()
        board.check()


@pytest.mark.injects
def test_leaving_the_raw_repl_with_a_soft_reset_runs_the_firmware_however_late_the_host_reads(
        board):
    # deploy's last step: out of the raw REPL and Ctrl-D at once. The board decides where the
    # VM that ended was (the friendly REPL: a soft reset runs main.py; the raw REPL: back
    # into it) by its last output, which a busy host may not have read yet
    repl = service_repl(board)
    try:
        (board.flash_dir / "service").unlink()
        vm = board.proc
        with board.bridge.stalled():
            repl.t.serial.write(b"\r\x02\x04")
            # the VM ends on the host's clock; no wait_until here: it reads the board under
            # the lock that the watcher holds while it waits for this stalled bridge
            deadline = time.monotonic() + 30
            while vm.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert vm.poll() is not None, "the VM never ended on the soft reset"
            time.sleep(0.3)  # the host's stall, while the board's other threads run
    finally:
        repl.close()
    with patient_pen(board.url, connect_timeout=10) as pen:
        assert pen.status().state == "IDLE"


@pytest.mark.long
@pytest.mark.injects
def test_watchdog_resets_in_a_row_end_in_the_minimal_lockout(board):
    # a firmware that hangs at every boot is reset by its watchdog for ever: each such
    # reset counts as a failed boot (no host said HELLO in between)
    for n in range(3):
        wait_until(lambda: board.regs[simhw.H_WDT_TIMEOUT_MS], 5, "the watchdog started")
        board.inject("hang")
        wait_until(lambda n=n: board.observe()["resets"].count(3) == n + 1, 8, "a watchdog reset")
    with patient_pen(board.url) as pen:
        assert pen.info["fw"] == "?" and pen.status().faults == ["INTERNAL"]
        pen.request("RESET")  # the minimal lockout cleared the count: the firmware again
    board_sleep(0.3)
    with patient_pen(board.url) as pen:
        assert pen.info["fw"] != "?" and pen.status().state == "IDLE"


@pytest.mark.injects
def test_deploy_from_a_board_already_at_the_repl_in_service_mode(board):
    (board.flash_dir / "service").write_text("")  # as a deploy cut short leaves it
    board.reset()
    wait_until(lambda: ">>> " in board.output(), 5, "the REPL prompt")
    report = deploy(board.url, firmware_dir=board.firmware_dir)
    assert report.copied == []


@pytest.mark.long(10)
@pytest.mark.injects
def test_mpremote_cannot_interrupt_the_running_firmware_so_deploy_needs_service_mode(board):
    # mpremote's Ctrl-C interrupts nothing while the app runs (kbd_intr(-1)): each one is a
    # realtime STOP, the raw REPL never comes, and the board stays in its app
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", board.url,
                           "exec", "print('got in')"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "got in" not in done.stdout
    assert "raw repl" in (done.stdout + done.stderr).lower()
    assert board.observe()["resets"] == [1] and board.observe()["vm_running"]
    with patient_pen(board.url) as pen:
        assert pen.status().state == "IDLE"


@pytest.mark.injects
def test_deploy_refused_while_the_needles_run(board):
    pen = patient_pen(board.url)
    pen.set(link_timeout=2000)  # the longest: deploy must reach the board within it
    start_run(pen, board)
    pen.keepalive.stop()
    pen.link.close()  # the host program ended without STOP: the run lasts to the link timeout
    with pytest.raises(RefusedError) as refused:
        deploy(board.url)
    assert "stop the pen" in str(refused.value) and refused.value.code == "STATE"
    assert not (board.flash_dir / "service").exists()


def port_free(port):
    try:
        serial.Serial(port, exclusive=True).close()
    except serial.SerialException:
        return False
    return True


@pytest.mark.long(13)
@pytest.mark.injects
def test_deploy_errors_are_clear(board, tmp_path, monkeypatch):
    monkeypatch.setenv(patience.ENV, "1")  # a real board's errors, at its patience
    with pytest.raises(LinkError, match="cannot open"):
        deploy(str(tmp_path / "no-such-port"))
    with patient_pen(board.port):  # another program holds the port
        with pytest.raises(LinkError, match="no other program"):
            deploy(board.port)
    # the Pen's port stays locked until its reader leaves a read the kernel may hold
    wait_until(lambda: port_free(board.port), 60, "the Pen's port released")
    board.hold_in_reset()
    with pytest.raises(LinkError, match="no MicroPython REPL"):
        deploy(board.port)


def test_pen_deploy_and_pen_version_commands(port, board):
    def pen(*args):
        done = subprocess.run([sys.executable, "-m", "penctl", "--port", port, *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if "--json" in args else done.stdout

    report = pen("--json", "deploy")
    assert report["copied"] == [] and report["version"]
    version = pen("--json", "version")
    assert version["board_firmware"] == report["version"] and version["match"] is True
    # the chip's own id (machine.unique_id(), its base MAC), which evidence is filed by
    assert re.fullmatch("[0-9a-f]{12}", version["uid"])
    if board:
        assert version["uid"] == board.uid.hex() and version["board"] == "virtual"
    assert "match" in pen("version") and version["uid"] in pen("version")


@pytest.mark.injects
@pytest.mark.parametrize("bad", ["board", "firmware"])
def test_a_deploy_with_bad_options_leaves_the_board_untouched(board, tmp_path, bad):
    # everything a deploy needs is checked before the board is asked for service mode: a
    # typo must not leave the pen at the raw REPL
    if bad == "board":
        done = subprocess.run([sys.executable, "-m", "penctl", "--port", board.url, "deploy",
                               "--board", "esp32-devkitcc"], capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2 and "esp32-devkitc" in done.stderr, done.stderr
    else:
        fw = firmware_copy(tmp_path, "broken")
        (fw / "caps.py").write_text("def cap(:\n")  # will not compile
        with pytest.raises(UsageError, match="caps.py"):
            deploy(board.url, firmware_dir=fw)
    assert not (board.flash_dir / "service").exists()
    assert board.resets == [1]  # never restarted
    with patient_pen(board.url) as pen:
        assert pen.status().state == "IDLE"
