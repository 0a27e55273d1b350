# Entry point on the board. On an ESP32 the PWM keeps running after main.py ends and
# the REPL takes over (an exception out of the app does exactly that), so whatever
# happens, the finally below puts the motor outputs in their safe state. Before any module of the
# pen runs, the deployed files are checked against their manifest (integrity.py).
import gc
import os
import sys

import app_mode
import micropython

# the application's modules (those it imports on its own are picked up on the way; codes
# is protocol's to import: it drops codes from sys.modules once it holds the tables)
_APP = ("app", "controller", "supervisor", "protocol", "commands", "depth", "eventlog",
        "sensors", "motor", "link", "pi", "caps")
# imported for each use from a .mpy, then dropped (commands.py); compiled here with the
# rest when deployed as source: compiling one later may not find a large enough block
_SELDOM = ("admin_cmds", "settings")


def _size(name, extensions=(".py", ".mpy")):
    for ext in extensions:
        try:
            return os.stat(name + ext)[6]
        except OSError:
            pass
    return 0


problems = []
try:
    if app_mode.service_mode():
        print("pen: service mode; the firmware is not running (remove /service, then reset)")
    else:
        del app_mode, sys.modules["app_mode"]  # SERVICE imports it again (admin_cmds)
        import integrity

        problems = integrity.check()
        if problems:
            integrity.refuse(problems)
        else:
            del integrity, sys.modules["integrity"]  # its RAM goes to the app's modules
            # While the app runs, Ctrl-C interrupts nothing: a second one could land in a
            # finally before the motor is off. The UART passes 0x03 on as a byte, which
            # link.py makes a realtime STOP. Service mode (above) keeps Ctrl-C for mpremote.
            micropython.kbd_intr(-1)
            gc.collect()
            # A module deployed as source (pen deploy --source) is compiled here, which
            # needs a large free block: the largest go first, with a collection after each,
            # so fragments of one never starve the next (in app.py's import order a few
            # hundred more bytes of source failed to boot).
            seldom = tuple(n for n in _SELDOM if _size(n, (".py",)))
            for name in sorted(_APP + seldom, key=_size, reverse=True):
                __import__(name)
                gc.collect()
            import app

            app.run()
finally:
    # a module that failed its check never runs, not even to stop the motor: the app never
    # started it, and the driver's enable pin is pulled low at reset (hardware reference)
    if not problems:
        import board
        import motor

        motor.force_off(board.load())
