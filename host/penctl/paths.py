"""Where the firmware and the board definitions live (the repository checkout)."""

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
        spec.loader.exec_module(module)
    return sys.modules[key]
