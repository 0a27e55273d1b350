# Entry point on the board. On an ESP32 the PWM keeps running after main.py ends and
# the REPL takes over (an exception out of the app does exactly that), so whatever
# happens, the finally below puts the motor outputs in their safe state. Before any module of the
# pen runs, the deployed files are checked against their manifest (integrity.py).
# Outside service mode main.py never ends at the REPL, where anyone could run anything:
# whatever ends it resets the board, and a count of failed boots that survives the reset
# ("failed_boots", in integrity.DATA) turns a boot loop into the minimal lockout below, so a
# board whose firmware cannot start still answers `pen deploy`.
import micropython

# Ctrl-C off before anything else, in service mode too (each REPL command gets it back):
# MicroPython sets the interrupt character as this file starts (shared/runtime/pyexec.c),
# and outside service mode one that broke the integrity check, a lockout or this file's own
# ending would leave the board at the REPL, and in the app a second one could land in a
# finally before the motor is off. The UART passes 0x03 on as a byte, which link.py makes
# a realtime STOP and the lockouts ignore. A Ctrl-C that came before this line is pending
# still: the VM raises it at its next branch (py/vm.c), and no statement branches before
# the try below, whose finally resets; with the character unset no second one can come.
micropython.kbd_intr(-1)
import gc  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import machine  # noqa: E402

# the application's modules (those it imports on its own are picked up on the way; codes
# is protocol's to import)
_APP = ("app", "controller", "supervisor", "protocol", "wire", "commands", "depth", "eventlog",
        "sensors", "motor", "link", "pi", "caps")
# imported for each use from a .mpy, then dropped (commands.py); compiled here with the
# rest when deployed as source: compiling one later may not find a large enough block
_SELDOM = ("admin_cmds", "settings", "treatment", "cartridge", "cartridge_mark", "clock")


def _size(name, extensions=(".py", ".mpy")):
    for ext in extensions:
        try:
            return os.stat(name + ext)[6]
        except OSError:
            pass
    return 0


def count(n=-1):
    """Boots in a row that ended without the firmware running, kept in a file (one of
    integrity.DATA) that survives the reset: read (n < 0), or set to n (0 removes the file:
    service mode, or a HELLO the firmware answered, ends the run of failures)."""
    try:
        if n < 0:
            with open("failed_boots") as f:
                return int(f.read(4))
        if n:
            with open("failed_boots", "w") as f:
                f.write(str(n))
        else:
            os.remove("failed_boots")
    except Exception:  # none counted, or the flash refuses: no count is no lockout
        pass
    return 0


problems = []
why = None  # (fault code, reason) when the minimal lockout must run instead of the firmware
service = False
# Only service mode ends at the REPL: anything else is a failed boot, counted, then reset.
# The reset is this finally's, so no exception gets past it, not even one raised while
# another is printed (a heap too full to print a MemoryError).
try:
    try:
        try:
            os.stat("service")
            service = True
        except OSError:
            pass
        if service:
            count(0)  # a repair is under way: the next boot tries the firmware again
            print("pen: service mode; the firmware is not running (remove /service, then reset)")
        else:
            n = count()
            if machine.reset_cause() == machine.WDT_RESET:  # the last boot hung: a failure too
                n += 1
                count(n)
            if n >= 3:
                why = ("INTERNAL", "%d boots in a row failed" % n)
            else:
                import integrity

                problems = integrity.check()
                if problems:
                    integrity.refuse(problems)
                    # back only if the lockout's own modules are damaged
                    why = ("INTEGRITY", problems[0][0] + " " + problems[0][1])
                else:
                    del integrity, sys.modules["integrity"]  # its RAM goes to the app's modules
                    gc.collect()
                    # A module deployed as source (pen deploy --source) is compiled here, which
                    # needs a large free block: the largest go first, with a collection after
                    # each, so fragments of one never starve the next (in app.py's import order
                    # a few hundred more bytes of source failed to boot).
                    seldom = tuple(n for n in _SELDOM if _size(n, (".py",)))
                    for name in sorted(_APP + seldom, key=_size, reverse=True):
                        __import__(name)
                        gc.collect()
                    import app

                    app.run()
            if why:
                # The minimal lockout is the string that ends this file: compiled only when it
                # must run, so a running pen keeps none of it on its heap (a lone string compiles
                # to nothing). It is main.py's own text, which nothing else could vouch for;
                # read from its first line on (the whole file in one block did not fit the
                # heap of a board whose app did not).
                with open("main.py") as f:
                    for text in f:
                        if text.startswith("# The minimal lockout."):
                            break
                    text = (text + f.read()).rstrip()
                exec(text[:-3], {"why": why, "count": count})
    except BaseException as e:  # printed before the reset below, where a board shows it
        sys.print_exception(e)
    finally:
        # a module that failed its check never runs, not even to stop the motor (nor in the
        # minimal lockout, which imports nothing of the pen): the app never started it, and
        # the driver's enable pin is pulled low at reset (hardware reference)
        if not (problems or why):
            try:
                import board
                import motor

                motor.force_off(board.load())
            except BaseException as e:
                sys.print_exception(e)
