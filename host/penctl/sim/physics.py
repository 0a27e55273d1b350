"""The pen's hardware as the firmware sees it through its pins.

Constants come from the board definition's "physics" section (boards/virtual.json);
each name there carries its unit. The model is stepped in real time by a thread of
the VirtualBoard and talks to the VM only through the register file (vm/simhw.py):
it reads what the firmware drives (PWM duty, enable and direction lines) and writes
what the sensors would show (ADC voltages, tachometer edge count, switch levels).

- DC motor, quasi-static electrics: i = (V - Ke*w) / R (never negative: the driver is
  one-quadrant and freewheels), torque Kt*i (Kt = Ke in SI) against Coulomb and viscous
  friction plus the skin load while the needles stroke; J dw/dt = net torque.
  One stroke per revolution.
- Motor driver enable is the firmware's enable line AND the e-stop loop (the hardware
  reference wires the loop in series with the driver's enable) AND the heartbeat
  monostable; the depth H-bridge's enable is the heartbeat monostable. The monostable is
  retriggered by every edge on the heartbeat pin and runs out when the board's own time
  passes its window (timing.heartbeat_ms) without one; VirtualBoard judges that time
  (heartbeat.py), so host load never drops the drivers; a hung VM's window runs
  here, in simulated time (`beat_counting`).
- Depth actuator: velocity proportional to its PWM duty, signed by its direction pin,
  between mechanical hard stops; linear position sensor with an offset; home switch
  (active low) closed at the retracted end.
- Handpiece temperature: one thermal RC heated by winding loss.
- Supply: source voltage behind an internal resistance, so it sags with current.
- Analog inputs: the voltage on each ADC pin (below the 3.3 V rail); what the ESP32's ADC
  makes of it (its 142 mV floor, its curve and full scale, its noise) is the VM's stand-in's
  (vm/machine.py's ADC), as on a chip, so a sensor is modelled as its circuit: an open depth
  sensor's input pulled down to 0 V, a thermistor open to the rail or shorted to ground.
"""

import math

from .vm import simhw

TWO_PI = 2 * math.pi

# Injectable faults and the parameters each accepts (with defaults).
FAULTS = {
    "estop": {},
    "cartridge_removed": {},
    "stall": {},
    "tach_lost": {},
    "overcurrent": {"amps": None},
    "overtemp": {"celsius": None},
    "thermistor_open": {},
    "thermistor_short": {},
    "depth_jam": {},
    "depth_sensor_open": {},
    "current_sensor_open": {},
    "supply_low": {"volts": 9.0},
    "supply_high": {"volts": 15.0},
    "link_cut": {},
    # a driver transistor failed short: whenever the driver is enabled the supply reaches
    # the motor through `ohm` (0: a dead short, full voltage) whatever the PWM says
    "driver_short": {"ohm": 0.0},
    # the supply sags to `volts`, then after `after_s` the ESP32's own rail browns out and
    # the board resets (reported by the chip as a power-on reset); the supply then recovers
    "brownout": {"volts": 8.0, "after_s": 0.6},
    "hang": {},  # the firmware stops being scheduled (VM stopped) until the watchdog bites
    # not a board fault: the host keeps the VM from running (stopped, but judged as a VM
    # waiting for a CPU), to show that a busy host is invisible to the board
    "starve": {},
    "current_offset": {"mv": 80.0},  # the current-sense amplifier's output drifts by mv
    # the needle carriage knocked out by mm at once (a loose cartridge, a blow), the
    # actuator still working; with depth_jam too it stays there
    "depth_slip": {"mm": 1.0},
}


