"""The rest of the ESP32 port that the firmware and the tools touch, as the port has it
(ports/esp32 at v1.26.0; the sources are named in host/penctl/sim/vm/machine.py and
littlefs.py): pins, Signal, PWM's duty resolution, the pulse counter's unbounded count,
the RTC (through the real mpremote), freq, unique_id, os.uname and sys.platform, and a
filesystem of the partition's size. Each runs in service mode, at the board's REPL."""

import datetime
import subprocess
import sys

import pytest
from conftest import board_sleep, mpremote, service_repl, wait_until
from penctl.sim import VirtualBoard
from penctl.sim.vm import simhw

pytestmark = pytest.mark.injects  # reads the virtual board's registers and physics


@pytest.fixture(scope="module")
def svc():
    """One board for the module, in service mode: (board, its raw REPL)."""
    with VirtualBoard(needles_mm=0.0) as board:
        repl = service_repl(board)
        try:
            repl.exec("import machine, os, sys")
            yield board, repl
        finally:
            repl.close()
        board.check()


def run(repl, code):
    return repl.exec(code).strip()


def raises(repl, code):
    """The exception `code` raises on the board, as 'Type: message' ('' if none)."""
    return run(repl, "try:\n %s\n print('')\nexcept Exception as e:\n"
                     " print(type(e).__name__ + ': ' + str(e))" % code)


def test_gpios_the_esp32_lacks_and_its_input_only_pins(svc):
    board, repl = svc
    for gpio in (24, 28, 29, 30, 31, 40):
        assert raises(repl, "machine.Pin(%d)" % gpio) == "ValueError: invalid pin"
    for gpio in (20, 21, 33, 39):  # machine_pin.h enables GPIO 20 on the ESP32
        assert raises(repl, "machine.Pin(%d)" % gpio) == ""
    assert raises(repl, "machine.Pin(34, machine.Pin.OUT)") == \
        "ValueError: pin can only be input"
    run(repl, "machine.Pin(35, machine.Pin.IN, machine.Pin.PULL_UP)")
    run(repl, "machine.Pin(32, machine.Pin.IN, machine.Pin.PULL_UP)")
    assert board.regs[simhw.slot(35, simhw.G_PULL)] == 0  # no pull resistors on 34-39
    assert board.regs[simhw.slot(32, simhw.G_PULL)] == 2


def test_pin_irq_takes_the_ports_arguments(svc):
    _, repl = svc
    run(repl, "p = machine.Pin(21, machine.Pin.IN)\np.irq(print, machine.Pin.IRQ_RISING, None)")
    run(repl, "p.irq(handler=None, trigger=3, wake=None)")
    for extra in ("hard=True", "priority=1"):
        assert raises(repl, "p.irq(print, %s)" % extra).startswith("TypeError")


def test_signal_inverts_a_pin(svc):
    board, repl = svc
    run(repl, "s = machine.Signal(machine.Pin(26, machine.Pin.OUT), invert=True)\ns.on()")
    assert board.regs[simhw.slot(26, simhw.G_OUT)] == 0
    assert run(repl, "print(s.value())") == "1"
    run(repl, "s.off()")
    assert board.regs[simhw.slot(26, simhw.G_OUT)] == 1


def test_pwm_starts_at_half_duty_and_has_11_bits_at_20_khz(svc):
    board, repl = svc
    duty = simhw.slot(33, simhw.G_DUTY)
    assert run(repl, "w = machine.PWM(machine.Pin(33), freq=20000)\nprint(w.duty_u16())") == \
        "32768"
    assert run(repl, "w.duty_u16(1000)\nprint(w.duty_u16())") == "992"  # steps of 32
    assert board.regs[duty] == 992  # what the driver sees
    assert run(repl, "w.duty_u16(65535)\nprint(w.duty_u16())") == "65535"
    # 1 kHz: 16 bits, and the duty asked for (not the one the 20 kHz timer kept)
    assert run(repl, "w.duty_u16(1000)\nw.freq(1000)\nprint(w.duty_u16())") == "1000"
    assert run(repl, "w.duty_u16(0)\nprint(w.freq(), w.duty_u16())") == "1000 0"  # live, low
    for freq in (0, 40000001):
        assert raises(repl, "machine.PWM(machine.Pin(33), %d)" % freq) == \
            "ValueError: frequency must be from 1Hz to 40MHz"
    assert run(repl, "print(machine.PWM(machine.Pin(33), 5000, duty_u16=100).duty_u16())") \
        == "96"  # 13 bits at 5 kHz


def _pulses(board, n):
    with board._lock:
        board.physics.pulses += n
    board_sleep(0.05, board)  # the physics has written the count


def test_counter_value_is_an_unbounded_int_as_on_the_port(svc):
    board, repl = svc
    run(repl, "c = machine.Counter(1, machine.Pin(27, machine.Pin.IN))")
    run(repl, "c.value(2 ** 32 - 10)")
    _pulses(board, 30)
    assert int(run(repl, "print(c.value())")) == 2 ** 32 + 20
    run(repl, "c.value(-5)")
    _pulses(board, 3)
    assert int(run(repl, "print(c.value())")) == -2