finally:
    if not service:
        count(count() + 1)
        machine.reset()

'''
# The minimal lockout. It imports nothing of the pen, not even protocol or link, so it
# speaks when they are damaged; the motor pins keep their reset state (driver disabled).
# It answers HELLO, STATUS, RESET and a keyed SERVICE (CHALLENGE first: auth.py's scheme,
# written out here with hashlib, as it may not import auth) in the protocol's frames and
# refuses the rest; it ends only in a reset. Its refusals are not logged (the log is the
# pen's module); each wrong answer makes the next wait longer. No watchdog: nothing here
# can move the needles.
import hashlib
import os
import sys
import time
from binascii import crc32, hexlify

import machine

code, why = why
count(0)  # the next boot (a RESET, a power cycle, after a deploy) tries the firmware
uid = hexlify(machine.unique_id()).decode()
nonce = None
fails = 0
until = time.ticks_ms()  # no challenge before (1, 2, 4 ... 64 s after each wrong answer)


def answer(given):
    try:
        with open("key", "rb") as f:
            key = f.read(33)
    except OSError:
        key = b""
    k = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
    inner.update(("%s %s SERVICE" % (given, uid)).encode())
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))
    outer.update(inner.digest())
    return "mac=" + hexlify(outer.digest()).decode() if given and len(key) == 32 else None


def send(body):
    print("%s *%08X" % (body, crc32(body.encode())))


send("! BOOT reset=? fw=? proto=1 board=?")
why += ": deploy the firmware again (pen deploy)"
send("! FAULT code=%s : %s" % (code, why))
up = time.ticks_ms()
line = b""
while True:
    c = sys.stdin.buffer.read(1)
    if c and c not in b"\r\n":
        if 31 < c[0] < 127 and len(line) < 160:
            line += c
        continue
    body, _, crc = line.decode().rpartition(" *")
    line = b""
    args = body.split()
    if len(args) < 2 or crc != "%08X" % crc32(body.encode()):
        continue  # the host resends what it had no answer to
    cmd = args[1]
    if cmd == "HELLO":
        out = "OK proto=1 fw=? board=? uid=%s reset=?" % uid
    elif cmd == "STATUS":
        out = "OK st=FAULT f=%s up=%d" % (code, time.ticks_diff(time.ticks_ms(), up))
    elif cmd == "CHALLENGE":
        wait = time.ticks_diff(until, time.ticks_ms())
        if wait > 0:
            out = "ERR AUTH : CHALLENGE refused: %d wrong answers: wait %d s" % (
                fails, wait // 1000 + 1)
        else:
            nonce = hexlify(os.urandom(16)).decode()
            out = "OK nonce=" + nonce
    elif cmd == "SERVICE":
        given, nonce = nonce, None
        mac = answer(given)
        if mac and args[2:] == [mac]:
            open("service", "w").close()
            out = "OK"
        else:
            fails += 1
            until = time.ticks_add(time.ticks_ms(), min(1 << (fails - 1), 64) * 1000)
            out = "ERR AUTH : SERVICE refused: no key, no CHALLENGE before, or a wrong answer"
    elif cmd == "RESET":
        out = "OK"
    else:
        out = "ERR STATE : %s refused: firmware not running, %s" % (cmd, why)
    send(args[0] + " " + out)
    if out == "OK":
        time.sleep_ms(50)  # let the reply leave the UART
        machine.reset()
'''
