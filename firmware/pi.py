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
        # Few locals: a call whose locals and stack exceed 11 words gets its frame from the
        # heap (py/objfun.c, VM_MAX_STATE_ON_STACK); it runs every control tick
        if setpoint <= 0:
            self.integ = 0
            self.out = 0
            return 0
        err = setpoint - measured
        # feed-forward and proportional
        out = self.ff_offset + ((setpoint * self.ff_gain) >> _SHIFT) + ((err * self.kp) >> _SHIFT)
        i = self.integ
        # anti-windup: integrate only when the output is not pushed further into a limit
        measured = out + (i >> _SHIFT)  # unclamped
        if integrate and not ((measured >= self.out_max and err > 0) or (measured <= 0
                                                                         and err < 0)):
            i += err * self.ki
            measured = self.out_max << _SHIFT  # the integral's bound
            if i > measured:
                i = measured
            elif i < -measured:
                i = -measured
            self.integ = i
        out += i >> _SHIFT
        if out > self.out_max:
            out = self.out_max
        elif out < 0:
            out = 0
        self.out = out
        return out
