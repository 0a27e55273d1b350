# Stand-in for the ESP32 port's `machine` module on the virtual board.
# Class, method and parameter names, kinds and defaults copy the ESP32 port's own argument
# tables (ports/esp32 at v1.26.0; tests/test_standin_api.py holds them as facts, each with
# its source); behind them is the register file the host's physics model reads and writes
# (simhw.py). Where it models the chip's behaviour, the comment names the port's source.
# It offers only what the firmware, mpremote and the tests use: on an ESP32 this module
# is in ROM, here every method costs the VM's heap (make bench shows the stand-ins' share).
# Long because: it stands for a whole C module of the port, one class per peripheral, and
# the ADC carries the IDF's calibration curve with its tables.
import select
import time

import micropython
import simhw

# the ESP32 port's values (the protocol's RESET_CAUSES is indexed by them); a reset the
# firmware asks for is posted to the host as the cause it boots with (simhw.H_REQUEST)
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
SOFT_RESET = 5

_irq_pins = []
_irq_seen = [0, 0]  # the IRQ sequence number and the VM's millisecond at the last look


def _regs():
    return simhw.regs


def _poll_irqs():
    # The chip never runs ahead of its world: the physics is a host thread, and a busy
    # host can starve it while the VM ticks on, which froze the tach count into a false
    # TACH_LOST (no pulses for 4 ticks, 20 ms). So a peripheral access waits while the
    # physics is more than 15 ms behind the chip's clock (simhw.py, which leaves the
    # wait out): a host thread's usual lag (the GIL's 5 ms switches) costs nothing. It
    # goes on only after 30 s (its physics thread gone): a VM that went on after 1 s of a
    # physics thread starved by a test's flood on the link found a second of the world's
    # time at once (a rate of 1100 Hz). Once per millisecond of the chip's
    # clock: a tick's dozen accesses share one look at the physics clock (each look is
    # system calls). Each look also tells the physics how far the chip has got (H_VM_MS)
    # and what its clock has left out (H_VM_LAG_MS): the world follows the chip's clock.
    # Nor does it run ahead of its UART: the link is a host thread behind the host's PTY,
    # which a busy host held for seconds (LINK_LOST of a host that kept sending), so it
    # waits the same way while the link is more than 50 ms behind (a pass every 20 ms).
    now = time.ticks_ms()
    if now != _irq_seen[1]:
        _irq_seen[1] = now
        r = simhw.regs
        n = 0
        while True:
            simhw.tell(now)
            link = r.get(simhw.H_LINK_MS)
            if n >= 3000 or not (
                    15 < (now - r.get(simhw.H_PHYS_MS)) & 0xFFFFFFFF < 0x80000000
                    or link and 50 < (now - link) & 0xFFFFFFFF < 0x80000000):
                break
            # 1 ms at first, then 10: a link the host holds for seconds must not cost a
            # thousand wake-ups a second in every VM (a busy host's kernel, which carries
            # the PTYs' bytes, fell further behind for them)
            simhw.wait(1 if n < 10 else 10)
            now = time.ticks_ms()
            n += 1
    # ESP32 Pin.irq callbacks are soft: scheduled, run between bytecodes. Here an edge is
    # noticed at every peripheral access (an ESP32's ISR schedules the callback at the
    # edge, before the firmware's next look at the level) and scheduled the same way.
    seq = simhw.regs.get(simhw.H_IRQ_SEQ)
    if seq == _irq_seen[0]:
        return
    _irq_seen[0] = seq
    for p in _irq_pins:
        p._check_edge()


