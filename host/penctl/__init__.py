"""penctl: host side of the microneedling pen controller.

    from penctl import Pen
    with Pen("/dev/ttyUSB0") as pen:
        pen.home()
        pen.set(depth_mm=0.5, rate_hz=100)
        pen.start()
"""

from .errors import FaultError, LinkError, PenError, RefusedError, UsageError, VirtualBoardError

__version__ = "0.2.0"
__all__ = ["Pen", "Status", "PenError", "RefusedError", "FaultError", "LinkError",
           "UsageError", "VirtualBoardError", "__version__"]


def __getattr__(name):
    # Pen and Status on first use: `import penctl.sim` (a virtual board alone, as CI runs
    # one) loads no client
    if name in ("Pen", "Status"):
        from . import client

        return getattr(client, name)
    raise AttributeError("module 'penctl' has no attribute %r" % name)
