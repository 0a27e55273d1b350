# One handler per protocol command: check the frame, refuse anything malformed or out
# of bounds with an ERR reply (nothing changes), otherwise call the controller. The
# treatment's commands are here; the session's and the operator's are in admin_cmds.py,
# imported for each of them.
import gc
import sys
from time import ticks_diff

import protocol as P
import wire


class Commands:
    """Command NAME (a name from protocol.COMMANDS, never the raw frame) is handled by
    the method name.lower(), or admin_cmds' function of that name; a dict of bound methods
    would hold 1 KB of heap."""

    def __init__(self, ctl, link, log, stats, flush_log, board_name, uid, reset_cause):
        self.ctl = ctl
        self.link = link
        # attributes never take a command's lower-case name (handle() would call them)
        self.eventlog = log  # read by LOG, after flush_log(at_once=True)
        self.flush_log = flush_log
        self.stats = stats  # the control tick's figures, for DIAG
        self.board_name = board_name  # who this board is, for HELLO
        self.uid = uid
        self.reset_cause = reset_cause  # why it last restarted (boot() may find a brown-out)
        self.greeted = False  # until a HELLO: this boot answers nothing else
        self.reset_pending = False  # RESET or SERVICE: the app resets once the reply is out
        self.gate = None  # the keyed commands' challenge state (auth.new_state()), at the first
        # the settings (settings.py): those in use (as saved, or the defaults), the defaults,
        # and why the defaults are in use (None: the saved ones are); boot() sets them
        self.saved = self.default_settings = self.config_problem = None
        # the cartridge's ID chip's pin and its stroke limit (board.json), for treatment.py
        self.cartridge_pin = self.stroke_limit = None

    def handle(self, n, now_ms):
        """The line of n bytes in the link's buffer (link.read_line())."""
        link = self.link
        args = ()
        # a plain one, in place (the writer's buffer, free between lines, checks its CRC)
        cmd = wire.read_request(link.buf, link.writer.buf, n, link.got)
        if cmd < 0:  # arguments, or something to refuse: read it as text
            line = link.text(n)
            try:
                body = wire.unframe(line)
            except P.ProtocolError as e:
                link.frames_bad += 1
                link.send(wire.error(-1, e.code, e.message))
                return
        seq = -1
        try:
            if cmd < 0:
                link.got[0] = -1
                seq, cmd, args = wire.parse_request(body, link.got)
                crc = wire.crc_of(line)
            else:
                seq = link.got[0]  # indexed: unpacking an array allocates an iterator
                crc = link.got[1]
            link.frames_ok += 1
            self.ctl.heard(now_ms)
            if link.repeat(seq, crc):
                return
            name = P.COMMANDS[cmd][0]
            if not self.greeted and name != "HELLO":
                # a host resending into a board that restarted meanwhile: the board no
                # longer knows what it answered, so it runs nothing until the host knows
                raise P.ProtocolError("RESTARTED", "%s not run: the board restarted since "
                                      "this host's HELLO" % name)
            link.executed += 1  # each sequence number runs once, however often it is sent
            # the class's function, not a method bound to self: that is a new object a call
            handler = getattr(Commands, name.lower(), None)
            if handler is None:  # not a treatment command: admin_cmds has it
                out = self._admin(name.lower(), args, now_ms)
            else:
                out = handler(self, args, now_ms)
            link.reply(seq, wire.ok(seq, out) if out else "")  # "": a plain OK
        except P.ProtocolError as e:
            self._refuse(seq if seq >= 0 else link.got[0], e.code, e.message)
        except Exception as e:  # a bug in a handler must not take the link down
            self.ctl.internal_fault(e)
            self._refuse(seq, "INTERNAL", "%s: %s" % (type(e).__name__, e))

    def boot(self, board, power_on):
        """Once, at boot: the saved settings (or the safe defaults and why) applied, a
        power-on reset told from a brown-out, the treatment session gone on or ended."""
        self.cartridge_pin = board["pins"]["cartridge_id"]
        self.stroke_limit = board["limits"]["cartridge_strokes"]
        self._admin("boot", board, power_on)
        self._use("treatment", "boot")

    def _admin(self, function, *args):
        return self._use("admin_cmds", function, *args)

    def _use(self, module, function, *args):
        """Function of module (admin_cmds, treatment) on self, the module imported for it."""
        loaded = list(sys.modules)
        used = __import__(module)
        try:
            return getattr(used, function)(self, *args)
        finally:
            # the module and what it imported go again; a source deploy keeps them: main.py
            # compiled them at boot, while a large enough free block was sure to be there
            if (used.__file__ or "").endswith(".mpy"):
                for name in list(sys.modules):
                    if name not in loaded:
                        del sys.modules[name]

    def _refuse(self, seq, code, message):
        if seq < 0:
            self.link.send(wire.error(-1, code, message))
        else:
            self.link.reply(seq, wire.error(seq, code, message))

    def status(self, args, now_ms):
        # built as a telemetry line is, in the writer's buffer (free between lines): one
        # str, where wire.fields() builds ~3.5 KB of them on the VM (`pen monitor`: 1/s)
        w = self.link.writer
        w.buf[0:] = b""
        w.fields(self.ctl.status())
        return str(w.buf, "ascii")

    def home(self, args, now_ms):
        self.ctl.home(now_ms)

    def set(self, args, now_ms):
        self.ctl.set(P.parse_settings(args))

    def start(self, args, now_ms):
        missing = self.ctl.missing_for_start()
        if not missing:  # the cartridge's checks read its chip: only for a START that can go
            self._use("treatment", "admit", missing)
        self.ctl.start(now_ms, missing)

    def stop(self, args, now_ms):
        self.ctl.stop(now_ms)
        return wire.pairs([wire.fixed("st", self.ctl.state)])

    def clear(self, args, now_ms):
        self.ctl.clear()
        return wire.pairs([wire.fixed("st", self.ctl.state)])

    def session(self, args, now_ms):
        return self._use("treatment", "command", args)

    def run_ended(self):
        """After a run, once the needles are still (app.py): its figures on the flash."""
        self._use("treatment", "run_ended")

    def ka(self, args, now_ms):  # keepalive
        pass

    def diag(self, args, now_ms):
        """The tick's figures since the last DIAG, and the bytes all tasks allocated
        meanwhile (app.TickStats.sample), in all and per second."""
        a = self.stats
        a.snapshot()
        a.sample(now_ms)
        ms = max(1, ticks_diff(now_ms, a.since))
        got = a.alloc_bytes
        gc.collect()
        a.restart(now_ms)
        return wire.pairs([
            ("ticks", a.ticks), ("tick_us_mean", a.tick_us_sum // max(1, a.window_ticks)),
            ("tick_us_max", a.tick_us_max), ("alloc_ms", ms), ("alloc_bytes", got),
            ("alloc_per_s", got * 1000 // ms), ("mem_free", gc.mem_free()),
            ("frames_ok", self.link.frames_ok), ("frames_bad", self.link.frames_bad),
            ("executed", self.link.executed)])
