"""`make bench`: figures, not assertions. Fault-to-motor-off, control tick cost and
allocation, free heap, command round trip against the wire time, telemetry load."""

import argparse
import statistics
import time

from . import Pen, cpu_estimate
from .firmware import wire
from .sim import VirtualBoard, uart, vm_process

BAUD_BYTES_PER_S = 1 / uart.BYTE_S  # 115200 baud, 8N1
RTOS_TICK_S = 0.010  # FreeRTOS at 100 Hz (ESP32_GENERIC): a blocked write's wait for room


def fault_to_off(board, pen, hazard):
    pen.home()
    pen.set(depth_mm=0.5, rate_hz=100)
    pen.start()
    time.sleep(1.0)
    t0 = time.perf_counter()
    board.inject(hazard)
    while True:
        obs = board.observe()
        if obs["motor_duty"] == 0 and not obs["motor_enable_line"]:
            break
    elapsed = time.perf_counter() - t0
    board.remove(hazard)
    return elapsed


def round_trips(pen, bridge, request_bytes, n=200):
    """(median, p99, max) of n KA round trips on the host's clock, then on the chip's (the
    request's first byte into the chip to the reply's last out of it: the UART's and the
    firmware's time, without the host's threads that carry the bytes on either side)."""
    host, chip = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        pen.request("KA")
        host.append(time.perf_counter() - t0)
        rx_eol, tx_eol = bridge.line_ends()
        chip.append(tx_eol - rx_eol + request_bytes / BAUD_BYTES_PER_S)
    return tuple(_spread(sorted(t)) for t in (host, chip))


def _spread(times):
    return statistics.median(times), times[int(len(times) * 0.99) - 1], times[-1]


def telemetry_line_s(pen):
    """Wire time of one telemetry line as the board sends it now ("\r\n" ends it)."""
    line = wire.frame(wire.telemetry(wire.pairs(pen.link.latest.items())))
    return (len(line) + 2) / BAUD_BYTES_PER_S


def ka_rows(pen, bridge):
    """The KA round trip on a quiet link (the target), then with telemetry sharing the
    UART: a reply waits behind a line already in the TX FIFO, on the chip as here."""
    # the request's "\n", the reply's "\r\n" (print() on the chip, uart.py)
    request = len(wire.frame(wire.request(12345, "KA"))) + 1
    wire_s = (request + len(wire.frame(wire.ok(12345))) + 2) / BAUD_BYTES_PER_S
    hz = int(pen.get()["telemetry"])
    pen.set(telemetry=0)
    quiet_host, quiet_chip = round_trips(pen, bridge, request)
    pen.set(telemetry=hz)
    time.sleep(0.2)  # a telemetry line to size the bound by
    line_s = telemetry_line_s(pen)
    shared_host, shared_chip = round_trips(pen, bridge, request)
    ms = [tuple(x * 1e3 for x in t) for t in (quiet_chip, quiet_host, shared_chip, shared_host)]
    target, bound = (wire_s + RTOS_TICK_S) * 1e3, (wire_s + RTOS_TICK_S + line_s) * 1e3
    return [
        ("KA round trip on the paced UART (115200 baud), telemetry off, on the chip's clock: "
         "median / p99 / max", "%.2f / %.2f / %.2f ms" % ms[0]),
        ("  its frames' wire time / target (wire time + one 10 ms RTOS tick)",
         "%.2f / %.2f ms" % (wire_s * 1e3, target)),
        ("  the same on the host's clock (its serial and bridge threads' wake-ups added)",
         "%.2f / %.2f / %.2f ms" % ms[1]),
        ("  with telemetry at %d Hz sharing the UART, chip's clock / host's: median / p99 / max"
         % hz, "%.2f / %.2f / %.2f, %.2f / %.2f / %.2f ms" % (ms[2] + ms[3])),
        ("  bound there: target + one telemetry line on the wire ahead of the reply",
         "%.2f + %.2f = %.2f ms" % (target, line_s * 1e3, bound)),
    ]


