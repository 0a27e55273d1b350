"""Errors of the host package. The library raises these; only the CLI prints them."""


class PenError(Exception):
    """Base class. `code` is the firmware's error or fault code when there is one."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code
        self.message = message


class RefusedError(PenError):
    """The board refused a command (bad value, wrong state, precondition); nothing changed."""


class FaultError(PenError):
    """The board latched a fault; `code` is its fault code, `readings` what tripped it."""

    def __init__(self, message, code=None, readings=None):
        super().__init__(message, code)
        self.readings = readings or {}


class LinkError(PenError):
    """The serial link failed: port missing or busy, no answer, garbled replies."""


class UsageError(PenError):
    """The caller asked for something that cannot be done as asked."""


class VirtualBoardError(PenError):
    """The virtual board itself failed (VM crashed, could not start)."""
