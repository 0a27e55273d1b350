# Analog and switch inputs: motor current, handpiece thermistor, supply voltage,
# e-stop loop and cartridge switch. Converts raw readings to integer units into a
# Readings object; allocates nothing per read.
import math
from array import array

from machine import ADC, Pin
from micropython import const

_TABLE_STEP_MV = const(100)


class Readings:
    """One tick's view of the hardware, in integer units (mA, mV, um, cHz, 0.1 C)."""

    def __init__(self):
        self.now_ms = 0
        self.current_ma = 0
        self.current_mv = 0  # the current sensor's output, bias included (its validity)
        self.temp_mv = 0
        self.temp_dc = 0
        self.supply_mv = 0
        self.estop_open = 0
        self.cartridge = 0
        self.depth_mv = 0
        self.depth_um = 0
        self.home_switch = 0
        self.rate_chz = 0
        self.recent_pulses = 0
        self.drive_u16 = 0
        self.pulses_total = 0
        # the controller's own figures, judged by the supervisor alongside the sensors
        self.setpoint_chz = 0
        self.following_um = 0
        self.link_age_ms = 0
        self.run_ms = 0
        self.depth_active = 0
        self.cap_um = 0  # the active depth cap (the lower of the board's and the profile's)
        self.ramping = 0
        self.host_run = 0
        # the rest of the status fields (codes.FIELDS), set by the controller as it reports
        self.state = 0
        self.faults = 0
        self.warnings = 0
        self.setpoint_um = 0
        self.duty_pm = 0
        self.strokes = 0
        self.up_ms = 0


def _thermistor_table(cal):
    # deci-degrees C at every _TABLE_STEP_MV of divider voltage, built once with
    # floats at start-up so the tick interpolates in integers.
    vref = cal["thermistor_supply_mv"]
    out = array("i")  # 4 bytes an entry, where a list holds 8 on the VM
    for mv in range(0, vref + _TABLE_STEP_MV, _TABLE_STEP_MV):
        mv = min(max(mv, 1), vref - 1)
        r = cal["thermistor_pullup"] * mv / (vref - mv)
        inv_t = 1 / 298.15 + math.log(r / cal["thermistor_r25"]) / cal["thermistor_beta"]
        out.append(int((1 / inv_t - 273.15) * 10))
    return out


class Sensors:
    def __init__(self, board):
        pins = board["pins"]
        cal = board["calibration"]
        atten = ADC.ATTN_11DB
        self.current = ADC(Pin(pins["current_adc"]), atten=atten)
        self.temp = ADC(Pin(pins["temp_adc"]), atten=atten)
        self.supply = ADC(Pin(pins["supply_adc"]), atten=atten)
        self.estop = Pin(pins["estop"], Pin.IN, Pin.PULL_UP)
        self.cartridge = Pin(pins["cartridge"], Pin.IN, Pin.PULL_UP)
        self.ma_per_mv_1024 = int(1024 * 1000 / cal["current_mv_per_a"])
        # the amplifier's output at zero current, above the ADC's floor (a grounded input
        # reads ~142 mV on an ESP32): the reading stays linear down to 0 A
        self.current_bias_mv = cal["current_bias_mv"]
        self.divider_x1024 = int(1024 * cal["supply_divider"])
        lim = board["limits"]  # the trip levels a calibration must never hide (read())
        self.overcurrent_ma = lim["overcurrent_ma"]
        self.supply_low = lim["supply_low_mv"]
        self.supply_high = lim["supply_high_mv"]
        self.calibrate(0, 1000)
        self.table = _thermistor_table(cal)

    def on_estop_open(self, handler):
        """Call handler(pin) when the e-stop loop opens (a soft IRQ on the ESP32:
        scheduled between bytecodes, a second layer behind the hardware cut)."""
        self.estop.irq(handler=handler, trigger=Pin.IRQ_RISING)

    def calibrate(self, current_zero_mv, supply_gain_permille):
        """This unit's trims (saved settings, bounded by P.CALIBRATION)."""
        self.current_zero_mv = current_zero_mv
        self.supply_x1024 = self.divider_x1024 * supply_gain_permille // 1000

    def read(self, r):
        # A calibration trims the readings, but no calibration within its bounds may hide a
        # trip (current_zero at +150 mV read a true 2.70 A as 2450 mA against the 2500 mA
        # limit): where the untrimmed reading is past a trip level and further out than the
        # trimmed one, it is the reading. So the supervisor trips whenever either would,
        # an uncalibrated unit trips exactly as before, and inside the limits the trimmed
        # value is what shows.
        k = self.ma_per_mv_1024
        mv = self.current.read_uv() // 1000
        r.current_mv = mv
        mv -= self.current_bias_mv
        raw = (mv * k) >> 10 if mv > 0 else 0
        mv -= self.current_zero_mv
        ma = (mv * k) >> 10 if mv > 0 else 0
        r.current_ma = raw if raw >= self.overcurrent_ma and raw > ma else ma
        mv = self.temp.read_uv() // 1000
        r.temp_mv = mv
        # celsius_x10() inline, in the locals above (k the table, raw its index): a call
        # whose locals and stack exceed 11 words gets its frame from the heap (py/objfun.c,
        # VM_MAX_STATE_ON_STACK), and a call less is bytecode less every tick
        k = self.table
        raw = mv // _TABLE_STEP_MV
        r.temp_dc = k[-1] if raw >= len(k) - 1 else k[raw] + (k[raw + 1] - k[raw]) * (
            mv - raw * _TABLE_STEP_MV) // _TABLE_STEP_MV
        mv = self.supply.read_uv() // 1000
        raw = (mv * self.divider_x1024) >> 10
        mv = (mv * self.supply_x1024) >> 10
        if (raw < self.supply_low and raw < mv) or (raw > self.supply_high and raw > mv):
            mv = raw
        r.supply_mv = mv
        r.estop_open = self.estop.value()  # loop closed pulls the input low
        r.cartridge = 1 - self.cartridge.value()  # cartridge present closes to ground

    def celsius_x10(self, mv):
        t = self.table
        i = mv // _TABLE_STEP_MV
        if i >= len(t) - 1:
            return t[-1]
        frac = mv - i * _TABLE_STEP_MV
        return t[i] + (t[i + 1] - t[i]) * frac // _TABLE_STEP_MV
