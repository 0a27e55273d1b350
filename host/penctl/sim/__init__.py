"""The virtual pen board: real firmware in the MicroPython VM, physics behind its pins."""

from .board import VirtualBoard
from .physics import FAULTS

__all__ = ["VirtualBoard", "FAULTS"]
