"""The firmware uses only APIs the ESP32 port has: mypy checks it against the
MicroPython stdlib stubs and the ESP32 port's stubs (micropython-esp32-stubs)."""

import shutil
import sysconfig
from pathlib import Path

import pytest
from mypy import api as mypy_api
from penctl.paths import FIRMWARE_DIR, firmware_sources

SITE = Path(sysconfig.get_paths()["purelib"])


@pytest.fixture(scope="module")
def micropython_typeshed(tmp_path_factory):
    # mypy wants a typeshed layout: MicroPython's stdlib stubs in place of CPython's
    # (micropython-stdlib-stubs), overlaid with the ESP32 port's modules (machine, esp32,
    # time, gc ... from micropython-esp32-stubs), each listed in typeshed's VERSIONS.
    shed = tmp_path_factory.mktemp("mpshed")
    stdlib = shed / "stdlib"
    shutil.copytree(SITE / "stdlib", stdlib)
    listed = {line.split(":")[0] for line in (stdlib / "VERSIONS").read_text().splitlines()}
    record = next(SITE.glob("micropython_esp32_stubs-*.dist-info")) / "RECORD"
    port = [line.split(",")[0] for line in record.read_text().splitlines()]
    extra = []
    for name in port:
        if "/" not in name and name.endswith(".pyi"):
            shutil.copy(SITE / name, stdlib / name)
            if name[:-4] not in listed:
                extra.append("%s: 3.0-\n" % name[:-4])
    with open(stdlib / "VERSIONS", "a") as f:
        f.writelines(extra)
    bundled = Path(mypy_api.__file__).parent / "typeshed" / "stubs" / "mypy-extensions"
    shutil.copytree(bundled, shed / "stubs" / "mypy-extensions")
    return shed


def check(files, shed):
    out, err, status = mypy_api.run([
        "--custom-typeshed-dir", str(shed), "--ignore-missing-imports", "--check-untyped-defs",
        "--python-version", "3.11", "--no-incremental", "--cache-dir", "/dev/null",
        *map(str, files)])
    return status, out + err


def test_firmware_type_checks_against_esp32_stubs(micropython_typeshed):
    status, report = check(firmware_sources(), micropython_typeshed)
    assert status == 0, report


def test_an_api_the_esp32_lacks_is_caught(micropython_typeshed, tmp_path):
    fw = tmp_path / "fw"
    shutil.copytree(FIRMWARE_DIR, fw)
    src = (fw / "depth.py").read_text()
    (fw / "depth.py").write_text(src.replace("sensor.read_uv()", "sensor.read_mv()"))
    status, report = check(firmware_sources(fw), micropython_typeshed)
    assert status != 0 and "read_mv" in report
