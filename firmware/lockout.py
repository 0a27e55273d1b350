# Runs instead of the pen application when the boot check found deployed files that do
# not match the manifest. Nothing that drives the motor is imported: its pins stay in
# their reset state, which the hardware reference wires to "driver disabled". The board
# says who it is and what is wrong, refuses everything else, and accepts SERVICE and RESET
# so that `pen deploy` can put good files in place. No watchdog: nothing here can hang
# the needles, and mpremote may take the REPL with Ctrl-C.
import binascii
import time

import machine
import protocol as P
from app_mode import set_service_mode
from link import Link

_ANSWERED = ("HELLO", "STATUS", "FAULTS", "KA", "RESET", "SERVICE")


class Lockout:
    def __init__(self, problems):
        self.link = Link()
        self.problems = problems
        name, why = problems[0]
        more = " (and %d more)" % (len(problems) - 1) if len(problems) > 1 else ""
        self.detail = "%s %s%s: deploy the firmware again (pen deploy)" % (name, why, more)
        self.file = name
        self.boot_ms = time.ticks_ms()
        self.reset_pending = False

    def hello(self):
        return "proto=%d fw=%s board=? uid=%s reset=%s" % (
            P.PROTOCOL_VERSION, P.FIRMWARE_VERSION,
            binascii.hexlify(machine.unique_id()).decode(), P.reset_name(machine.reset_cause()))

    def status(self):
        return "st=%s f=%s up=%d" % (P.STATES[P.FAULT], P.FAULTS[P.F_INTEGRITY][0],
                                     time.ticks_diff(time.ticks_ms(), self.boot_ms))

    def faults(self):
        return "f=%s log=0:%s : %s %s [file=%s]" % (
            P.FAULTS[P.F_INTEGRITY][0], P.FAULTS[P.F_INTEGRITY][0], P.FAULTS[P.F_INTEGRITY][0],
            self.detail, self.file)

    def answer(self, cmd):
        if cmd == "HELLO":
            return self.hello()
        if cmd == "STATUS":
            return self.status()
        if cmd == "FAULTS":
            return self.faults()
        if cmd == "SERVICE":
            set_service_mode()
        if cmd in ("RESET", "SERVICE"):
            self.reset_pending = True
        return ""

    def handle(self, line):
        link = self.link
        try:
            seq, cmd, _ = P.parse_request(P.unframe(line))
        except P.ProtocolError as e:
            link.send("- ERR %s : %s" % (e.code, e.message))
            return
        if link.repeat(seq, line):
            return
        name = P.COMMANDS[cmd][0]
        if name not in _ANSWERED:
            link.reply(seq, "ERR STATE : %s refused: firmware locked, %s" % (name, self.detail))
            return
        out = self.answer(name)
        link.reply(seq, "OK" + (" " + out if out else ""))

    def run(self):
        self.link.send("! BOOT reset=%s fw=%s proto=%d board=?" % (
            P.reset_name(machine.reset_cause()), P.FIRMWARE_VERSION, P.PROTOCOL_VERSION))
        self.link.send("! FAULT code=%s file=%s : %s" % (
            P.FAULTS[P.F_INTEGRITY][0], self.file, self.detail))
        while not self.reset_pending:
            line = self.link.read_line()
            if line is None:
                time.sleep_ms(5)
            else:
                self.handle(line)
        time.sleep_ms(50)  # let the reply leave the UART
        machine.reset()


def run(problems):
    Lockout(problems).run()
