"""The wire protocol, shared with the firmware.

The single definition is firmware/protocol.py (it runs on the board too); this module
loads that file so host and firmware cannot drift apart.
"""

import importlib.util
import sys

from .paths import FIRMWARE_DIR


def _load():
    spec = importlib.util.spec_from_file_location("penctl._wire", FIRMWARE_DIR / "protocol.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


_wire = sys.modules.get("penctl._wire") or _load()
globals().update({k: v for k, v in vars(_wire).items() if not k.startswith("__")})
STATE_NAMES = _wire.STATES
FAULT_NAMES = tuple(name for name, _ in _wire.FAULTS)
ERROR_NAMES = tuple(name for name, _ in _wire.ERRORS)
PARAM_NAMES = tuple(p[0] for p in _wire.PARAMS)
