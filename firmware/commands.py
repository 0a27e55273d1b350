# One handler per protocol command: check the frame, refuse anything malformed or out
# of bounds with an ERR reply (nothing changes), otherwise call the controller.
import gc

import protocol as P
import settings
from app_mode import set_service_mode
from micropython import const

_LOG_PAGE = const(4)  # records in one LOG reply (the host asks again with since=next)


class Commands:
    """Command NAME (a name from protocol.COMMANDS, never the raw frame) is handled by
    the method name.lower(); a dict of bound methods would hold 1 KB of heap."""

    def __init__(self, app):
        self.app = app
        self.ctl = app.ctl
        self.link = app.link
        self.greeted = False  # until a HELLO: this boot answers nothing else

    def handle(self, line, now_ms):
        link = self.link
        try:
            body = P.unframe(line)
        except P.ProtocolError as e:
            link.frames_bad += 1
            link.send("- ERR %s : %s" % (e.code, e.message))
            return
        seq = -1
        try:
            seq, cmd, args = P.parse_request(body)
            link.frames_ok += 1
            self.ctl.last_frame = now_ms  # any valid frame keeps a run alive
            if link.repeat(seq):
                return
            name = P.COMMANDS[cmd][0]
            if not self.greeted and name != "HELLO":
                # a host resending into a board that restarted meanwhile: the board no
                # longer knows what it answered, so it runs nothing until the host knows
                raise P.ProtocolError("RESTARTED", "%s not run: the board restarted since "
                                      "this host's HELLO" % name)
            link.executed += 1  # each sequence number runs once, however often it is sent
            out = getattr(self, name.lower())(args, now_ms)
            link.reply(seq, "OK" + (" " + out if out else ""))
        except P.ProtocolError as e:
            self._refuse(seq, e.code, e.message)
        except Exception as e:  # a bug in a handler must not take the link down
            self.ctl.internal_fault(e)
            self._refuse(seq, "INTERNAL", "%s: %s" % (type(e).__name__, e))

    def _refuse(self, seq, code, message):
        if seq < 0:
            self.link.send("- ERR %s : %s" % (code, message))
        else:
            self.link.reply(seq, "ERR %s : %s" % (code, message))

    def hello(self, args, now_ms):
        self.greeted = True
        return "proto=%d fw=%s board=%s reset=%s" % (
            P.PROTOCOL_VERSION, P.FIRMWARE_VERSION, self.app.board_name, self.ctl.reset_cause)

    def status(self, args, now_ms):
        return self.ctl.status_fields()

    def home(self, args, now_ms):
        self.ctl.home(now_ms)

    def set(self, args, now_ms):
        self.ctl.set(P.parse_settings(args))

    def get(self, args, now_ms):
        out = []
        for i in range(len(P.PARAMS)):
            name, unit, dec, lo, hi, step = P.PARAMS[i]
            out.append("%s=%s" % (name, P.format_fixed(self.ctl.params[i], dec)))
        caps = self.ctl.caps
        out.append("cap=%s rate_cap=%s profile=%s" % (
            P.format_fixed(caps.depth_um(), 3), P.format_fixed(caps.rate_chz(), 2),
            P.PROFILES[caps.profile][0]))
        return " ".join(out)

    def start(self, args, now_ms):
        self.ctl.start(now_ms)

    def stop(self, args, now_ms):
        self.ctl.stop(now_ms)
        return "st=%s" % P.STATES[self.ctl.state]

    def clear(self, args, now_ms):
        self.ctl.clear()
        return "st=%s" % P.STATES[self.ctl.state]

    def faults(self, args, now_ms):
        ctl = self.ctl
        log = ";".join("%d:%s" % (t, P.FAULTS[c][0]) for t, c, _, _ in ctl.fault_log[-6:])
        latched = "; ".join("%s %s [%s]" % (P.FAULTS[c][0], d, rd) for _, c, d, rd in ctl.fault_log
                            if ctl.faults & (1 << c))
        return "f=%s log=%s : %s" % (P.mask_names(ctl.faults, P.FAULTS), log or "-", latched)

    def reset(self, args, now_ms):
        self.ctl.require_still("RESET")
        self.app.reset_pending = True  # after this reply has gone out

    def service(self, args, now_ms):
        # machine.WDT cannot be stopped once started; only a reset into a boot that never
        # starts it frees the REPL for file transfers
        self.reset(args, now_ms)
        set_service_mode()

    def config(self, args, now_ms):
        app = self.app
        if args:
            values = settings.parse(args, dict(app.saved))
            self._save(values)
        return self._config_fields()

    def defaults(self, args, now_ms):
        values = dict(self.app.default_settings)
        for entry in P.CALIBRATION:  # this unit's own measurements, not a preference
            values[entry[0]] = self.app.saved[entry[0]]
        self._save(values)
        return self._config_fields()

    def _save(self, values):
        self.ctl.require_still("changing settings")
        try:
            settings.save(values)
        except OSError as e:
            raise P.ProtocolError("STORAGE", "settings not saved (%s); nothing changed" % e) \
                from None
        self.ctl.apply_settings(values, None)
        self.app.saved = values
        self.app.config_problem = None

    def _config_fields(self):
        return "%s source=%s" % (settings.fields(self.app.saved),
                                 "defaults" if self.app.config_problem else "saved")

    def log(self, args, now_ms):
        since = 0
        for name, text in args:
            if name != "since":
                raise P.ProtocolError("UNKNOWN_PARAM", "LOG takes since=<record number>")
            since = P.parse_fixed(text, 0)
        self.ctl.require_still("LOG")  # a scan of the whole ring would stall the tick
        self.app.flush_log(at_once=True)
        log = self.app.log
        log.read_error = None
        records = log.read(since, _LOG_PAGE)
        if log.read_error is not None:
            raise P.ProtocolError("STORAGE", "event log unreadable (%s)" % log.read_error)
        after = records[-1][0] + 1 if records else since
        return "next=%d boot=%d : %s" % (after, log.boot, " | ".join(
            "%d %d %d %s" % rec for rec in records))

    def ka(self, args, now_ms):  # keepalive
        pass

    def diag(self, args, now_ms):
        a = self.app
        a.snapshot_stats()
        gc.collect()
        return "ticks=%d tick_us_mean=%d tick_us_max=%d alloc_ticks=%d alloc_bytes=%d " \
               "mem_free=%d frames_ok=%d frames_bad=%d executed=%d" % (
                   a.ticks, a.tick_us_sum // max(1, a.window_ticks), a.tick_us_max,
                   a.window_ticks, a.alloc_bytes, gc.mem_free(), self.link.frames_ok,
                   self.link.frames_bad, self.link.executed)