# The RTOS tick. ESP32_GENERIC's FreeRTOS runs at CONFIG_FREERTOS_HZ 100 (the IDF's default;
# ports/esp32/boards/sdkconfig.base does not set it), and MicroPython's task waits in whole
# ticks. select.poll's poll()/ipoll() with a timeout (extmod/modselect.c v1.26.0,
# poll_set_poll_until_ready_or_timeout without MICROPY_PY_SELECT_POSIX_OPTIMISATIONS): look
# once; return if an object is ready or the milliseconds since the call (mp_hal_ticks_ms,
# whole ms) reach the timeout; else mp_event_wait_ms, which on the port is
# MICROPY_EVENT_POLL_HOOK (py/scheduler.c; ports/esp32/mpconfigport.h with MICROPY_PY_THREAD:
# mp_handle_pending, then ulTaskNotifyTake(pdFALSE, 1)): the task blocks until the next tick
# interrupt, or until a notification, which a Pin IRQ gives (machine_pin.c
# machine_pin_isr_handler: mp_hal_wake_main_task_from_isr) and the REPL's UART does not
# (uart.c uart_irq_handler only fills the ring). So asyncio's waits (extmod/asyncio/core.py:
# IOQueue.wait_io_event is poller.ipoll(dt)) end on the chip's 10 ms edges: sleep_ms(2) is a
# sleep to the next edge. time.sleep_ms is not (mphalport.c mp_hal_delay_ms: whole ticks
# while more than one remains, then taskYIELD and a busy wait, mp_hal_delay_us, for the rest):
# it keeps the VM's own exact sleep. The edges are at a fixed phase of the chip's clock.
_edge = [0, 0]  # a tick edge has been placed; the next edge (the chip's us)


