"""Each board definition against the calibration bounds (protocol.CALIBRATION): the lowest
zero a unit's current amplifier may be trimmed to must read as a live sensor. A unit whose
zero sits nearer CURRENT_SENSOR's floor than the ADC's noise allows trips now and then, or
cannot start, although `pen selftest` offers the calibration as the cure."""

import pytest
from firmware_import import protocol as P
from penctl import boards

# One ESP32 ADC sample scatters ~5 mV rms at 11 dB (host/penctl/sim/vm/machine.py, the
# ADC model); the supervisor trips after current_sensor_ms of readings below the floor.
ADC_NOISE_MV_RMS = 5
CLEARANCE_SIGMAS = 6


@pytest.fixture(params=boards.names())
def board(request):
    return boards.load(request.param)


def test_the_lowest_current_zero_stays_clear_of_the_dead_sensor_floor(board):
    lowest_zero = P.CALIBRATION[0][3]
    idle_mv = board["calibration"]["current_bias_mv"] + lowest_zero
    floor_mv = board["limits"]["current_sensor_mv_min"]
    assert idle_mv - floor_mv >= CLEARANCE_SIGMAS * ADC_NOISE_MV_RMS, (
        "a unit trimmed to current_zero=%d idles at %d mV, %d mV above the %d mV floor" % (
            lowest_zero, idle_mv, idle_mv - floor_mv, floor_mv))


def test_a_dead_sensor_reads_below_the_floor(board):
    # 0 V at the pin reads the ADC's offset, ~142 mV at 11 dB (esp_adc_cal line fitting)
    assert board["limits"]["current_sensor_mv_min"] > 142 + CLEARANCE_SIGMAS * ADC_NOISE_MV_RMS
