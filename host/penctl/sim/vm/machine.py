# Stand-in for the ESP32 port's `machine` module on the virtual board.
# Class, method and parameter names copy the ESP32 port (checked against
# micropython-esp32-stubs by tests/test_standin_api.py); behind them is the
# register file the host's physics model reads and writes (simhw.py).
# It offers only what the firmware, mpremote and the tests use: on an ESP32 this module
# is in ROM, here every method costs the VM's heap (make bench shows the stand-ins' share).
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


class Pin:
    IN = simhw.IN
    OUT = simhw.OUT
    PULL_UP = 2
    PULL_DOWN = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        if not 0 <= id < simhw.GPIOS:
            raise ValueError("invalid pin")
        self._id = id  # irq() adds its state: few pins have one, and each attribute is heap
        self.init(mode, pull, value=value, drive=drive)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        r = _regs()
        if value is not None:
            r.put(simhw.slot(self._id, simhw.G_OUT), 1 if value else 0)
        if mode != -1 and mode is not None:  # None: as it is (ESP32 port)
            r.put(simhw.slot(self._id, simhw.G_MODE), mode)
        if pull != -1:
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

    def irq(self, handler=None, trigger=3, *, priority=1, wake=None, hard=False):
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


class PWM:
    def __init__(self, dest, *, freq=None, duty_u16=None):
        self._id = getattr(dest, "_id", dest)  # a Pin or a GPIO number
        self.init(freq=freq or 5000, duty_u16=duty_u16 or 0)

    def init(self, *, freq=None, duty_u16=None):
        if freq is not None:
            self.freq(freq)
        if duty_u16 is not None:
            self.duty_u16(duty_u16)

    def freq(self, value=None):
        n = simhw.slot(self._id, simhw.G_FREQ)
        if value is None:
            return _regs().get(n)
        if not 1 <= value <= 40000000:
            raise ValueError("frequency must be from 1Hz to 40MHz")
        _regs().put(n, value)

    def duty_u16(self, value=None):
        _poll_irqs()
        n = simhw.slot(self._id, simhw.G_DUTY)
        if value is None:
            return _regs().get(n)
        if not 0 <= value <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        simhw.drive(n, simhw.slot(self._id, simhw.G_STAMP), value)

    def deinit(self):
        _regs().put(simhw.slot(self._id, simhw.G_DUTY), 0)
        _regs().put(simhw.slot(self._id, simhw.G_FREQ), 0)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    # full-scale input of the ESP32 ADC per attenuation, microvolts
    _FULL_UV = (950000, 1250000, 1750000, 3100000)

    def __init__(self, id, *, atten=None):
        self._id = getattr(id, "_id", id)
        if not 32 <= self._id <= 39:
            raise ValueError("invalid pin for ADC1")
        self._atten = ADC.ATTN_0DB if atten is None else atten

    def read_uv(self):
        _poll_irqs()
        uv = _regs().get(simhw.slot(self._id, simhw.G_ADC_UV))
        full = ADC._FULL_UV[self._atten]
        return uv if uv < full else full


class Counter:
    RISING = 1
    FALLING = 2

    def __init__(self, id, *args, **params):  # "params": a name the VM already holds
        self._id = id
        self._pin = -1
        self._offset = 0
        if args or params:
            self.init(*args, **params)

    def init(self, src, *args, edge=1, direction=1, filter_ns=0):
        self._pin = getattr(src, "_id", src)
        self._offset = 0
        self._offset = self.value()  # counts from here on

    def value(self, value=None):
        _poll_irqs()
        raw = _regs().get(simhw.slot(self._pin, simhw.G_COUNT))
        current = (raw - self._offset) & 0xFFFFFFFF
        if value is not None:
            self._offset = (raw - value) & 0xFFFFFFFF
        return current


class WDT:
    def __init__(self, *, id=0, timeout=5000):
        r = _regs()
        if r.get(simhw.H_WDT_TIMEOUT_MS) == 0:
            r.put(simhw.H_WDT_TIMEOUT_MS, timeout)
        self.feed()

    def feed(self):
        r = _regs()
        r.put(simhw.H_WDT_FEEDS, r.get(simhw.H_WDT_FEEDS) + 1)


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
