# The commands a host sends to open a session or an operator types, not those a treatment
# runs on: HELLO, GET, FAULTS, CONFIG, DEFAULTS, LOG, RESET, CHALLENGE, SERVICE and SENSE,
# and what a boot needs once (the saved settings, telling a brown-out from a power-on).
# Deployed as .mpy, this module (and settings.py with it) is imported for one such use and
# dropped again, so their code and texts hold no RAM between uses (about 5 KB on the
# virtual board); loading them takes a few ms, never in the control tick. DIAG stays in
# commands.py: the free heap it reports is without them.
# Each function here is a method of commands.Commands done out of line (cmds is the
# Commands object): the state it keeps (settings in use, greeted, reset_pending) is
# declared in Commands.__init__.
import os

import protocol as P
import settings
import wire
from app_mode import set_service_mode
from micropython import const

_LOG_PAGE = const(4)  # records in one LOG reply (the host asks again with since=next)
_SAMPLES = const(8)  # SENSE's reading of an input: one sample scatters ~5 mV rms, 8 ~2 mV
_ZERO_MV = const(50)  # the current sensor at rest: within 50 mV (83 mA) of its zero
_DEPLOYED_MAX = const(256)
_UNIX_2025 = 1735689600
_UNIX_2100 = 4102444800


def boot(cmds, board, power_on):
    if power_on and _browned_out(cmds.eventlog):
        cmds.reset_cause = "BROWNOUT"
    cmds.default_settings = settings.defaults(board)  # not the board dict: it is big
    cmds.saved, cmds.config_problem = settings.load(board)
    settings.apply(cmds.ctl, cmds.saved, cmds.config_problem)
    _deployed(cmds.ctl)


def _deployed(ctl):
    # pen deploy leaves its DEPLOY (and KEY) records in this file for the firmware to log
    # at its first boot: importing the log's modules at the REPL took a free block a heap
    # fragmented by the copying did not have
    from integrity import DEPLOYED

    try:
        with open(DEPLOYED) as f:
            lines = f.read(_DEPLOYED_MAX).split("\n")
        os.remove(DEPLOYED)
    except OSError:
        return
    for line in lines:
        name, fields, _ = wire.split_text(line)
        if name in ("DEPLOY", "KEY"):
            ctl.post(name, fields)


def _browned_out(log):
    # The ESP32 port reports a brown-out as a power-on reset: the supply monitor's own
    # record tells them apart, when a SUPPLY_LOW fault (and its STATE record) ended the
    # previous boot uncleared: the supply fell slowly enough to trip it before the chip
    # reset. A sudden loss stays PWRON.
    fault = clear = last = 0  # the numbers of that boot's newest such records (one pass)
    for seq, boot, _, text in log.records():
        if boot == log.boot - 1:
            last = max(last, seq)
            if wire.event_is(text, "FAULT", "code", "SUPPLY_LOW"):
                fault = max(fault, seq)
            elif wire.split_text(text)[0] == "CLEAR":
                clear = max(clear, seq)
    return fault > clear and last - fault <= 2


def hello(cmds, args, now_ms):
    # time=<unix s>: the host's clock for the RTC (the session records' wall-clock time)
    for name, text in args:
        if name != "time":
            raise P.ProtocolError("UNKNOWN_PARAM", "HELLO takes time=<unix seconds>")
        seconds = P.parse_fixed(text, 0)
        if not _UNIX_2025 <= seconds < _UNIX_2100:
            raise P.ProtocolError("RANGE", "HELLO's time %s is not a date this century" % text[:16])
        import clock

        clock.set_unix(seconds)
    cmds.greeted = True
    try:  # a host reached the firmware: its run of failed boots is over (main.py)
        os.remove("failed_boots")
    except OSError:
        pass
    # a new host session: the numbers earlier hosts used are not its own (this HELLO's
    # is kept, so a resend of it is answered as it was)
    cmds.link.forget_others()
    return wire.pairs([("proto", P.PROTOCOL_VERSION), ("fw", P.FIRMWARE_VERSION),
                       ("board", cmds.board_name), ("uid", cmds.uid),
                       ("reset", cmds.reset_cause)])


def get(cmds, args, now_ms):
    ctl = cmds.ctl
    out = []
    for i in range(len(P.PARAMS)):
        out.append((P.PARAMS[i][0], P.format_fixed(ctl.params[i], P.PARAMS[i][2])))
    caps = ctl.caps
    out.append(("cap", P.format_fixed(caps.depth_um(), 3)))
    out.append(("rate_cap", P.format_fixed(caps.rate_chz(), 2)))
    out.append(("profile", P.PROFILES[caps.profile][0]))
    return wire.pairs(out)


def faults(cmds, args, now_ms):
    ctl = cmds.ctl
    # each latched fault once, by its newest record: a fault tripped, cleared and tripped
    # again was listed with every earlier record too, a reply that grew to a MemoryError
    newest = {}
    for entry in ctl.fault_log:
        if ctl.latched(entry[1]):
            newest[entry[1]] = entry
    return wire.faults_reply(ctl.faults, ctl.fault_log[-6:], newest.values())


def reset(cmds, args, now_ms):
    cmds.ctl.require_still("RESET")
    cmds.reset_pending = True  # after this reply has gone out


def challenge(cmds, args, now_ms):
    return keyed(cmds, "CHALLENGE", args, now_ms)


