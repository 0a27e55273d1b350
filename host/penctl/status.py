"""The status schema on the host, all of it from the one table (codes.FIELDS): `Status`,
each attribute's unit and number format, as the client, the recordings, the live views
and the protocol docs use them."""

import dataclasses

from .firmware import protocol as P
from .firmware import wire


@dataclasses.dataclass(frozen=True)
class Field:
    key: str  # on the wire
    attribute: str  # of Status
    unit: str  # of the attribute
    decimals: int | None  # the wire's, in the attribute's unit; None: a state or names
    kind: object  # codes.FIELDS' third column: decimals, "state", "faults" or "warnings"
    meaning: str

    @property
    def names(self):
        return self.kind in ("faults", "warnings")

    def text(self, value):
        """The value as the board sent it, in the attribute's unit (names comma separated)."""
        if self.decimals is not None:
            return "%.*f" % (self.decimals, value)
        return ",".join(value) if self.names else str(value)


def _field(entry):
    key, _, kind, unit, attribute, divisor, meaning = entry
    # a divisor of 1000 takes a milli- unit to its base unit (mV on the wire, V on the host)
    if divisor == 1000 and unit.startswith("m"):
        unit = unit[1:]
    decimals = None if isinstance(kind, str) else kind + len(str(divisor)) - 1
    return Field(key, attribute, unit, decimals, kind, meaning)


FIELDS = tuple(_field(entry) for entry in P.FIELDS)


def _attribute(f):
    if f.kind == "state":
        return f.attribute, str
    if f.names:
        return f.attribute, list, dataclasses.field(default_factory=list)
    if f.decimals == 0:
        return f.attribute, int, 0
    return f.attribute, float, 0.0


Status = dataclasses.make_dataclass(
    "Status", [_attribute(f) for f in FIELDS], namespace={
        "from_fields": classmethod(lambda cls, fields: cls(**wire.status_values(fields))),
        "__doc__": "One snapshot of the board, from a STATUS reply or a telemetry line "
                   "(`Status('IDLE')` for an empty one): " + ", ".join(
                       "%s (%s%s)" % (f.attribute, f.meaning, ", " + f.unit if f.unit else "")
                       for f in FIELDS) + "."})
Status.__module__ = __name__
