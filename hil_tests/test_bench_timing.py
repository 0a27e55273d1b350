"""make bench's timing of the control tick (host/penctl/sim/vm/tick_timer.py): a VM asked to
time its ticks splits them into the firmware's share and the stand-ins', with the probe's
speed in the same window (docs/figures.md#the-control-tick-on-an-esp32); other VMs time
nothing."""

from pathlib import Path

from conftest import board_sleep, wait_until
from penctl import cpu_estimate
from penctl.sim import VirtualBoard, vm_process


def test_a_timed_vm_splits_its_ticks_into_the_firmware_and_the_stand_ins(monkeypatch):
    monkeypatch.setattr(vm_process, "TIME_TICKS", True)
    with VirtualBoard(needles_mm=0.0) as board:
        path = str(board.regs_path) + ".ticks"
        first = wait_until(lambda: cpu_estimate.read_ticks(path), 30, "200 timed ticks", board)
        later = wait_until(lambda: (lambda r: r if r["ticks"] >= first["ticks"] + 400 else None)(
            cpu_estimate.read_ticks(path)), 30, "400 more timed ticks", board)
    tick = cpu_estimate.split(first, later)
    # every tick feeds the watchdog and drives the heartbeat through the stand-ins
    assert tick["ticks"] >= 400 and later["standin_calls"] >= 2 * later["ticks"]
    assert tick["standin_us"] > 0 and tick["firmware_us"] > 0
    assert tick["total_us"] > tick["firmware_us"] + tick["standin_us"] * 0.5
    assert tick["probe_per_s"] > 0 and later["heap_blocks"] > 1000


def test_a_board_not_asked_times_nothing():
    assert vm_process.TIME_TICKS is False
    with VirtualBoard(needles_mm=0.0) as board:
        board_sleep(1.5, board)
        assert not Path(str(board.regs_path) + ".ticks").exists()