def keyed(cmds, name, args, now_ms):
    """CHALLENGE's nonce; or, for keyed command `name`, its args less mac= once the answer
    is right. Refused while the needles run (a wrong answer is counted on the flash, whose
    writes stall the loop); a refusal is an AUTH error and record. auth (and integrity with
    it) is imported here only: every other command would carry it onto the heap for
    nothing (a GET once found no free block for 368 bytes)."""
    import auth

    ctl = cmds.ctl
    ctl.require_still(name)
    if cmds.gate is None:  # kept on cmds: this module goes after each use, the nonce not
        cmds.gate = auth.new_state()
    try:
        if name == "CHALLENGE":
            return wire.pairs([("nonce", auth.challenge(cmds.gate, now_ms))])
        rest = auth.check(cmds.gate, cmds.uid, name, args, now_ms)
    except ValueError as e:
        ctl.post("AUTH", [("cmd", name), ("result", "refused")], str(e))
        raise P.ProtocolError("AUTH", "%s refused: %s" % (name, e)) from None
    ctl.post("AUTH", [("cmd", name), ("result", "granted")])
    return rest


def service(cmds, args, now_ms):
    # machine.WDT cannot be stopped once started; only a reset into a boot that never
    # starts it frees the REPL for file transfers. Service mode drives nothing, so it
    # waits until the needles are in (a RESET need not: the boot brings them in). The
    # REPL can do anything: only the key's holder gets there.
    ctl = cmds.ctl
    ctl.require_still("SERVICE")
    if ctl.depth.moving() and not ctl.faults & P.ACTUATOR_FAULTS:  # a retract under way
        raise P.ProtocolError("STATE", "SERVICE refused while the needles are moving in: "
                              "wait until they are in")
    if keyed(cmds, "SERVICE", args, now_ms):
        raise P.ProtocolError("MALFORMED", "SERVICE takes only mac=")
    reset(cmds, (), now_ms)
    set_service_mode()


def config(cmds, args, now_ms):
    # the calibration is this unit's measurement, which no operator may trim: only the
    # key's holder (the operator's preferences stay open)
    for pair in args:
        if pair[0] == "mac" or P.index_of(P.CALIBRATION, pair[0]) >= 0:
            args = keyed(cmds, "CONFIG", args, now_ms)
            break
    if args:
        _save(cmds, settings.parse(args, dict(cmds.saved)))
    return _config_fields(cmds)


def defaults(cmds, args, now_ms):
    values = dict(cmds.default_settings)
    for entry in P.CALIBRATION:  # this unit's own measurements, not a preference
        values[entry[0]] = cmds.saved[entry[0]]
    _save(cmds, values)
    return _config_fields(cmds)


def _save(cmds, values):
    # applied first: a refusal raises before anything changed, so nothing refused is saved
    settings.apply(cmds.ctl, values, None)
    try:
        settings.save(values)
    except OSError as e:
        settings.apply(cmds.ctl, cmds.saved, cmds.config_problem)  # back to what was in use
        raise P.ProtocolError("STORAGE", "settings not saved (%s); nothing changed" % e) \
            from None
    cmds.saved = values
    cmds.config_problem = None


def _config_fields(cmds):
    return wire.pairs(settings.fields(cmds.saved) + [
        ("source", "defaults" if cmds.config_problem else "saved")])


def log(cmds, args, now_ms):
    since = 0
    for name, text in args:
        if name != "since":
            raise P.ProtocolError("UNKNOWN_PARAM", "LOG takes since=<record number>")
        since = P.parse_fixed(text, 0)
    cmds.ctl.require_still("LOG")  # a scan of the whole ring would stall the tick
    cmds.flush_log(at_once=True)
    log = cmds.eventlog
    log.read_error = None
    records = log.read(since, _LOG_PAGE)
    if log.read_error is not None:
        raise P.ProtocolError("STORAGE", "event log unreadable (%s)" % log.read_error)
    after = records[-1][0] + 1 if records else since
    return wire.log_reply(after, log.boot, records)


def sense(cmds, args, now_ms):
    # What `pen selftest` judges the hardware by: each analog input in mV as the ADC reads
    # it, with the range this firmware holds it to (its own figures, not the host's copy of
    # the board definition), as "value,low,high"; the switches as the last tick read them.
    # At rest only: 32 ADC reads and this module's import come between two ticks.
    ctl = cmds.ctl
    ctl.require_still("SENSE")
    s = ctl.sensors
    sup = ctl.sup
    d = ctl.depth
    r = ctl.r
    zero = s.current_bias_mv + s.current_zero_mv  # what no current reads, as calibrated
    k = s.supply_x1024  # the supply's limits as the divider puts them on the pin
    mv = _mv(s.temp)
    return wire.pairs([
        # never below the supervisor's own floor for a live sensor (CURRENT_SENSOR)
        ("current", _in(_mv(s.current), max(zero - _ZERO_MV, sup.current_mv_min),
                        zero + _ZERO_MV, 0)),
        ("temp", _in(mv, sup.therm_mv_min, sup.therm_mv_max, 0)),
        ("tc", _in(s.celsius_x10(mv), s.celsius_x10(sup.therm_mv_max), sup.warn_dc, 1)),
        ("supply", _in(_mv(s.supply), (sup.supply_low * 1024 + k - 1) // k,
                       sup.supply_high * 1024 // k, 0)),
        ("depth", _in(_mv(d.sensor), sup.sensor_mv_min, sup.sensor_mv_max, 0)),
        # the zero the last homing took at the switch (0: not homed since boot)
        ("home", _in(d.home_mv, d.home_mv_min, d.home_mv_max, 0)),
        ("estop", r.estop_open), ("cartridge", r.cartridge), ("switch", r.home_switch)])


def _mv(adc):
    total = 0
    for _ in range(_SAMPLES):
        total += adc.read_uv()
    return total // (1000 * _SAMPLES)


def _in(value, low, high, decimals):
    return "%s,%s,%s" % (P.format_fixed(value, decimals), P.format_fixed(low, decimals),
                         P.format_fixed(high, decimals))
