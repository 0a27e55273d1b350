"""The control tick as the real chip runs it: the CPU's clock from the board definition,
and DIAG's allocation figure, which counts what every task allocates, per second of the
board's clock, without gc.mem_alloc() in the tick (it walks the heap on the chip)."""

import pytest
from conftest import board_sleep
from penctl import boards
from penctl.sim.vm import simhw


@pytest.mark.injects  # reads the virtual board's registers
def test_the_cpu_runs_at_the_board_definitions_clock_after_boot(pen, board):
    # ESP32_GENERIC boots at 160 MHz; the firmware sets what the definition says
    assert board.regs[simhw.H_CPU_MHZ] * 1000000 == boards.load("virtual")["timing"]["cpu_hz"]
    pen.reset()  # a reset starts the CPU at 160 MHz again; the new boot sets it anew
    assert board.regs[simhw.H_CPU_MHZ] * 1000000 == board.definition["timing"]["cpu_hz"]


def test_diag_counts_what_every_task_allocates_across_collections(pen, board):
    # STATUS replies are built by the link task, outside the control tick. What a few
    # allocate in a window without a collection, then enough of them to fill the heap
    # twice: a collection drops gc.mem_alloc(), and must not drop the count with it
    pen.set(telemetry=0)
    pen.diag()  # a fresh window, from a collected heap
    bare = pen.diag()["alloc_bytes"]  # a window of nothing but the DIAGs around it
    for _ in range(10):
        pen.request("STATUS")
    d = pen.diag()
    # a STATUS allocates less than a DIAG does: the DIAG's share is taken off
    each = (d["alloc_bytes"] - bare) / 10
    assert each > 0, (bare, d)
    n = int(2 * d["mem_free"] / each) + 1
    for _ in range(n):
        pen.request("STATUS")
    d = pen.diag()
    # short by at most one 100 ms look's allocation for each collection (app.TickStats)
    assert d["alloc_bytes"] >= 0.7 * n * each, (n, each, d)
    assert d["alloc_per_s"] == d["alloc_bytes"] * 1000 // d["alloc_ms"]


def test_diag_reports_allocation_per_second_of_a_quiet_board(pen, board):
    pen.set(telemetry=0)
    pen.diag()
    board_sleep(2.0, board)
    d = pen.diag()
    assert 1500 <= d["alloc_ms"] <= 20000, d  # the board's clock, since the last DIAG
    assert d["alloc_per_s"] == d["alloc_bytes"] * 1000 // d["alloc_ms"]
