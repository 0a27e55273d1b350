"""make bench's ESP32 estimate and `pen bench`'s figures: the arithmetic, without a board."""

from penctl import cpu_estimate as ce
from penctl.cli import bench_cmds


def reading(**values):
    base = dict.fromkeys(ce.FIELDS, 0)
    base.update(values)
    return base


def test_the_factor_scales_with_the_clock_from_the_published_figure():
    assert round(ce.factor(ce.ESP32_PYSTONES * 100, 160), 9) == 100
    assert round(ce.factor(ce.ESP32_PYSTONES * 100, 240), 9) == round(100 * 160 / 240, 9)


def test_the_firmware_share_leaves_out_the_stand_ins_heap_scans_and_timing():
    before = reading(wrapper_ns=500, heap_blocks=5000, probe_passes=100, probe_us=400)
    after = reading(ticks=100, total_us=30000, standin_us=12000, standin_calls=2000,
                    mem_alloc_calls=200, mem_alloc_us=6000, wrapper_ns=500, heap_blocks=5000,
                    probe_passes=600, probe_us=2400)
    tick = ce.split(before, after)
    # 300 us a tick: 120 in the stand-ins, 11 timing them and the scans (22 calls x 0.5 us),
    # 60 scanning
    assert tick["firmware_us"] == 109 and tick["standin_us"] == 131
    assert tick["mem_alloc_calls"] == 2 and tick["mem_alloc_us_each"] == 30
    assert tick["probe_per_s"] == 250000  # 500 passes in the window's 2000 us


def test_the_estimate_is_a_share_of_the_period_it_is_given():
    tick = {"ticks": 100, "left_out": 0, "total_us": 300, "standin_us": 130,
            "mem_alloc_calls": 0, "mem_alloc_us_each": 0, "firmware_us": 100,
            "heap_blocks": 5000, "probe_per_s": ce.ESP32_PYSTONES * 40}
    # the probe at half pystone's rate: the VM 20x an ESP32 at 160 MHz: 2 ms there
    for tick_ms, share in ((5, "40 %"), (10, "20 %")):
        text = dict(ce.rows(tick, 0.5, "test", tick_ms))
        line = next(v for k, v in text.items() if k.startswith("ESP32 at 160"))
        assert line.startswith("2000 + 0 = 2000 us, ") and share in line, line


def test_bench_prints_a_field_diag_gains_with_the_unit_its_name_says():
    figures = bench_cmds.figures({"tick_us_mean": "120", "alloc_per_s": "512",
                                  "alloc_ms": "2000", "alloc_bytes": "25", "odd": "x"}, 2.0)
    assert figures["tick_us_mean"] == {"value": 120, "unit": "us"}
    assert figures["alloc_per_s"] == {"value": 512, "unit": "B/s"}
    assert figures["alloc_ms"] == {"value": 2000, "unit": "ms"}
    assert figures["alloc_bytes"] == {"value": 25, "unit": "B"}
    assert figures["odd"] == {"value": "x", "unit": ""}


def test_a_heap_scan_is_estimated_between_the_clock_ratio_and_the_bytecode_factor():
    tick = {"ticks": 100, "left_out": 0, "total_us": 300, "standin_us": 130,
            "mem_alloc_calls": 2, "mem_alloc_us_each": 10, "firmware_us": 0,
            "heap_blocks": ce.ESP32_HEAP_BLOCKS, "probe_per_s": ce.ESP32_PYSTONES * 50}
    text = dict(ce.rows(tick, 1.0, "test", 10, host_mhz=1600))
    line = next(v for k, v in text.items() if k.startswith("ESP32 at 160"))
    # 20 us a tick on the VM: x10 (1600/160 MHz) to x50 (the factor)
    assert line.startswith("0 + 200..1000 = 200..1000 us, 2..10 %"), line