def test_the_tach_arithmetic_stays_in_small_ints_past_2_30_pulses(svc):
    # Past 2**30 an int on the chip is a long int, on the heap: the firmware's own tach
    # arithmetic stays below it however long the pen runs (the stroke count too)
    board, repl = svc
    run(repl, "import board as B, motor, sensors\nm = motor.Motor(B.load())\n"
              "r = sensors.Readings()")
    start = int(board.physics.pulses)
    for _ in range(66):  # 66 * 2**24 pulses, a few at each look
        _pulses(board, 2 ** 24)
        run(repl, "m.measure(r, 0, 1)")
    board_sleep(0.05, board)
    run(repl, "m.measure(r, 0, 1)")
    total = int(board.physics.pulses) - start
    assert total > 2 ** 30
    big = run(repl, "print([k for o in (m, r) for k, v in o.__dict__.items()"
                    " if type(v) is int and not -2 ** 30 <= v < 2 ** 30])")
    assert big == "[]", "ints past 2**30: " + big
    assert int(run(repl, "print(r.strokes)")) == total // 48


def test_freq_unique_id_uname_and_platform_as_on_an_esp32(svc):
    _, repl = svc
    assert run(repl, "print(machine.freq())") == "160000000"  # ESP32_GENERIC's default
    run(repl, "machine.freq(240000000)")
    assert run(repl, "print(machine.freq())") == "240000000"
    assert raises(repl, "machine.freq(100000000)") == \
        "ValueError: frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz"
    run(repl, "machine.freq(160000000)")
    assert run(repl, "print(len(machine.unique_id()))") == "6"
    assert run(repl, "print(sys.platform)") == "esp32"
    assert run(repl, "u = os.uname()\nprint(u.sysname, u.nodename, u[0])") == "esp32 esp32 esp32"
    assert run(repl, "print(u.machine)") == "Generic ESP32 module with ESP32"


@pytest.fixture
def service_board(board):
    """The board in service mode at its friendly REPL, for the real mpremote."""
    (board.flash_dir / "service").write_text("")
    board.reset()
    wait_until(lambda: ">>> " in board.output(), 10, "service mode's REPL")
    return board


def test_mpremote_rtc_reads_and_sets_the_boards_clock(service_board):
    url = service_board.url
    now = eval(mpremote(url, "rtc").strip())  # from power-on: 2000-01-01, a Saturday
    assert now[:4] == (2000, 1, 1, 5) and now[4] == 0, now
    before = datetime.datetime.now()
    now = eval(mpremote(url, "rtc", "--set", "rtc").strip())
    board_time = datetime.datetime(*now[:3], *now[4:7])
    assert now[3] == board_time.weekday()
    assert abs((board_time - before).total_seconds()) < 60, (board_time, before)


@pytest.mark.long(14)
def test_the_filesystem_is_the_partitions_size_and_fills_as_littlefs(service_board, tmp_path):
    board = service_board
    url = board.url
    listing = mpremote(url, "fs", "ls")
    sizes = dict(reversed(line.split()) for line in listing.splitlines()[1:])
    assert int(sizes["main.py"]) == (board.flash_dir / "main.py").stat().st_size > 0
    df = mpremote(url, "df").splitlines()
    mounts = [line.split() for line in df if line.endswith(" /")]
    assert len(mounts) == 1, df  # one filesystem, the flash's
    size, used = mounts[0][-5:-3]
    assert int(size) == 2 * 1024 * 1024, df  # the vfs partition of a 4 MiB flash
    assert 0 < int(used) < 64 * 4096, df  # the deployed firmware's blocks
    # the partition filled to 8 blocks from its end (as the host puts it): the next 64 KB
    # do not fit (a small rest: what mpremote sends before the refusal crosses the UART at
    # 115200 baud, and 170 KB of it took half a minute)
    (board.flash_dir / "filler.bin").write_bytes(bytes(int(size) - int(used) - 8 * 4096))
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(64 * 1024))
    done = subprocess.run([sys.executable, "-m", "mpremote", "connect", url, "fs", "cp",
                           str(big), ":big.bin"], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "ENOSPC" in done.stdout + done.stderr or "No space" in done.stdout + done.stderr, \
        done.stdout + done.stderr
    stored = board.flash_dir / "big.bin"
    assert not stored.exists() or stored.stat().st_size < 8 * 4096
    stored.unlink(missing_ok=True)
    (board.flash_dir / "filler.bin").unlink()


def test_asyncio_sleeps_end_on_the_rtos_ticks_10_ms_edges(svc):
    # FreeRTOS at 100 Hz (machine.py's _Poll): a 2 ms asyncio sleep ends at the next 10 ms
    # edge, so a loop of them runs at most 100 times a second of the chip's clock
    _, repl = svc
    n = int(run(repl, "import asyncio, time\n"
                      "async def f():\n"
                      " n = 0\n"
                      " t0 = time.ticks_ms()\n"
                      " while time.ticks_diff(time.ticks_ms(), t0) < 1000:\n"
                      "  await asyncio.sleep_ms(2)\n"
                      "  n += 1\n"
                      " return n\n"
                      "print(asyncio.run(f()))"))
    assert 50 <= n <= 101, "%d wakes in a second of the chip's clock" % n
