# Runs instead of the pen application when the boot check found deployed files that do
# not match the manifest. Nothing that drives the motor is imported: its pins stay in
# their reset state, which the hardware reference wires to "driver disabled". The board
# says who it is and what is wrong, refuses everything else, and accepts RESET and a keyed
# SERVICE (auth.py: only the key's holder gets the REPL) so that `pen deploy` can put good
# files in place; each keyed attempt is logged. No watchdog: nothing here can hang the
# needles.
import binascii
import time

import auth
import machine
import protocol as P
import wire
from app_mode import set_service_mode
from eventlog import EventLog
from link import Link

_ANSWERED = ("HELLO", "STATUS", "FAULTS", "KA", "RESET", "SERVICE", "CHALLENGE")


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
        self.uid = binascii.hexlify(machine.unique_id()).decode()
        self.gate = auth.new_state()

    def hello(self):
        return wire.pairs([("proto", P.PROTOCOL_VERSION), ("fw", P.FIRMWARE_VERSION),
                           ("board", "?"), ("uid", self.uid),
                           ("reset", P.reset_name(machine.reset_cause()))])

    def keyed(self, name, args):
        """CHALLENGE's nonce, or SERVICE judged (auth.py), each logged at once (nothing
        moves here); a refusal raises ProtocolError (AUTH)."""
        now = time.ticks_ms()
        why = None
        try:
            if name == "CHALLENGE":
                return wire.pairs([("nonce", auth.challenge(self.gate, now))])
            if auth.check(self.gate, self.uid, name, args, now):
                why = "SERVICE takes only mac="
        except ValueError as e:
            why = str(e)
        log = EventLog()
        log.add(time.ticks_diff(now, self.boot_ms), wire.text(
            "AUTH", [("cmd", name), ("result", "refused" if why else "granted")], why or ""))
        try:
            log.flush()
        except OSError:
            pass
        if why:
            raise P.ProtocolError("AUTH", "%s refused: %s" % (name, why))
        set_service_mode()
        self.reset_pending = True
        return ""

    def status(self):
        return wire.pairs([wire.fixed("st", P.FAULT), wire.fixed("f", 1 << P.F_INTEGRITY),
                           ("up", time.ticks_diff(time.ticks_ms(), self.boot_ms))])

    def faults(self):
        return wire.faults_reply(1 << P.F_INTEGRITY, [(0, P.F_INTEGRITY)], [
            (0, P.F_INTEGRITY, self.detail, wire.pairs([("file", self.file)]))])

    def answer(self, cmd, args):
        if cmd == "HELLO":
            return self.hello()
        if cmd == "STATUS":
            return self.status()
        if cmd == "FAULTS":
            return self.faults()
        if cmd in ("CHALLENGE", "SERVICE"):
            return self.keyed(cmd, args)
        if cmd == "RESET":
            self.reset_pending = True
        return ""

    def handle(self, line):
        link = self.link
        got = link.got
        got[0] = -1
        try:
            seq, cmd, args = wire.parse_request(wire.unframe(line), got)
        except P.ProtocolError as e:
            seq = got[0]
            if seq < 0:
                link.send(wire.error(-1, e.code, e.message))
            else:
                link.reply(seq, wire.error(seq, e.code, e.message))
            return
        if link.repeat(seq, wire.crc_of(line)):
            return
        name = P.COMMANDS[cmd][0]
        if name not in _ANSWERED:
            link.reply(seq, wire.error(seq, "STATE", "%s refused: firmware locked, %s"
                                       % (name, self.detail)))
            return
        try:
            link.reply(seq, wire.ok(seq, self.answer(name, args)))
        except P.ProtocolError as e:
            link.reply(seq, wire.error(seq, e.code, e.message))

    def run(self):
        self.link.send(wire.announce(wire.text("BOOT", [
            ("reset", P.reset_name(machine.reset_cause())), ("fw", P.FIRMWARE_VERSION),
            ("proto", P.PROTOCOL_VERSION), ("board", "?")])))
        self.link.send(wire.announce(wire.text("FAULT", [
            ("code", P.FAULTS[P.F_INTEGRITY][0]),
            ("file", self.file)], self.detail)))
        while not self.reset_pending:
            n = self.link.read_line()
            if n is None:
                time.sleep_ms(5)
            elif n > 0:  # a line; a Ctrl-C (STOP) stops nothing here: nothing moves
                self.handle(self.link.text(n))
        time.sleep_ms(50)  # let the reply leave the UART
        machine.reset()


def run(problems):
    Lockout(problems).run()
