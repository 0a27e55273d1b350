# Service mode: a flag file on the flash that makes main.py leave the pen application (and
# its watchdog) unstarted, so mpremote has the REPL. Set by the SERVICE command.
import os

SERVICE_FLAG = "service"


def service_mode():
    try:
        os.stat(SERVICE_FLAG)
        return True
    except OSError:
        return False


def set_service_mode():
    with open(SERVICE_FLAG, "w") as f:
        f.write("remove this file and reset to run the pen firmware\n")