class Physics:
    def __init__(self, board, regs):
        self.cfg = board["physics"]
        self.pins = board["pins"]
        self.cal = board["calibration"]
        self.ppr = board["motor"]["tach_ppr"]
        self.depth_mv_per_mm = board["depth"]["sensor_mv_per_mm"]
        self.beat_window_s = board["timing"]["heartbeat_ms"] / 1000
        self.regs = regs  # memoryview of uint32 slots
        self.faults = {}
        self.t = 0.0  # simulated seconds since the board was made
        self.beat_left = 0.0  # seconds the monostable still holds the drivers enabled
        self.beat_counting = False  # the window runs in simulated time (a stopped VM)
        self.beat_drops = 0  # times the monostable ran out
        self.beat_lost_at = None  # self.t when it last ran out
        self.beat_max_gap = 0.0  # longest time between two edges the drivers outlasted
        self.beat_edge_t = 0.0  # self.t at the last edge
        self.power_on()

    def power_on(self):
        c = self.cfg
        self.w = 0.0  # rad/s
        self.revolutions = 0.0
        self.depth_strokes = 0.0  # mm x revolutions: their mean depth over a span
        self.pulses = 0.0
        self.current = 0.0
        self.depth_mm = c["depth_stop_max_mm"] * 0.3  # wherever the actuator was left
        self.temp_c = c["ambient_c"]
        self.supply = c["supply_v"]
        self._levels = {}
        self.write_inputs()

    # ---- what the firmware drives -------------------------------------------------
    def _out(self, name, field):
        return self.regs[simhw.slot(self.pins[name], field)]

    def motor_duty(self):
        if not self._out("motor_pwm", simhw.G_FREQ):
            return 0.0
        return self._out("motor_pwm", simhw.G_DUTY) / 65535

    def enable_line(self):
        return self._out("motor_enable", simhw.G_MODE) == simhw.OUT and self._out(
            "motor_enable", simhw.G_OUT) == 1

    def driver_enabled(self):
        return self.enable_line() and "estop" not in self.faults and self.beat_left > 0

    def retrigger(self):
        """An edge on the heartbeat pin: the monostable holds for its window again."""
        if self.beat_left > 0:  # simulated time since the previous edge
            self.beat_max_gap = max(self.beat_max_gap, self.t - self.beat_edge_t)
        self.beat_edge_t = self.t
        self.beat_left = self.beat_window_s

    def drop(self):
        """The monostable ran out: both drivers lose their enable."""
        self.beat_left = 0.0
        self.beat_drops += 1
        self.beat_lost_at = self.t

    def place_needles(self, mm):
        """The carriage put at mm from home (within the hard stops), as power-on finds it."""
        self.depth_mm = 0.0
        self.slip(mm)

    def slip(self, mm):
        c = self.cfg
        self.depth_mm = min(c["depth_stop_max_mm"], max(c["depth_stop_min_mm"], self.depth_mm + mm))

    def depth_velocity(self):
        if not self._out("depth_pwm", simhw.G_FREQ) or self.beat_left <= 0:
            return 0.0
        duty = self._out("depth_pwm", simhw.G_DUTY) / 65535
        direction = 1.0 if self._out("depth_dir", simhw.G_OUT) else -1.0
        return direction * duty * self.cfg["depth_speed_mm_per_s"]

    # ---- integration ----------------------------------------------------------------
    def step(self, dt):
        c = self.cfg
        self.supply = self._source_volts() - c["supply_internal_ohm"] * self.current
        ke, r = c["motor_ke_v_s_per_rad"], c["motor_resistance_ohm"]
        if "stall" in self.faults:
            self.w = 0.0
        self.current = self._motor_current(ke * self.w, r)
        if "stall" not in self.faults:
            self._spin(ke * self.current, dt)
        self.revolutions += self.w / TWO_PI * dt
        self.depth_strokes += self.depth_mm * self.w / TWO_PI * dt  # what the strokes went in
        if "tach_lost" not in self.faults:
            self.pulses += self.w / TWO_PI * self.ppr * dt
        if "depth_jam" not in self.faults:
            x = self.depth_mm + self.depth_velocity() * dt
            self.depth_mm = min(c["depth_stop_max_mm"], max(c["depth_stop_min_mm"], x))
        heat = self.current**2 * r
        loss = (self.temp_c - c["ambient_c"]) / c["thermal_resistance_c_per_w"]
        self.temp_c += (heat - loss) / c["thermal_capacity_j_per_c"] * dt
        self.t += dt
        if self.beat_counting and self.beat_left > 0:
            self.beat_left -= dt
            if self.beat_left <= 0:
                self.drop()

    def _motor_current(self, back_emf, r):
        if not self.driver_enabled():
            return 0.0
        driven = (self.motor_duty() * self.supply - back_emf) / r
        short = self.faults.get("driver_short")
        if short is not None:  # the short conducts beside the switching transistor
            driven = max(driven, (self.supply - back_emf) / (r + short["ohm"]))
        return max(0.0, driven)

    def _spin(self, torque, dt):
        c = self.cfg
        load = c["motor_friction_nm"] + c["motor_viscous_nm_s_per_rad"] * self.w
        if self.w > 0 and "cartridge_removed" not in self.faults:
            load += c["skin_load_nm"] * min(1.0, self.w / 50.0)
        if self.w <= 0 and torque <= c["motor_friction_nm"]:
            self.w = 0.0
            return
        self.w = max(0.0, self.w + (torque - load) / c["motor_inertia_kg_m2"] * dt)

    def _source_volts(self):
        for name in ("supply_low", "supply_high", "brownout"):
            if name in self.faults:
                return self.faults[name]["volts"]
        return self.cfg["supply_v"]

    # ---- what the sensors show ---------------------------------------------------------
    def sensed_current(self):
        extra = self.faults.get("overcurrent")
        if extra is not None:
            return self.current + (extra["amps"] or self.cfg["stall_overcurrent_a"])
        return self.current

    def sensed_temp(self):
        hot = self.faults.get("overtemp")
        if hot is not None:
            return hot["celsius"] or self.cfg["overtemp_c"]
        return self.temp_c

    def thermistor_mv(self):
        vref = self.cal["thermistor_supply_mv"]
        if "thermistor_open" in self.faults:
            return vref
        if "thermistor_short" in self.faults:
            return 0.0
        kelvin = self.sensed_temp() + 273.15
        ntc = self.cal["thermistor_r25"] * math.exp(
            self.cal["thermistor_beta"] * (1 / kelvin - 1 / 298.15))
        return vref * ntc / (ntc + self.cal["thermistor_pullup"])

    def write_inputs(self):
        p = self.pins
        adc_mv = {
            # an open current sensor: the input's pull-down holds it at 0 V (the ADC's floor)
            "current_adc": 0.0 if "current_sensor_open" in self.faults else
            self.cal["current_bias_mv"] + self.sensed_current() * self.cal["current_mv_per_a"]
            + self.faults.get("current_offset", {}).get("mv", 0.0),
            "temp_adc": self.thermistor_mv(),
            "supply_adc": self.supply * 1000 / self.cal["supply_divider"],
            # an open sensor: the input's pull-down holds it at 0 V (the ADC reads its floor)
            "depth_adc": 0.0 if "depth_sensor_open" in self.faults else
            self.cfg["depth_sensor_offset_mv"] + self.depth_mm * self.depth_mv_per_mm,
        }
        full = self.cfg["adc_full_scale_mv"]
        for name, mv in adc_mv.items():
            self.regs[simhw.slot(p[name], simhw.G_ADC_UV)] = int(min(full, max(0.0, mv)) * 1000)
        self.regs[simhw.slot(p["tach"], simhw.G_COUNT)] = int(self.pulses) & 0xFFFFFFFF
        # switches: closed contact to ground reads 0 (inputs have pull-ups)
        self._set_level("estop", 1 if "estop" in self.faults else 0)
        self._set_level("cartridge", 1 if "cartridge_removed" in self.faults else 0)
        at_home = self.depth_mm <= self.cfg["home_switch_mm"]
        self._set_level("home_switch", 0 if at_home else 1)

    def _set_level(self, name, level):
        # Each rising edge is counted on the pin (G_COUNT, before the level changes) as
        # the ESP32's GPIO interrupt latches it: the stand-in's Pin.irq fires on a changed
        # count, so an edge is seen even if the level is back before the VM looks.
        gpio = self.pins[name]
        n = simhw.slot(gpio, simhw.G_IN)
        if self.regs[n] != level or name not in self._levels:
            if level and name in self._levels:
                edges = simhw.slot(gpio, simhw.G_COUNT)
                self.regs[edges] = (self.regs[edges] + 1) & 0xFFFFFFFF
            self._levels[name] = level
            self.regs[n] = level
            self.regs[simhw.H_IRQ_SEQ] = (self.regs[simhw.H_IRQ_SEQ] + 1) & 0xFFFFFFFF

    def observe(self):
        return {
            "motor_duty": self.motor_duty(),
            "motor_enable_line": self.enable_line(),
            "motor_enabled": self.driver_enabled(),
            "depth_enabled": self.beat_left > 0,
            "motor_hz": self.w / TWO_PI,
            "revolutions": self.revolutions,
            "depth_strokes": self.depth_strokes,
            "depth_mm": self.depth_mm,
            "current_a": self.current,
            "temp_c": self.temp_c,
            "supply_v": self.supply,
            "estop_open": "estop" in self.faults,
        }
