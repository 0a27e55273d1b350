"""Import the firmware's pure-logic modules (protocol, wire, supervisor, pi, eventlog) in CPython,
as the board does: top-level, by plain name.

They import `micropython.const`, which CPython lacks: a stand-in module provides it.
"""

import sys
import types

from penctl.paths import FIRMWARE_DIR

if "micropython" not in sys.modules:
    stub = types.ModuleType("micropython")
    stub.const = lambda x: x
    sys.modules["micropython"] = stub
if str(FIRMWARE_DIR) not in sys.path:
    sys.path.insert(0, str(FIRMWARE_DIR))

import eventlog  # noqa: E402
import pi  # noqa: E402
import protocol  # noqa: E402
import supervisor  # noqa: E402
import wire  # noqa: E402

__all__ = ["eventlog", "pi", "protocol", "supervisor", "wire"]
