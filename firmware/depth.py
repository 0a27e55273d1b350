# The depth actuator: an H-bridge (PWM speed, direction line) moving the needle
# carriage between mechanical hard stops, a linear position sensor on the ADC, and a
# home switch at the retracted end. Homing records the sensor reading at the switch,
# so depth is measured from a known end; the setpoint moves out at a bounded rate and in
# at the actuator's moving rate (in is the safe direction). Where the position is not
# known (at boot, after an interrupted homing) the carriage is driven in until the home
# switch closes: a retract, which needs no sensor.
from time import ticks_diff

from board import u16
from machine import ADC, PWM, Pin
from micropython import const

_HOME_IDLE = const(0)
_HOME_LEAVE = const(1)  # started on the switch: move out until it opens
_HOME_SEEK = const(2)  # retract until the switch closes
_HOME_RETRACT = const(3)  # retract to the switch without taking it as the zero
# The ESP32's ADC scatters one sample by ~5 mV rms (8 um at 600 mV/mm), as much as the old
# 8 um dead-band, so the actuator dithered at rest. measure() averages 4 samples a tick
# (~4 um rms), and the loop has hysteresis: it follows a moving setpoint, drives the needles
# to within _SETTLE_UM of a standing one, then rests until they are _DEADBAND_UM off (over 5
# times the noise; the depth tolerance is 50 um)
_DEADBAND_UM = const(30)
_SETTLE_UM = const(4)
# what home_step() reports (the controller imports the three it acts on)
_HOMING = const(0)
HOMED = const(1)
HOME_TIMEOUT = const(2)  # the switch not reached within home_timeout_ms
HOME_SENSOR_BAD = const(3)  # the sensor read implausibly at the switch