def _tick_edge():
    """The chip's next RTOS tick edge (us), after now."""
    now = time.ticks_us()
    e = _edge
    if not e[0]:
        e[0] = 1
        e[1] = now
    e[1] = time.ticks_add(e[1], (time.ticks_diff(now, e[1]) // 10000 + 1) * 10000)
    return e[1]


class _Poll:
    # select.poll() as the port's: what the VM's own poll answers, its timeout kept as
    # above. Registered objects are the VM's (sys.stdin); only the waiting is the chip's.
    def __init__(self):
        self._p = select.poll()  # the VM's own module: sim_start.py replaces it after

    def register(self, *args):
        self._p.register(*args)

    def unregister(self, obj):
        self._p.unregister(obj)

    def modify(self, *args):
        self._p.modify(*args)

    def ipoll(self, timeout=-1, flags=0):
        self._wait(timeout)
        return self._p.ipoll(0, flags)

    def poll(self, timeout=-1):
        self._wait(timeout)
        return self._p.poll(0)

    def _wait(self, timeout):
        if not timeout:
            return  # one look: the ipoll(0) or poll(0) that follows
        start = time.ticks_ms()
        while True:
            for _ in self._p.ipoll(0):
                return
            if timeout >= 0 and time.ticks_diff(time.ticks_ms(), start) >= timeout:
                return
            # blocked until the next edge, or a Pin IRQ's notification (its handler then
            # runs, scheduled, before the next wait); looked at every 2 ms meanwhile
            edge = _tick_edge()
            seq = _regs().get(simhw.H_IRQ_SEQ)
            while True:
                left = time.ticks_diff(edge, time.ticks_us())
                if left <= 0:
                    break
                time.sleep_us(left if left < 2000 else 2000)
                if _regs().get(simhw.H_IRQ_SEQ) != seq:
                    _poll_irqs()
                    break


class Pin:
    IN = simhw.IN
    OUT = simhw.OUT
    OPEN_DRAIN = 7  # GPIO_MODE_INPUT_OUTPUT_OD (the 1-Wire bus: onewire.py)
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=None, pull=-1, *, value=None, drive=None, hold=None):
        id = getattr(id, "_id", id)  # a Pin is taken as its GPIO (machine_pin_find)
        # machine_pin.h (v1.26.0, CONFIG_IDF_TARGET_ESP32): no GPIO 24 nor 28-31
        if not 0 <= id < simhw.GPIOS or id == 24 or 28 <= id <= 31:
            raise ValueError("invalid pin")
        self._id = id  # irq() adds its state: few pins have one, and each attribute is heap
        self.init(mode, pull, value=value, drive=drive, hold=hold)

    def init(self, mode=None, pull=-1, *, value=None, drive=None, hold=None):
        # machine_pin.c (v1.26.0) machine_pin_obj_init_helper: mode None leaves the mode as
        # it is; GPIO 34-39 (GPIO_FIRST_NON_OUTPUT) take no output mode, and have no pull
        # resistors: the IDF refuses the pull there and the port ignores the refusal
        r = _regs()
        if value is not None:
            r.put(simhw.slot(self._id, simhw.G_OUT), 1 if value else 0)
        if mode is not None:
            if self._id >= 34 and mode & 2:  # GPIO_MODE_DEF_OUTPUT
                raise ValueError("pin can only be input")
            r.put(simhw.slot(self._id, simhw.G_MODE), mode)
        if pull != -1 and self._id < 34:
            r.put(simhw.slot(self._id, simhw.G_PULL), pull or 0)

    def value(self, x=None):
        _poll_irqs()
        r = _regs()
        if x is None:
            if r.get(simhw.slot(self._id, simhw.G_MODE)) == Pin.OUT:
                return r.get(simhw.slot(self._id, simhw.G_OUT))
            return r.get(simhw.slot(self._id, simhw.G_IN))
        simhw.drive(simhw.slot(self._id, simhw.G_OUT), simhw.slot(self._id, simhw.G_STAMP),
                    1 if x else 0)

    def irq(self, handler=None, trigger=3, wake=None):
        # machine_pin.c (v1.26.0) machine_pin_irq: handler, trigger, wake; always soft
        self._handler = handler
        self._trigger = 0  # the edges before this call are not its own
        self._last = 0
        self._check_edge()
        self._trigger = trigger
        if handler is not None and self not in _irq_pins:
            _irq_pins.append(self)
        elif handler is None and self in _irq_pins:
            _irq_pins.remove(self)

    def _check_edge(self):
        # The ESP32's GPIO latches an edge, not a level: the physics counts each rising edge
        # on the pin (G_COUNT), so an opening shorter than the gap between two looks still
        # fires. Falling edges follow from that count and the level (each rise is undone by
        # a fall). _last is count * 2 + level at the last look; no new names (the VM's
        # interned names are scarce, see docs/figures.md#heap).
        r = _regs()
        level = r.get(simhw.slot(self._id, simhw.G_IN))
        n = r.get(simhw.slot(self._id, simhw.G_COUNT))
        seq = self._last
        self._last = (n << 1) | level
        value = (n - (seq >> 1)) & 0xFFFFFFFF  # rising edges since the last look
        if (self._trigger & Pin.IRQ_RISING and value
                or self._trigger & Pin.IRQ_FALLING and value - level + (seq & 1) > 0):
            micropython.schedule(self._handler, self)


def _bits(freq):
    # The duty's resolution at a PWM frequency: machine_pwm.c (v1.26.0)
    # find_suitable_duty_resolution over the IDF's ledc_find_suitable_duty_resolution: the
    # timer's clock (APB 80 MHz; REF_TICK 1 MHz below EMPIRIC_FREQ, 10 Hz) over the
    # frequency, rounded, log2, at most 16 (UI_RES_16_BIT). 20 kHz: 11 bits.
    n = 1000000 if freq < 10 else 80000000
    n = (n + freq // 2) // freq
    value = 0
    while n > 1:
        n >>= 1
        value += 1
    return value if value < 16 else 16


class PWM:
    # machine_pwm.c (v1.26.0) mp_machine_pwm_init_helper: freq positional or keyword, the
    # duty keyword only; without a duty a new PWM starts at 50 % (PWM_DUTY), without a
    # frequency at the pin's running one or 5 kHz (PWM_FREQ)
    def __init__(self, dest, freq=-1, *, duty_u16=-1):
        self._id = getattr(dest, "_id", dest)  # a Pin or a GPIO number
        self._duty = 32768  # the duty asked for: a new frequency quantises it anew
        self.init(freq, duty_u16=duty_u16)

    def init(self, freq=-1, *, duty_u16=-1):
        if duty_u16 >= 0:
            self._duty = duty_u16  # checked as freq() applies it
        self.freq(freq if freq != -1 else _regs().get(simhw.slot(self._id, simhw.G_FREQ))
                  or 5000)

    def freq(self, value=None):
        n = simhw.slot(self._id, simhw.G_FREQ)
        if value is None:
            return _regs().get(n)
        if not 1 <= value <= 40000000:
            raise ValueError("frequency must be from 1Hz to 40MHz")
        _regs().put(n, value)
        self._bits = 16 - _bits(value)  # the duty's bits the timer drops
        self.duty_u16(self._duty)

    def duty_u16(self, value=None):
        # apply_duty/get_duty_u16: the channel keeps the top `_bits` bits of the duty and
        # reads back that value; full scale (65535, taken as 65536) reads 65535
        _poll_irqs()
        n = simhw.slot(self._id, simhw.G_DUTY)
        if value is None:
            return _regs().get(n)
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65536")
        self._duty = value
        if value < 65535:
            value = value >> self._bits << self._bits
        simhw.drive(n, simhw.slot(self._id, simhw.G_STAMP), value)

    def deinit(self):
        _regs().put(simhw.slot(self._id, simhw.G_DUTY), 0)
        _regs().put(simhw.slot(self._id, simhw.G_FREQ), 0)


# The ESP32's ADC as the port and the IDF give it (sources at the tags the port builds with):
# ports/esp32/machine_adc.c and adc.c at MicroPython v1.26.0 (unchanged to v1.28.0): ADC(pin,
# *, atten) takes only `atten` (default ATTN_11DB, ADC_ATTEN_MAX); read() is one raw 12-bit
# sample, read_u16() scales it, read_uv() is that one sample through the IDF's calibration,
# in whole millivolts. ESP-IDF components/esp_adc/esp32/adc_cali_line_fitting.c: on an ESP32
# with its reference (Vref) in eFuse, mV = coeff_a * raw / 65536 + coeff_b with coeff_a =
# vref * adc1_vref_atten_scale / 4096 and coeff_b = adc1_vref_atten_offset (142 mV at 11 dB:
# what a grounded input reads); at 11 dB, from raw 2880 (blended over 64 codes) a lookup table
# interpolated between Vref 1000 and 1200 mV takes over, so full scale (raw 4095) reads
# 3060-3209 mV by the unit's reference. The eFuse holds Vref in 7 mV steps from 1100
# (read_efuse_vref); the true one ranges 1000-1200 mV among chips (ESP-IDF ADC calibration
# guide). The chip is modelled as converting by its true Vref through that same curve, the
# calibration as using the eFuse's: inputs below the offset read the offset, above full scale
# full scale. A single sample is noisy: about 6 codes rms here (~5 mV; forum measurements of
# single samples show ~10 mV spreads and "9 bits + 3 bits noise"), the chip's worst.
# The unit's true Vref (mV) and its noise seed are simhw.H_ADC's two slots (VirtualBoard).
# Few new names, and locals the module has already: each name costs the VM an interned
# string, and the stand-ins' count decides where the firmware's cross into a 7 KB pool
# (docs/figures.md#heap). _adc: the unit's true Vref and its eFuse Vref (mV), the noise
# generator's state; adc1_vref_atten_scale then _offset (mV) by attenuation; lut_adc1_low
# and _high interleaved (at Vref 1000 and 1200 mV)
_adc = [0, 0, 0, (57431, 76236, 105481, 196602, 75, 78, 107, 142),
        (2240, 2667, 2297, 2706, 2352, 2745, 2405, 2780, 2457, 2813, 2512, 2844, 2564, 2873,
         2616, 2901, 2664, 2928, 2709, 2956, 2754, 2982, 2795, 3006, 2832, 3032, 2868, 3059,
         2903, 3084, 2937, 3110, 2969, 3135, 3000, 3160, 3030, 3184, 3060, 3209)]


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3

    def __init__(self, id, *, atten=-1):  # positional only on the port: no sample_ns
        self._id = getattr(id, "_id", id)
        if not (32 <= self._id <= 39 or self._id in (0, 2, 4, 12, 13, 14, 15, 25, 26, 27)):
            raise ValueError("invalid pin")  # madc_obj: ADC1 on 32-39, ADC2 on these
        self.atten(3 if atten == -1 else atten)

    def atten(self, atten):
        if not 0 <= atten <= 3:
            raise ValueError("invalid attenuation")
        self._atten = atten

    def read(self):
        """One raw 12-bit sample of the pin's voltage (G_ADC_UV, from the physics)."""
        _poll_irqs()
        seq = _adc
        if not seq[0]:
            r = _regs()
            seq[0] = r.get(simhw.H_ADC) or 1100
            n = (seq[0] - 1097) // 7  # to the nearest 7 mV step, within the eFuse's 5 bits
            seq[1] = 1100 + 7 * (n if -15 <= n <= 15 else 15 if n > 0 else -15)
            seq[2] = r.get(simhw.H_ADC + 1) | 1  # xorshift32 needs a state that is not 0
        n = self._atten
        value = _regs().get(simhw.slot(self._id, simhw.G_ADC_UV))
        # the inverse of the calibration at the chip's true Vref (seq[0]), in 1/16 codes
        raw = (value - seq[3][n + 4] * 1000) * 4294967296 // (seq[0] * seq[3][n] * 1000)
        if n == 3 and raw >= 46080:  # 2880 codes on: the curve the lookup table describes
            raw = 65536
            x = 0
            for n in range(20):
                p = x
                x = (seq[4][2 * n] * (1200 - seq[0]) + seq[4][2 * n + 1] * (seq[0] - 1000)) * 5
                if value < x:  # uV
                    raw = 46080 if n == 0 else 45056 + (n << 10) + ((value - p) << 10) // (x - p)
                    break
        level = seq[2]
        level ^= (level << 13) & 0xFFFFFFFF
        level ^= level >> 17
        level ^= (level << 5) & 0xFFFFFFFF
        seq[2] = level
        # four uniform bytes summed: near-normal, 6 codes rms (in 1/16 codes)
        raw += ((level & 255) + (level >> 8 & 255) + (level >> 16 & 255) + (level >> 24)
                - 510) * 166 >> 8
        raw = (raw + 8) >> 4
        return 0 if raw < 0 else 4095 if raw > 4095 else raw

    def read_u16(self):
        raw = self.read()
        return raw << 4 | raw >> 8

    def read_uv(self):
        raw = self.read()
        n = self._atten
        seq = _adc  # seq[1]: the eFuse's Vref, what the calibration uses
        value = (seq[1] * seq[3][n] // 4096 * raw + 32768) // 65536 + seq[3][n + 4]
        if n == 3 and raw >= 2880:  # cali_raw_to_voltage: calculate_voltage_lut, bilinear
            n = (raw - 2880) >> 6
            x = raw - 2880 - (n << 6)
            p = ((seq[4][2 * n] * (1200 - seq[1]) + seq[4][2 * n + 1] * (seq[1] - 1000))
                 * (64 - x) + (seq[4][2 * n + 2] * (1200 - seq[1]) + seq[4][2 * n + 3]
                               * (seq[1] - 1000)) * x + 6400) // 12800
            if raw <= 2944:  # blended with the line over the first 64 codes
                x = raw - 2880
                value = (value * 64 + p * x - value * x + 32) // 64
            else:
                value = p
        return value * 1000


# A chip's PCNT counts every edge as it comes; here the physics thread brings the count up
# to date. The firmware's no-pulse check looks over 2 ticks, which after a late tick (the
# next runs at once) span as little as one 10 ms period: a world 15 ms behind (the bound of
# any other access) could show no new pulse over that span from a turning motor, and did
# once, a false TACH_LOST on a loaded host. A count is read only from a world at most 5 ms
# behind: at the slowest rate (25 Hz, 48 pulses a turn) 6 pulses in the 5 ms left.
_COUNT_LAG_MS = 5


def _world_within(lag_ms):
    """Wait, off the chip's clock, until the physics is at most lag_ms behind it."""
    r = simhw.regs
    n = 0
    now = time.ticks_ms()
    while n < 3000 and lag_ms < (now - r.get(simhw.H_PHYS_MS)) & 0xFFFFFFFF < 0x80000000:
        simhw.tell(now)
        simhw.wait(1 if n < 10 else 10)
        now = time.ticks_ms()
        n += 1


class Counter:
    # modules/machine.py (v1.26.0) over esp32.PCNT: counts from its init; value() is
    # overflows * 32000 + count, an int of any size (past 2**30 a long int on the chip).
    # (The port keeps one object per unit; here each Counter() is its own.)
    RISING = 1
    FALLING = 2
    UP = 1  # esp32_pcnt.c: PCNT_COUNT_INC
    DOWN = 2  # PCNT_COUNT_DEC

    def __init__(self, unit_id, *args, **params):  # "params": a name the VM already holds
        self._id = unit_id
        self._pin = -1
        if args or params:
            self.init(*args, **params)

    def init(self, src, edge=1, direction=1, *, filter_ns=0):
        self._pin = getattr(src, "_id", src)
        self._trigger = edge
        self._handler = -1 if direction == 2 else 1  # the sign of each edge
        self._offset = 0
        self._last = 0
        self._last = self.value()  # edges on the pin since power-on, mod 2**32
        self._offset = 0

    def value(self, value=None):
        # The physics counts the pin's rising edges; the falling ones follow from the level
        if self._pin < 0:
            raise RuntimeError("not initialised")
        _poll_irqs()
        _world_within(_COUNT_LAG_MS)
        r = _regs()
        n = r.get(simhw.slot(self._pin, simhw.G_COUNT))
        current = n if self._trigger & Counter.RISING else 0
        if self._trigger & Counter.FALLING:
            current += n - r.get(simhw.slot(self._pin, simhw.G_IN))
        n = current
        current = self._offset + ((n - self._last) & 0xFFFFFFFF) * self._handler
        self._offset = current if value is None else value
        self._last = n
        return current


class WDT:
    # extmod/machine_wdt.c (v1.26.0): id and timeout, positional or keyword
    def __init__(self, id=0, timeout=5000):
        r = _regs()
        if r.get(simhw.H_WDT_TIMEOUT_MS) == 0:
            r.put(simhw.H_WDT_TIMEOUT_MS, timeout)
        self.feed()

    def feed(self):
        r = _regs()
        r.put(simhw.H_WDT_FEEDS, r.get(simhw.H_WDT_FEEDS) + 1)




def __getattr__(name):
    # What the firmware never calls (RTC, Signal) is in machine_extra.py, run at its
    # first use: on the VM it costs heap only then (on a chip it is all in ROM). The VM's
    # directory is no longer on its filesystem (the flash is "/"): read through its own VFS.
    if not _extra:
        import vfs

        with vfs.VfsPosix(__file__[: __file__.rfind("/")]).open("/machine_extra.py", "r") as f:
            _extra["__name__"] = "machine_extra"
            exec(f.read(), _extra)
    try:
        return _extra[name]
    except KeyError:
        raise AttributeError(name) from None


_extra = {}


def freq(value=None):
    # modmachine.c (v1.26.0) mp_machine_set_freq: whole MHz, one of these on an ESP32;
    # ESP32_GENERIC boots at 160 (sdkconfig.base; sdkconfig.240mhz is not in its build)
    r = _regs()
    if value is None:
        return (r.get(simhw.H_CPU_MHZ) or 160) * 1000000
    value //= 1000000
    if value not in (20, 40, 80, 160, 240):
        raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
    r.put(simhw.H_CPU_MHZ, value)


def unique_id():
    # the ESP32 port returns the chip's 6-byte base MAC; each virtual board has its own
    r = _regs()
    return (r.get(simhw.H_UID) | r.get(simhw.H_UID + 1) << 32).to_bytes(6, "big")


def reset_cause():
    return _regs().get(simhw.H_RESET_CAUSE)


def reset():
    # Never returns, as on a chip: the host kills this VM when it gets to the request,
    # which a busy host can put off for seconds (giving up let main.py end at the REPL)
    _regs().put(simhw.H_REQUEST, HARD_RESET)
    while True:
        try:
            time.sleep_ms(1000)
        except BaseException:  # a Ctrl-C meanwhile: a reset under way does not stop
            pass


def soft_reset():
    _regs().put(simhw.H_REQUEST, SOFT_RESET)
    raise SystemExit
