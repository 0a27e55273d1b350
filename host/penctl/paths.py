"""Where the firmware and the board definitions are: inside the installed package
(penctl.firmware, penctl.board_definitions), which in a checkout are its top-level firmware/ and
boards/ folders. CHECKOUT is the repository root when penctl runs from one, else None."""

from importlib.resources import files
from pathlib import Path

FIRMWARE_DIR = Path(str(files("penctl.firmware")))
BOARDS_DIR = Path(str(files("penctl.board_definitions")))
_ROOT = FIRMWARE_DIR.parent
CHECKOUT = _ROOT if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "host").is_dir() else None

# On the host only: it makes firmware/ a package; a board never gets it
HOST_ONLY = "__init__.py"


def firmware_sources(firmware_dir=None):
    """The firmware's modules as deployed (firmware/*.py but the package marker), sorted."""
    return sorted(p for p in Path(firmware_dir or FIRMWARE_DIR).glob("*.py")
                  if p.name != HOST_ONLY)