class Depth:
    def __init__(self, board):
        pins = board["pins"]
        d = board["depth"]
        self.pwm = PWM(Pin(pins["depth_pwm"]), freq=d["pwm_freq"], duty_u16=0)
        self.dir = Pin(pins["depth_dir"], Pin.OUT, value=0)
        self.sensor = ADC(Pin(pins["depth_adc"]), atten=ADC.ATTN_11DB)
        self.switch = Pin(pins["home_switch"], Pin.IN, Pin.PULL_UP)
        self.mv_per_mm = d["sensor_mv_per_mm"]
        self.home_mv_min = d["sensor_home_mv_min"]
        self.home_mv_max = d["sensor_home_mv_max"]
        self.kp = u16(d["kp_duty_per_mm"] / 1000)  # duty_u16 per um of error
        self.max_duty = u16(d["max_duty"])
        self.home_duty = u16(d["home_duty"])
        self.home_timeout_ms = d["home_timeout_ms"]
        tick_ms = board["timing"]["tick_ms"]
        self.run_step_um = max(1, int(d["run_rate_mm_per_s"] * tick_ms))  # um per tick
        self.move_step_um = max(1, int(d["move_rate_mm_per_s"] * tick_ms))
        self.duty = 0  # what the PWM holds, signed by the direction line (_drive)
        self.homed = False
        self.home_mv = 0
        self.target_um = 0  # set every tick by the controller's one guarded path (tick)
        self.setpoint_um = 0  # where the loop steers now (ramps to target)
        self.homing = _HOME_IDLE
        self.home_started = 0

    def stop(self):
        self.pwm.duty_u16(0)
        self.duty = 0

    def abandon(self, untrusted=False):
        """An unfinished homing or retract given up (the drive is left as it is); untrusted:
        the actuator is stopped where it stands and its position is no longer trusted, so
        it homes again."""
        if untrusted:
            self.stop()
            self.homed = False
        self.homing = _HOME_IDLE

    def moving(self):
        """The actuator is driven, or its setpoint has not reached the target yet."""
        return self.setpoint_um != self.target_um or self.duty != 0

    def _drive(self, duty):
        """Drive out (duty > 0) or in (< 0), or stop (0). Only this and stop() write the
        PWM and the direction line, and self.duty says what they hold (its sign the
        direction, while it is not 0): what they hold already is not written again, so a
        settled actuator costs the control tick no call into the hardware (make bench)."""
        if duty > self.max_duty:
            duty = self.max_duty
        elif duty < -self.max_duty:
            duty = -self.max_duty
        if duty == self.duty:
            return
        if duty > 0:
            if self.duty <= 0:
                self.dir.value(1)
            self.pwm.duty_u16(duty)
        elif duty < 0:
            if self.duty >= 0:
                self.dir.value(0)
            self.pwm.duty_u16(-duty)
        else:
            self.pwm.duty_u16(0)
        self.duty = duty

    def measure(self, r):
        sensor = self.sensor  # 4 samples: no allocation, small ints on the ESP32
        mv = (sensor.read_uv() + sensor.read_uv() + sensor.read_uv() + sensor.read_uv()) // 4000
        r.depth_mv = mv
        # from the last homing's zero even when the position is no longer trusted: the
        # supervisor judges OVERDEPTH on it; 0 until a first homing gives a zero
        r.depth_um = (mv - self.home_mv) * 1000 // self.mv_per_mm if self.home_mv else 0
        r.home_switch = 1 - self.switch.value()  # closed at the retracted end pulls low

    # ---- homing -----------------------------------------------------------------------
    def start_homing(self, now_ms):
        self.homed = False
        self.homing = _HOME_LEAVE
        self.home_started = now_ms

    def retract(self, now_ms):
        """Drive the carriage in to the home switch (home_step reports it), keeping the
        zero of the last homing: the way back where the position is not trusted."""
        self.homed = False
        self.homing = _HOME_RETRACT
        self.home_started = now_ms

    def home_step(self, r, now_ms):
        """Advance homing (or a retract): HOMED once at the switch (a retract too, though
        it keeps the old zero), _HOMING while on the way, HOME_TIMEOUT or HOME_SENSOR_BAD
        (a homing's reading at the switch out of bounds) when it failed."""
        if ticks_diff(now_ms, self.home_started) > self.home_timeout_ms:
            self.stop()
            self.homing = _HOME_IDLE
            return HOME_TIMEOUT
        if self.homing == _HOME_LEAVE:
            if r.home_switch:
                self._drive(self.home_duty)
                return _HOMING
            self.homing = _HOME_SEEK
        if not r.home_switch:
            self._drive(-self.max_duty if self.homing == _HOME_RETRACT else -self.home_duty)
            return _HOMING
        self.stop()
        retracted = self.homing == _HOME_RETRACT  # in, but not taken as the zero
        self.homing = _HOME_IDLE
        if retracted:
            return HOMED
        if not self.home_mv_min <= r.depth_mv <= self.home_mv_max:
            return HOME_SENSOR_BAD
        self.home_mv = r.depth_mv
        self.homed = True
        self.setpoint_um = 0
        return HOMED

    # ---- position loop ---------------------------------------------------------------------
    def hold(self, r, running):
        """Ramp the setpoint toward the target (out at the running rate while the needles
        stroke, in always at the moving rate) and steer the actuator onto it."""
        diff = self.target_um - self.setpoint_um
        step = self.run_step_um if running and diff > 0 else self.move_step_um
        if diff > step:
            diff = step
        elif diff < -step:
            diff = -step
        self.setpoint_um += diff
        err = self.setpoint_um - r.depth_um
        # a setpoint on its way is tracked (resting at the band's edge left the needles up to
        # 30 um behind it, and a rest on one noisy reading near it up to 12); one that has
        # arrived is reached to _SETTLE_UM, then held until the needles are _DEADBAND_UM off
        if not diff and (-_SETTLE_UM < err < _SETTLE_UM or (
                -_DEADBAND_UM < err < _DEADBAND_UM and not self.duty)):
            self._drive(0)
        else:
            self._drive(err * self.kp)
        return err
