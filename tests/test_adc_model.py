"""The virtual board's ADC is the ESP32's, run in the VM as the firmware meets it: one sample
through ESP-IDF's line-fitting calibration (adc_cali_line_fitting.c), with the ADC's floor,
its full scale by the unit's reference, and noise; the constructor the port's (machine_adc.c
at MicroPython v1.26.0). Figures from those sources, worked out by hand in the comments."""

import ast
import subprocess
import tempfile
from pathlib import Path

import pytest
from penctl.sim.register_file import RegisterFile
from penctl.sim.vm import simhw
from penctl.sim.vm_process import find_micropython

VM_DIR = Path(simhw.__file__).parent
PIN = 35  # ADC1 channel 7
SAMPLES = 400

# In the VM: the stand-in's ADC on the register file, without a physics thread to wait for
SCRIPT = """
import sys
sys.path.insert(0, %r)
import simhw
simhw.attach(%r)
import machine
machine._poll_irqs = lambda: None
adc = machine.ADC(machine.Pin(%d))
out = {}
for mv in %r:
    simhw.regs.put(simhw.slot(%d, simhw.G_ADC_UV), mv * 1000)
    out[mv] = [adc.read_uv() for _ in range(%d)]
simhw.regs.put(simhw.slot(%d, simhw.G_ADC_UV), 2000000)
out["raw"] = [adc.read() for _ in range(%d)]
out["u16"] = [adc.read_u16() for _ in range(%d)]
errors = []
for bad in ("machine.ADC(machine.Pin(%d), sample_ns=1000)", "machine.ADC(machine.Pin(22))",
            "machine.ADC(machine.Pin(%d), atten=4)"):
    try:
        eval(bad)
        errors.append(None)
    except (TypeError, ValueError) as e:
        errors.append(type(e).__name__)
out["errors"] = errors
print(repr(out))
"""
INPUTS_MV = [0, 100, 500, 1000, 2000, 2400, 3300]


def sample(vref_mv, seed=1):
    with tempfile.TemporaryDirectory() as tmp:
        regs = RegisterFile(Path(tmp), bytes(6))
        try:
            regs.regs[simhw.H_ADC], regs.regs[simhw.H_ADC + 1] = vref_mv, seed
            script = SCRIPT % (str(VM_DIR), regs.path, PIN, INPUTS_MV, PIN, SAMPLES, PIN,
                               SAMPLES, SAMPLES, PIN, PIN)
            done = subprocess.run([find_micropython(), "-c", script], capture_output=True,
                                  text=True, timeout=60)
        finally:
            regs.close()
    assert done.returncode == 0, done.stderr
    return ast.literal_eval(done.stdout)


@pytest.fixture(scope="module", params=[1000, 1100, 1200])
def unit(request):
    return request.param, sample(request.param)


def mean_mv(values):
    return sum(values) / len(values) / 1000


def test_a_grounded_input_reads_the_offset_term_not_zero(unit):
    # adc1_vref_atten_offset[ADC_ATTEN_DB_11] = 142 mV, whatever the reference: raw 0
    _, out = unit
    assert set(out[0]) == {142000} and set(out[100]) == {142000}


def test_the_linear_range_reads_true_within_the_efuse_step(unit):
    # the eFuse holds Vref in 7 mV steps: a gain error of at most 3.5 in 1100 (0.3 %)
    _, out = unit
    for mv in (500, 1000, 2000, 2400):
        assert abs(mean_mv(out[mv]) - mv) <= 2 + mv * 0.0035, (mv, mean_mv(out[mv]))


def test_full_scale_reads_by_the_units_reference(unit):
    # raw 4095 through lut_adc1_low/high, bilinear at the eFuse Vref (1002, 1100, 1198 mV):
    # 3061, 3134, 3207 mV; an input beyond it reads it, less a few codes of noise
    vref, out = unit
    full = {1000: 3061, 1100: 3134, 1200: 3207}[vref]
    assert max(out[3300]) == full * 1000
    assert full - 15 <= mean_mv(out[3300]) <= full


def test_a_single_sample_is_noisy_and_whole_millivolts(unit):
    _, out = unit
    values = out[1000]
    mean = sum(values) / len(values)
    rms_mv = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 / 1000
    assert 3 <= rms_mv <= 8, rms_mv  # ~6 codes of ~0.8 mV
    assert all(v % 1000 == 0 for v in values)  # read_uv() has millivolt resolution


def test_read_u16_scales_the_raw_sample_as_the_port_does(unit):
    # machine_adc.c: raw << (16 - bits) | raw >> (2 * bits - 16), 12 bits
    # (each call one sample of 2000 mV: raw ~2300 at 1100 mV)
    _, out = unit
    assert all(u16 & 0xF == u16 >> 12 for u16 in out["u16"])
    assert abs(sum(out["u16"]) / 16 - sum(out["raw"])) / SAMPLES < 2


def test_the_constructor_takes_what_the_port_takes(unit):
    # ADC(pin, *, atten): no sample_ns; GPIO 22 has no ADC channel; atten 0..3
    _, out = unit
    assert out["errors"] == ["TypeError", "ValueError", "ValueError"]


def test_the_noise_is_seeded():
    assert sample(1100, seed=7)[1000] == sample(1100, seed=7)[1000]
    assert sample(1100, seed=7)[1000] != sample(1100, seed=8)[1000]
