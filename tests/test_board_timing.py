"""The control tick's timing for the real chip, in each board definition. On ESP32_GENERIC
FreeRTOS runs at 100 Hz (CONFIG_FREERTOS_HZ, the IDF's default: ports/esp32/boards/
sdkconfig.base at MicroPython v1.26.0 leaves it), so an asyncio wait ends on a 10 ms edge
(the virtual board models it: host/penctl/sim/vm/machine.py, _Poll): a tick period that is
not a whole number of RTOS ticks runs its ticks in bunches. Debounces and windows are
milliseconds, converted with the tick's period on the board; each still means what it says
at that period."""

import math

import pytest
from firmware_import import protocol as P
from penctl import boards

RTOS_TICK_MS = 10
# modmachine.c (v1.26.0) mp_machine_set_freq, CONFIG_IDF_TARGET_ESP32 and ESP32S3
PORT_FREQS_MHZ = (20, 40, 80, 160, 240)


@pytest.fixture(params=boards.names())
def board(request):
    return boards.load(request.param)


def test_the_tick_is_a_whole_number_of_rtos_ticks(board):
    assert board["timing"]["tick_ms"] % RTOS_TICK_MS == 0


def test_timing_and_limits_are_milliseconds_not_ticks(board):
    keys = [k for section in ("timing", "limits") for k in board[section]]
    assert not [k for k in keys if k.endswith("_ticks")]


def test_each_window_spans_whole_ticks_and_sees_what_it_must(board):
    t, lim, m = board["timing"], board["limits"], board["motor"]
    tick = t["tick_ms"]
    for name in ("rate_window_ms", "heartbeat_ms"):
        assert t[name] % tick == 0, name
    for name in ("overcurrent_ms", "no_pulse_ms", "speed_error_ms", "depth_following_ms",
                 "overdepth_ms", "supply_ms"):
        assert lim[name] >= tick and lim[name] % tick == 0, name
    # at the slowest stroke rate the no-pulse window still holds several tach pulses
    slowest_hz = P.PARAMS[P.P_RATE][3] / 100
    assert lim["no_pulse_ms"] >= 4 * 1000 / (slowest_hz * m["tach_ppr"])
    # and ends before the overcurrent debounce: a locked rotor's pulses are gone by the time
    # its current trips, which tells it as STALL
    assert lim["no_pulse_ms"] < lim["overcurrent_ms"]
    # the monostable outlasts a tick held off by one more RTOS tick and a GC pause
    assert t["heartbeat_ms"] >= 4 * tick
    assert math.ceil(t["rate_window_ms"] / tick) >= 5  # a rate over several ticks


def test_the_cpu_frequency_is_one_the_port_accepts(board):
    assert board["timing"]["cpu_hz"] // 1000000 in PORT_FREQS_MHZ
    assert board["timing"]["cpu_hz"] % 1000000 == 0
