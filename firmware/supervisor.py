# Safety supervisor: pure logic on one tick's Readings, no hardware access.
# check() runs every control tick and returns the first fault whose condition holds
# (after its debounce), or -1. The caller stops the motor in the same tick.
import protocol as P
from micropython import const

_NONE = const(-1)


def _ticks(ms, tick_ms):
    return max(1, (ms + tick_ms - 1) // tick_ms)


class Supervisor:
    def __init__(self, board):
        lim = board["limits"]
        tick = board["timing"]["tick_ms"]
        self.tick_ms = tick
        self.overcurrent_ma = lim["overcurrent_ma"]
        self.overcurrent_ticks = _ticks(lim["overcurrent_ms"], tick)
        self.stall_u16 = int(lim["stall_drive"] * 65535)
        self.stall_ma = lim["stall_ma"]
        self.no_pulse_ticks = _ticks(lim["no_pulse_ms"], tick)
        self.speed_pct = lim["speed_error_pct"]
        self.speed_ticks = _ticks(lim["speed_error_ms"], tick)
        self.following_um = int(board["depth"]["following_error_mm"] * 1000)
        self.following_ticks = _ticks(lim["depth_following_ms"], tick)
        d = board["depth"]
        self.depth_tol_um = int(d["tolerance_mm"] * 1000)
        self.deep_ticks = _ticks(lim["overdepth_ms"], tick)
        self.sensor_mv_min = d["sensor_valid_mv_min"]
        self.sensor_mv_max = d["sensor_valid_mv_max"]
        self.warn_dc = lim["temp_warn_c"] * 10
        self.trip_dc = lim["temp_trip_c"] * 10
        self.therm_mv_min = lim["thermistor_mv_min"]
        self.therm_mv_max = lim["thermistor_mv_max"]
        self.supply_low = lim["supply_low_mv"]
        self.supply_high = lim["supply_high_mv"]
        self.supply_ticks = _ticks(lim["supply_ms"], tick)
        # the current sensor idles at its bias (300 mV): a dead or open one reads the
        # ADC's floor (~142 mV), blind to overcurrent and stall
        self.current_mv_min = lim["current_sensor_mv_min"]
        self.current_ticks = _ticks(lim["current_sensor_ms"], tick)
        self.detail = ""
        self.warnings = 0
        self.reset()

    def reset(self):
        self.n_over = 0
        self.n_noturn = 0
        self.n_speed = 0
        self.n_follow = 0
        self.n_deep = 0
        self.n_low = 0
        self.n_high = 0
        self.n_sense = 0

    # The checks run every control tick. Each method keeps its locals and stack within 11
    # words: a call beyond that gets its frame from the heap and frees it again
    # (py/objfun.c, VM_MAX_STATE_ON_STACK), which on a fragmented heap cost more than the
    # checks themselves (make bench). So a trip sets self.detail and returns its code, and
    # the methods reuse a local or two.
    def check(self, r, running, link_timeout_ms, run_limit_ms, faults=0):
        """r: Readings plus the controller's figures (setpoint_chz, following_um,
        link_age_ms, run_ms, depth_active, ramping, host_run, cap_um); faults: the mask
        already latched, which never hides a new one. Returns a fault index or -1."""
        faults = self._always(r, faults)  # what it found, from here
        if faults == _NONE and running:
            return self._running(r, link_timeout_ms, run_limit_ms)
        return faults

    def _always(self, r, f):
        # HOT goes only 1 C below its level: one thermistor sample scatters ~0.25 C, and a
        # temperature at the level raised and cleared it every few ticks (a WARN each time)
        self.warnings = (1 << P.W_HOT) if r.temp_dc >= self.warn_dc or (
            self.warnings and r.temp_dc >= self.warn_dc - 10) else 0
        # Each check passes over a fault already latched (its cause may well persist),
        # so that a latched one never hides a new one behind it: a persisting OVERDEPTH
        # once kept DEPTH_FOLLOWING from stopping an actuator driven into a jam.
        if r.estop_open and not f & (1 << P.F_ESTOP):
            self.detail = "estop input open"
            return P.F_ESTOP
        n = r.temp_mv
        if (n < self.therm_mv_min or n > self.therm_mv_max) and not f & (1 << P.F_THERMISTOR):
            self.detail = "thermistor %d mV outside %d..%d mV" % (
                n, self.therm_mv_min, self.therm_mv_max)
            return P.F_THERMISTOR
        n = r.temp_dc
        if n >= self.trip_dc and not f & (1 << P.F_OVERTEMP):
            self.detail = "temperature %d.%d C at or above %d C" % (
                n // 10, n % 10, self.trip_dc // 10)
            return P.F_OVERTEMP
        n = r.depth_mv
        if (n < self.sensor_mv_min or n > self.sensor_mv_max) \
                and not f & (1 << P.F_DEPTH_SENSOR):
            self.detail = "depth sensor %d mV outside %d..%d mV" % (
                n, self.sensor_mv_min, self.sensor_mv_max)
            return P.F_DEPTH_SENSOR
        n = self.n_sense + 1 if r.current_mv < self.current_mv_min else 0
        self.n_sense = n
        if n >= self.current_ticks and not f & (1 << P.F_CURRENT_SENSOR):
            self.detail = "current sensor %d mV below %d mV" % (r.current_mv, self.current_mv_min)
            return P.F_CURRENT_SENSOR
        # in every state: the needles beyond the cap, whatever put them there
        n = self.n_deep + 1 if r.depth_um > r.cap_um + self.depth_tol_um else 0
        self.n_deep = n
        if n >= self.deep_ticks and not f & (1 << P.F_OVERDEPTH):
            n *= self.tick_ms
            self.detail = "depth %d um measured beyond the cap of %d um for %d ms" % (
                r.depth_um, r.cap_um, n)
            return P.F_OVERDEPTH
        n = self.n_low + 1 if r.supply_mv < self.supply_low else 0
        self.n_low = n
        if n >= self.supply_ticks and not f & (1 << P.F_SUPPLY_LOW):
            self.detail = "supply %d mV below %d mV" % (r.supply_mv, self.supply_low)
            return P.F_SUPPLY_LOW
        n = self.n_high + 1 if r.supply_mv > self.supply_high else 0
        self.n_high = n
        if n >= self.supply_ticks and not f & (1 << P.F_SUPPLY_HIGH):
            self.detail = "supply %d mV above %d mV" % (r.supply_mv, self.supply_high)
            return P.F_SUPPLY_HIGH
        n = self.n_over + 1 if r.current_ma >= self.overcurrent_ma else 0
        self.n_over = n
        if n >= self.overcurrent_ticks:
            # a locked rotor draws overcurrent too: no tach pulses says which it is
            if r.recent_pulses == 0 and r.drive_u16 > 0:
                if not f & (1 << P.F_STALL):
                    self.detail = "current %d mA with no tach pulses" % r.current_ma
                    return P.F_STALL
            elif not f & (1 << P.F_OVERCURRENT):
                n *= self.tick_ms
                self.detail = "current %d mA at or above %d mA for %d ms" % (
                    r.current_ma, self.overcurrent_ma, n)
                return P.F_OVERCURRENT
        n = 0
        if r.depth_active:
            if r.following_um > self.following_um or r.following_um < -self.following_um:
                n = self.n_follow + 1
        self.n_follow = n
        if n >= self.following_ticks and not f & (1 << P.F_DEPTH_FOLLOWING):
            self.detail = "depth %d um off its setpoint for %d ms" % (
                r.following_um, n * self.tick_ms)
            return P.F_DEPTH_FOLLOWING
        return _NONE

    def _running(self, r, link_timeout_ms, run_limit_ms):
        if not r.cartridge:
            self.detail = "cartridge switch open while running"
            return P.F_CARTRIDGE
        n = 0 if r.recent_pulses > 0 or r.drive_u16 < self.stall_u16 else self.n_noturn + 1
        self.n_noturn = n
        if n >= self.no_pulse_ticks:
            if r.current_ma >= self.stall_ma:
                self.detail = "drive %d/65535 and %d mA with no tach pulses" % (
                    r.drive_u16, r.current_ma)
                return P.F_STALL
            self.detail = "drive %d/65535 and %d mA: motor turns, no pulses" % (
                r.drive_u16, r.current_ma)
            return P.F_TACH_LOST
        n = r.setpoint_chz * self.speed_pct // 100  # the speed error's limit
        if (r.rate_chz > r.setpoint_chz + n or r.rate_chz < r.setpoint_chz - n) \
                and not r.ramping:
            n = self.n_speed + 1
        else:
            n = 0
        self.n_speed = n
        if n >= self.speed_ticks:
            n *= self.tick_ms
            self.detail = "rate %d cHz vs setpoint %d cHz for %d ms" % (
                r.rate_chz, r.setpoint_chz, n)
            return P.F_SPEED
        if r.host_run and r.link_age_ms > link_timeout_ms:
            self.detail = "no valid frame for %d ms (timeout %d ms)" % (
                r.link_age_ms, link_timeout_ms)
            return P.F_LINK_LOST
        if r.run_ms > run_limit_ms:
            self.detail = "ran %d s, limit %d s" % (r.run_ms // 1000, run_limit_ms // 1000)
            return P.F_RUN_LIMIT
        return _NONE

    def cause_present(self, code, r):
        """Why a fault cannot be cleared yet ("" when it can). Faults whose cause cannot
        be seen with the motor at rest (stall, tach, speed, link, run limit) clear; the
        next start checks them again."""
        if code == P.F_ESTOP and r.estop_open:
            return "e-stop loop still open"
        if code == P.F_CARTRIDGE and not r.cartridge:
            return "no cartridge fitted"
        if code == P.F_OVERCURRENT and r.current_ma >= self.overcurrent_ma:
            return "current %d mA with the motor off" % r.current_ma
        if code == P.F_OVERTEMP and r.temp_dc >= self.warn_dc:
            return "temperature %d C not below %d C" % (r.temp_dc // 10, self.warn_dc // 10)
        if code == P.F_THERMISTOR and not self.therm_mv_min <= r.temp_mv <= self.therm_mv_max:
            return "thermistor still reads %d mV" % r.temp_mv
        if code == P.F_DEPTH_SENSOR and not self.sensor_mv_min <= r.depth_mv <= self.sensor_mv_max:
            return "depth sensor still reads %d mV" % r.depth_mv
        if code == P.F_CURRENT_SENSOR and r.current_mv < self.current_mv_min:
            return "current sensor still reads %d mV" % r.current_mv
        if code == P.F_OVERDEPTH and r.depth_um > r.cap_um + self.depth_tol_um:
            return "needles still at %d um, beyond the cap of %d um" % (r.depth_um, r.cap_um)
        if code == P.F_SUPPLY_LOW and r.supply_mv < self.supply_low:
            return "supply still %d mV" % r.supply_mv
        if code == P.F_SUPPLY_HIGH and r.supply_mv > self.supply_high:
            return "supply still %d mV" % r.supply_mv
        return ""
