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
        self.detail = ""
        self.warnings = 0
        self.faults = 0  # latched, as the controller passed them to check()
        self.reset()

    def reset(self):
        self.n_over = 0
        self.n_noturn = 0
        self.n_speed = 0
        self.n_follow = 0
        self.n_deep = 0
        self.n_low = 0
        self.n_high = 0

    def check(self, r, running, link_timeout_ms, run_limit_ms, faults=0):
        """r: Readings plus the controller's figures (setpoint_chz, following_um,
        link_age_ms, run_ms, depth_active, ramping, host_run, cap_um); faults: the mask
        already latched, which never hides a new one. Returns a fault index or -1."""
        # HOT goes only 1 C below its level: one thermistor sample scatters ~0.25 C, and a
        # temperature at the level raised and cleared it every few ticks (a WARN each time)
        self.warnings = (1 << P.W_HOT) if r.temp_dc >= self.warn_dc - (
            10 if self.warnings & (1 << P.W_HOT) else 0) else 0
        self.faults = faults
        f = self._always(r)
        if f == _NONE and running:
            f = self._running(r, link_timeout_ms, run_limit_ms)
        return f

    def _always(self, r):
        # Each check passes over a fault already latched (its cause may well persist),
        # so that a latched one never hides a new one behind it: a persisting OVERDEPTH
        # once kept DEPTH_FOLLOWING from stopping an actuator driven into a jam.
        f = self.faults
        if r.estop_open and not f & (1 << P.F_ESTOP):
            return self._trip(P.F_ESTOP, "estop input open")
        if (r.temp_mv < self.therm_mv_min or r.temp_mv > self.therm_mv_max) \
                and not f & (1 << P.F_THERMISTOR):
            return self._trip(P.F_THERMISTOR, "thermistor %d mV outside %d..%d mV" % (
                r.temp_mv, self.therm_mv_min, self.therm_mv_max))
        if r.temp_dc >= self.trip_dc and not f & (1 << P.F_OVERTEMP):
            return self._trip(P.F_OVERTEMP, "temperature %d.%d C at or above %d C" % (
                r.temp_dc // 10, r.temp_dc % 10, self.trip_dc // 10))
        if (r.depth_mv < self.sensor_mv_min or r.depth_mv > self.sensor_mv_max) \
                and not f & (1 << P.F_DEPTH_SENSOR):
            return self._trip(P.F_DEPTH_SENSOR, "depth sensor %d mV outside %d..%d mV" % (
                r.depth_mv, self.sensor_mv_min, self.sensor_mv_max))
        # in every state: the needles beyond the cap, whatever put them there
        self.n_deep = self.n_deep + 1 if r.depth_um > r.cap_um + self.depth_tol_um else 0
        if self.n_deep >= self.deep_ticks and not f & (1 << P.F_OVERDEPTH):
            return self._trip(P.F_OVERDEPTH, "depth %d um measured beyond the cap of %d um "
                              "for %d ms" % (r.depth_um, r.cap_um, self.n_deep * self.tick_ms))
        self.n_low = self.n_low + 1 if r.supply_mv < self.supply_low else 0
        if self.n_low >= self.supply_ticks and not f & (1 << P.F_SUPPLY_LOW):
            return self._trip(P.F_SUPPLY_LOW, "supply %d mV below %d mV" % (
                r.supply_mv, self.supply_low))
        self.n_high = self.n_high + 1 if r.supply_mv > self.supply_high else 0
        if self.n_high >= self.supply_ticks and not f & (1 << P.F_SUPPLY_HIGH):
            return self._trip(P.F_SUPPLY_HIGH, "supply %d mV above %d mV" % (
                r.supply_mv, self.supply_high))
        self.n_over = self.n_over + 1 if r.current_ma >= self.overcurrent_ma else 0
        if self.n_over >= self.overcurrent_ticks:
            # a locked rotor draws overcurrent too: no tach pulses says which it is
            if r.recent_pulses == 0 and r.drive_u16 > 0:
                if not f & (1 << P.F_STALL):
                    return self._trip(P.F_STALL, "current %d mA with no tach pulses"
                                      % r.current_ma)
            elif not f & (1 << P.F_OVERCURRENT):
                return self._trip(P.F_OVERCURRENT, "current %d mA at or above %d mA for %d ms"
                                  % (r.current_ma, self.overcurrent_ma,
                                     self.n_over * self.tick_ms))
        if r.depth_active:
            self.n_follow = self.n_follow + 1 if abs(r.following_um) > self.following_um else 0
            if self.n_follow >= self.following_ticks and not f & (1 << P.F_DEPTH_FOLLOWING):
                return self._trip(P.F_DEPTH_FOLLOWING, "depth %d um off its setpoint for %d ms" % (
                    r.following_um, self.n_follow * self.tick_ms))
        else:
            self.n_follow = 0
        return _NONE

    def _running(self, r, link_timeout_ms, run_limit_ms):
        if not r.cartridge:
            return self._trip(P.F_CARTRIDGE, "cartridge switch open while running")
        turning = r.recent_pulses > 0
        self.n_noturn = 0 if turning or r.drive_u16 < self.stall_u16 else self.n_noturn + 1
        if self.n_noturn >= self.no_pulse_ticks:
            if r.current_ma >= self.stall_ma:
                return self._trip(P.F_STALL, "drive %d/65535 and %d mA with no tach pulses" % (
                    r.drive_u16, r.current_ma))
            return self._trip(P.F_TACH_LOST, "drive %d/65535 and %d mA: motor turns, no pulses" % (
                r.drive_u16, r.current_ma))
        err = r.rate_chz - r.setpoint_chz
        limit = r.setpoint_chz * self.speed_pct // 100
        off = err > limit or err < -limit
        self.n_speed = self.n_speed + 1 if off and not r.ramping else 0
        if self.n_speed >= self.speed_ticks:
            return self._trip(P.F_SPEED, "rate %d cHz vs setpoint %d cHz for %d ms" % (
                r.rate_chz, r.setpoint_chz, self.n_speed * self.tick_ms))
        if r.host_run and r.link_age_ms > link_timeout_ms:
            return self._trip(P.F_LINK_LOST, "no valid frame for %d ms (timeout %d ms)" % (
                r.link_age_ms, link_timeout_ms))
        if r.run_ms > run_limit_ms:
            return self._trip(P.F_RUN_LIMIT, "ran %d s, limit %d s" % (
                r.run_ms // 1000, run_limit_ms // 1000))
        return _NONE

    def _trip(self, code, detail):
        self.detail = detail
        return code

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
        if code == P.F_OVERDEPTH and r.depth_um > r.cap_um + self.depth_tol_um:
            return "needles still at %d um, beyond the cap of %d um" % (r.depth_um, r.cap_um)
        if code == P.F_SUPPLY_LOW and r.supply_mv < self.supply_low:
            return "supply still %d mV" % r.supply_mv
        if code == P.F_SUPPLY_HIGH and r.supply_mv > self.supply_high:
            return "supply still %d mV" % r.supply_mv
        return ""
