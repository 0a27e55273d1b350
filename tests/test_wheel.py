"""penctl as a user installs it: a wheel built from the checkout, installed into a fresh
venv outside it, must run `pen sim`, a short `pen run` and `pen deploy` against it, and
give `from penctl.sim import VirtualBoard`, with the firmware and board definitions it
carries inside (package data), not the checkout's.

Nothing is downloaded: the wheel is built with this venv's setuptools, installed without
its dependencies, and the new venv sees them where this venv has them (a path file); the
VM is this venv's `micropython` (PEN_MICROPYTHON), as the pinned wheel would put one beside
the user's own `pen`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from penctl.paths import CHECKOUT

HERE_BIN = Path(sys.executable).parent


def _run(args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, "%s\n%s\n%s" % (args, done.stdout[-3000:], done.stderr[-3000:])
    return done


# what a build must not see of the checkout: its own venv and caches (the copy is what a
# source distribution holds)
_NOT_SOURCE = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".ruff_cache", ".hypothesis",
                                     ".pen-results", ".mypy_cache")


def _wheel(tmp):
    """A wheel built from a copy of the checkout: pip builds in the source tree (build/,
    an egg-info), and parallel workers building in the checkout at once broke each
    other's builds."""
    source = tmp / "source"
    shutil.copytree(CHECKOUT, source, ignore=_NOT_SOURCE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--quiet", "-w", str(tmp / "dist"), str(source)], cwd=tmp)
    return next((tmp / "dist").glob("penctl-*.whl"))


def _install(tmp, wheel):
    """(python, pen, env, cwd) of a fresh venv outside the checkout with the wheel in it."""
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                                         "'purelib'))"]).stdout.strip())
    # the dependencies as this venv has them (a plain path: its own .pth files, among them
    # the editable penctl of the checkout, are not read from there)
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
          "--no-deps", "--no-index", str(wheel)])
    env = dict(os.environ, PEN_MICROPYTHON=str(HERE_BIN / "micropython"),
               PEN_TIMEOUT_SCALE="5", PYTHONPATH="")
    work = tmp / "elsewhere"
    work.mkdir()
    return python, venv / "bin" / "pen", env, work


@pytest.mark.long(10)
def test_the_wheel_installed_outside_the_checkout_runs_sim_run_and_deploy(tmp_path):
    wheel = _wheel(tmp_path)
    # the firmware and the board definitions travel inside it
    names = zipfile.ZipFile(wheel).namelist()
    fw = sorted(n for n in names if n.startswith("penctl/firmware/"))
    assert "penctl/firmware/wire.py" in fw and "penctl/firmware/main.py" in fw
    assert len(fw) == len(list((CHECKOUT / "firmware").glob("*.py")))
    assert "penctl/board_definitions/virtual.json" in names
    python, pen, env, work = _install(tmp_path, wheel)
    # what runs is the installed package, not the checkout
    done = _run([str(python), "-c", "import penctl, penctl.paths as p; from penctl.sim import "
                 "VirtualBoard; print(penctl.__file__); print(p.FIRMWARE_DIR); print(p.CHECKOUT)"],
                env=env, cwd=work)
    module, firmware, checkout = done.stdout.split()
    assert not module.startswith(str(CHECKOUT)) and not firmware.startswith(str(CHECKOUT))
    assert (Path(firmware) / "wire.py").is_file() and checkout == "None"
    _sim_run_and_deploy(pen, env, work)


def _sim_run_and_deploy(pen, env, work):
    link = work / "ttyPEN"
    sim = subprocess.Popen([str(pen), "--json", "sim", "--link", str(link)], cwd=work, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = json.loads(sim.stdout.readline())
        assert started["port"] == str(link)
        # the longest link timeout, as the HIL tests' boards have it: a busy host held this
        # run's keepalives on the PTY past the default 500 ms (LINK_LOST, a true fault for
        # the board, not what this test is about)
        _run([str(pen), "--port", str(link), "config", "set", "--link-timeout", "2000"],
             cwd=work, env=env)
        done = _run([str(pen), "--port", str(link), "--json", "run", "--depth", "0.5",
                     "--rate", "100", "--for", "1s"], cwd=work, env=env)
        summary = json.loads(done.stdout)
        assert summary["strokes"] > 0 and not summary["faults"], summary
        done = _run([str(pen), "--port", str(link), "--json", "deploy"], cwd=work, env=env)
        report = json.loads(done.stdout)
        assert report["version"], report
    finally:
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(timeout=60)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
    assert not link.exists()