def tick_cpu(name):
    """The control tick's CPU figures while RUNNING (cpu_estimate.py): a board of its own,
    whose VM times its stand-ins (vm/tick_timer.py), so that the other figures are without
    that timing."""
    vm_process.TIME_TICKS = True
    try:
        with VirtualBoard(name) as board, Pen(board.url) as pen:
            path = str(board.regs_path) + ".ticks"
            pen.home()
            pen.set(depth_mm=0.5, rate_hz=100)
            pen.start()
            time.sleep(1.5)
            # the VM writes its totals every 200 timed ticks (2 s at 10 ms), from boot: on
            # a busy host boot and homing took less than that, and the first look found none
            before = cpu_estimate.read_ticks(path)
            deadline = time.monotonic() + 30
            while before is None and time.monotonic() < deadline:
                time.sleep(0.2)
                before = cpu_estimate.read_ticks(path)
            time.sleep(5.0)
            after = cpu_estimate.read_ticks(path)
            pen.stop()
            if before is None or after is None:
                raise RuntimeError("the VM timed no ticks: did the firmware's App.tick change?")
            tick_ms = board.definition["timing"]["tick_ms"]
    finally:
        vm_process.TIME_TICKS = False
    ratio, how = cpu_estimate.probe_ratio()
    return cpu_estimate.rows(cpu_estimate.split(before, after), ratio, how, tick_ms,
                             cpu_estimate.host_mhz())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--board", default="virtual")
    args = parser.parse_args(argv)
    rows = []
    t_suite = time.perf_counter()
    with VirtualBoard(args.board) as board, Pen(board.url) as pen:
        free, standins = pen.diag()["mem_free"], board.standin_heap_bytes()
        rows.append(("heap free after boot (%s VM heap)" % board.heap, "%d B" % free))
        rows.append(("  of it taken by the VM's stand-ins (machine etc.: ROM on an ESP32)",
                     "%d B" % standins))
        rows.append(("  free heap not counting the stand-ins", "%d B" % (free + standins)))
        rows.extend(ka_rows(pen, board.bridge))
    # a board that counts its flash writes: the heap figure above is without that wrapping
    with VirtualBoard(args.board, count_writes=True) as board, Pen(board.port) as pen:
        tick_ms = board.definition["timing"]["tick_ms"]
        pen.home()
        pen.set(depth_mm=0.5, rate_hz=100, telemetry=100)
        time.sleep(0.5)  # homing's log records reach the flash
        points_idle = board.write_points()
        pen.start()
        time.sleep(1.0)
        pen.diag()  # starts a fresh window of steady RUNNING ticks
        board.heartbeat_max_gap_s(restart=True)
        before = pen.link.counts["telemetry"]
        time.sleep(5.5)
        d = pen.diag()
        gap_ms = board.heartbeat_max_gap_s() * 1e3
        rows.append(("heartbeat while RUNNING: longest gap between edges / window, drops",
                     "%.1f / %d ms, %d" % (gap_ms, board.definition["timing"]["heartbeat_ms"],
                                          board.heartbeat_drops())))
        lines = pen.link.counts["telemetry"] - before
        rows.append(("control tick while RUNNING, mean / max",
                     "%d / %d us (period %d ms)" % (d["tick_us_mean"], d["tick_us_max"], tick_ms)))
        rows.append(("bytes allocated per second while RUNNING, all tasks (DIAG)",
                     "%d B/s (%d B over %.1f s)" % (d["alloc_per_s"], d["alloc_bytes"],
                                                    d["alloc_ms"] / 1e3)))
        line_len = len(wire.frame(wire.telemetry(wire.pairs(pen.link.latest.items())))) + 1
        rate = lines / 5.5
        rows.append(("telemetry at 100 Hz: lines/s, share of 115200 baud",
                     "%.1f /s of %d B, %.0f %%" % (rate, line_len,
                                                  100 * rate * line_len / BAUD_BYTES_PER_S)))
        points_run = board.write_points() - points_idle
        pen.stop()
        time.sleep(0.5)
        rows.append(("flash write points while RUNNING (6.5 s) / for the pass after stop",
                     "%d / %d" % (points_run, board.write_points() - points_idle - points_run)))
        pen.set(telemetry=20)
    rows.extend(tick_cpu(args.board))
    for hazard in ("thermistor_open", "estop", "overcurrent"):
        with VirtualBoard(args.board) as board, Pen(board.port) as pen:
            s = fault_to_off(board, pen, hazard)
            rows.append(("%s -> PWM 0 and enable low" % hazard,
                         "%.1f ms = %.1f ticks" % (s * 1e3, s * 1e3 / tick_ms)))
    rows.append(("bench wall time", "%.1f s" % (time.perf_counter() - t_suite)))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print("%-*s  %s" % (width, name, value))


if __name__ == "__main__":
    main()
