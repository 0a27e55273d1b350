# The needle motor: PWM into the driver, a separate driver-enable line, and the
# tachometer counted by the pulse counter (machine.Counter, no Python IRQ per pulse).
# Two independent means stop it: duty to zero and enable low (off()). A third is in
# hardware: the heartbeat line feeds a retriggerable monostable that gates the enables of
# both drivers (motor and depth H-bridge), so a firmware that stops ticking loses them.
from array import array

from machine import PWM, Counter, Pin
from micropython import const

_MASK30 = const(0x3FFFFFFF)  # counts kept below 2**30: small ints on a 32-bit ESP32


class Motor:
    def __init__(self, board):
        pins = board["pins"]
        m = board["motor"]
        t = board["timing"]
        self.enable = Pin(pins["motor_enable"], Pin.OUT, value=0)
        # one edge a tick for the monostable: the app alternates its level (app.tick)
        self.heartbeat = Pin(pins["heartbeat"], Pin.OUT, value=0)
        self.pwm = PWM(Pin(pins["motor_pwm"]), freq=m["pwm_freq"], duty_u16=0)
        self.counter = Counter(0, Pin(pins["tach"], Pin.IN), edge=Counter.RISING, filter_ns=1000)
        self.ppr = m["tach_ppr"]
        self.chz_k = 10000000 // self.ppr  # pulses * k / (dt in 10 us) = cHz
        self.window = t["rate_window_ms"] // t["tick_ms"]  # the rate over this many ticks
        self.counts = array("i", [0] * (self.window + 1))
        self.times = array("i", [0] * (self.window + 1))
        self.head = 0
        self.duty = 0
        self.pulses_total = 0
        self._last = self.counter.value() & _MASK30

    def off(self):
        # safe from any context, including IRQs and finally blocks
        self.pwm.duty_u16(0)
        self.enable.value(0)
        self.duty = 0

    def drive(self, duty_u16):
        if duty_u16 <= 0:
            self.off()
            return
        # Only off() drops the enable and the duty, and it zeroes self.duty with them: a
        # nonzero self.duty means the enable is high and the PWM at that duty already, so
        # a steady drive costs the tick no call into the hardware (make bench)
        if duty_u16 != self.duty:
            if not self.duty:
                self.enable.value(1)
            self.pwm.duty_u16(duty_u16)
            self.duty = duty_u16

    def measure(self, r, now_us, pulse_ticks):
        """Rate over the window, pulses in the last pulse_ticks ticks, into r."""
        # Counter.value() is an int of any size on the port (past 2**30 a long int, on the
        # heap): masked here, and whole strokes counted apart from the pulses of the one under
        # way, so that nothing here grows past a small int however long the pen runs.
        # Few locals: a call whose locals and stack exceed 11 words gets its frame from the
        # heap (py/objfun.c, VM_MAX_STATE_ON_STACK)
        count = self.counter.value() & _MASK30
        n = self.pulses_total + ((count - self._last) & _MASK30)
        self._last = count
        if n >= self.ppr:
            r.strokes = (r.strokes + n // self.ppr) & _MASK30
            n %= self.ppr
        self.pulses_total = n
        c = self.counts  # a ring of window + 1 counts and their times
        n = self.head + 1 if self.head < self.window else 0
        self.head = n
        c[n] = count
        self.times[n] = now_us & _MASK30
        r.recent_pulses = (count - c[n - pulse_ticks]) & _MASK30  # a negative index wraps
        n = n + 1 if n < self.window else 0  # the oldest
        now_us = ((now_us - self.times[n]) & _MASK30) // 10  # the window's time, 10 us
        r.rate_chz = ((count - c[n]) & _MASK30) * self.chz_k // now_us if now_us > 0 else 0
        r.drive_u16 = self.duty


def force_off(board):
    """Outputs safe without a Motor object (used when building the app failed)."""
    pins = board["pins"]
    Pin(pins["motor_enable"], Pin.OUT, value=0)
    PWM(Pin(pins["motor_pwm"]), freq=board["motor"]["pwm_freq"], duty_u16=0)

