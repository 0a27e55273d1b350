# Integer PI controller with feed-forward and anti-windup, for the stroke-rate loop.
# Pure logic on plain ints (no floats: each float is a heap object in MicroPython, and
# the control tick must allocate nothing). All gains are fixed-point with _SHIFT bits.
from micropython import const

_SHIFT = const(10)
_ONE = const(1024)


def fixed(x):
    """A real gain as a fixed-point integer for this module."""
    return int(x * _ONE + (0.5 if x >= 0 else -0.5))


class PI:
    def __init__(self, kp, ki, ff_gain, ff_offset, out_max):
        # kp, ff_gain: output units per input unit; ki: output units per input unit per
        # tick; ff_offset, out_max: output units. Gains as returned by fixed().
        self.kp = kp
        self.ki = ki
        self.ff_gain = ff_gain
        self.ff_offset = ff_offset
        self.out_max = out_max
        self.integ = 0
        self.out = 0

    def reset(self):
        self.integ = 0
        self.out = 0

    def update(self, setpoint, measured, integrate=True):
        """integrate=False while the setpoint ramps: the measured rate lags a moving
        setpoint, and integrating that lag winds up into an overshoot."""
        if setpoint <= 0:
            self.integ = 0
            self.out = 0
            return 0
        err = setpoint - measured
        ff = self.ff_offset + ((setpoint * self.ff_gain) >> _SHIFT)
        p = (err * self.kp) >> _SHIFT
        unclamped = ff + p + (self.integ >> _SHIFT)
        # anti-windup: integrate only when the output is not pushed further into a limit
        saturated = (unclamped >= self.out_max and err > 0) or (unclamped <= 0 and err < 0)
        if integrate and not saturated:
            self.integ += err * self.ki
            lim = self.out_max << _SHIFT
            if self.integ > lim:
                self.integ = lim
            elif self.integ < -lim:
                self.integ = -lim
        out = ff + p + (self.integ >> _SHIFT)
        if out > self.out_max:
            out = self.out_max
        elif out < 0:
            out = 0
        self.out = out
        return out
