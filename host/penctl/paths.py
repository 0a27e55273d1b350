"""Where the firmware and the board definitions live (the repository checkout)."""

import contextlib
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware"
BOARDS_DIR = ROOT / "boards"


def firmware_module(name):
    """A firmware module that runs on both sides (protocol, integrity), loaded from the
    firmware directory so the host and the board share one definition."""
    key = "penctl._fw_" + name
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, FIRMWARE_DIR / (name + ".py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        with _siblings_by_plain_name():
            spec.loader.exec_module(module)
    return sys.modules[key]


@contextlib.contextmanager
def _siblings_by_plain_name():
    """The firmware imports its own modules by plain name (`from codes import *`): let it,
    then file what it imported under penctl._fw_<name>, leaving no plain `codes` behind."""
    before = set(sys.modules)
    sys.path.insert(0, str(FIRMWARE_DIR))
    try:
        yield
    finally:
        sys.path.remove(str(FIRMWARE_DIR))
        for added in set(sys.modules) - before:
            if (FIRMWARE_DIR / (added + ".py")).is_file():
                sys.modules.setdefault("penctl._fw_" + added, sys.modules.pop(added))
