"""The Makefile as a newcomer meets it: the first `make demo` (or any target) installs the
dependencies, which takes a minute or two, and must show that it is at work."""

import shutil
import subprocess

import pytest
from penctl.paths import CHECKOUT


def first_run_commands(target):
    """The commands a fresh clone's `make TARGET` runs, in order (make -n: none is run)."""
    make = shutil.which("make")
    assert make and CHECKOUT, "the suite runs from a checkout, which make builds"
    done = subprocess.run([make, "-n", "-B", target, "PYTHON=python3"], cwd=CHECKOUT,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.splitlines()


@pytest.mark.parametrize("target", ["demo", "setup"])
def test_the_first_install_says_what_it_does_and_shows_pip_at_work(target):
    commands = first_run_commands(target)
    install = next(i for i, c in enumerate(commands) if "pip install" in c and ".[dev]" in c)
    assert any(c.startswith("echo ") and "1-2 min" in c for c in commands[:install]), commands
    assert "--quiet" not in commands[install] and "-q " not in commands[install]
