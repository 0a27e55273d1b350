# Treatment sessions and the cartridges they used (docs/sessions.md). A session starts at
# the first START with a cartridge and ends when the operator ends it (SESSION end=1), when
# another cartridge is fitted, or after a power-off. A cartridge is single use: START is
# refused (PRECONDITION) for one without a readable id, one used in an earlier session (by
# this board's record, or by the mark on its own chip, which another pen wrote), and one
# at its stroke limit (board.json's limits.cartridge_strokes).
# The record (the open session's figures and the last _KEPT cartridges) is one file,
# written atomically as the settings are, and only while the needles are still: at START,
# before they move, and after each run. The cartridge's chip gets its mark before its
# needles first move. Imported per use (START, a run's end, SESSION, boot), then dropped.
import errno

import protocol as P
import settings
import wire
from cartridge_mark import decode_row, encode_row, is_test, pen_tag, read_id
from micropython import const

FILE = "treatment.txt"
NEW = "treatment.new"
_KEPT = const(16)  # cartridges this board remembers; an older one still carries its mark
_LINE = const(240)  # a record's longest line (the SESSION line is ~200 bytes)
_CARRY = const(0x20000000)  # the control tick's sums carry here: small ints on an ESP32
_MASK30 = const(0x3FFFFFFF)
# the open (or last) session's figures as the record keeps them, ints but for the cartridge:
# number, open, cartridge, profile, start (unix s, boot, uptime ms), end so far (the same),
# time needling (ms), strokes, depth x strokes (um), deepest (um), fastest (cHz), faults
SESSION = ("n", "open", "cart", "profile", "t0", "boot0", "up0", "t1", "boot1", "up1",
           "needle_ms", "strokes", "depth_sum", "depth_max", "rate_max", "faults")


# ---- the record on the flash ----------------------------------------------------------------
def new_session():
    return {"n": 0, "open": 0, "cart": "-", "profile": 0, "t0": 0, "boot0": 0, "up0": 0,
            "t1": 0, "boot1": 0, "up1": 0, "needle_ms": 0, "strokes": 0, "depth_sum": 0,
            "depth_max": 0, "rate_max": 0, "faults": 0}


def encode(session, carts):
    """The record's lines: the session's, then one per cartridge, newest first."""
    lines = [wire.frame(wire.text("SESSION", [(k, session[k]) for k in SESSION])) + "\n"]
    for cart, strokes, n in carts[:_KEPT]:
        lines.append(wire.frame(wire.text("CART", [("id", cart), ("n", strokes), ("s", n)]))
                     + "\n")
    return lines


def decode(lines):
    """(session, carts) of the record's lines (a file: read a line at a time)."""
    session = None
    carts = []  # type: list
    for line in lines:
        if len(carts) > _KEPT or len(line) > _LINE:
            raise P.ProtocolError("MALFORMED", "not a treatment record")
        name, args, _ = wire.split_text(wire.unframe(line))
        if name == "SESSION":
            session = new_session()
            for k, v in args:
                session[k] = v if k == "cart" else int(v)
        elif name == "CART":
            carts.append([args[0][1], int(args[1][1]), int(args[2][1])])
    if session is None:
        raise P.ProtocolError("MALFORMED", "no SESSION line")
    return session, carts


def load():
    """(session, carts, problem): the record; a fresh one, and why, if it cannot be read
    (the cartridges' own marks still refuse a used one). NEW alone is a save a power cut
    stopped before its rename: whole, it is the record (on FAT the old one was removed
    first); torn, that save never happened (START had not gone on: nothing ran)."""
    try:
        with open(FILE) as f:
            return decode(f) + (None,)
    except OSError as e:
        if e.errno != errno.ENOENT:
            return new_session(), [], "treatment record unreadable (%s)" % e
    except Exception as e:  # torn or foreign: not this board's record
        return new_session(), [], "treatment record rejected (%s)" % e
    try:
        with open(NEW) as f:
            return decode(f) + (None,)
    except Exception:
        return new_session(), [], None


def save(session, carts):
    settings.write_atomic(FILE, NEW, encode(session, carts))


# ---- what the commands do -------------------------------------------------------------------
def fold(cmds, session, carts):
    """The last run's figures (the controller's, since START) into the session and its
    cartridge's count; True if there was one."""
    ctl = cmds.ctl
    if not ctl.ran:
        return False
    a = ctl.acc
    session["needle_ms"] += a[3] * ctl.tick_ms
    session["strokes"] += a[0]
    session["depth_sum"] += a[2] * _CARRY + a[1]
    session["depth_max"] = max(session["depth_max"], a[4])
    session["rate_max"] = max(session["rate_max"], a[5])
    session["faults"] |= ctl.faults
    _now(cmds, session, "1")
    for c in carts:
        if c[0] == session["cart"]:
            c[1] += a[0]
    ctl.ran = 0
    return True


def _now(cmds, session, which):
    import clock

    session["t" + which] = clock.unix_now()
    session["boot" + which] = cmds.eventlog.boot
    session["up" + which] = cmds.ctl.status().up_ms


def end(cmds, session, why):
    """Close the open session: its record into the log (SESSION), the RTC's mark gone."""
    if not session["open"]:
        return
    s = session
    n = s["strokes"]
    fields = [("n", s["n"]), ("profile", P.PROFILES[s["profile"]][0]), ("cart", s["cart"]),
              ("t0", s["t0"]), ("t1", s["t1"]), ("up0", "%d:%d" % (s["boot0"], s["up0"])),
              ("up1", "%d:%d" % (s["boot1"], s["up1"])), ("needle_ms", s["needle_ms"]),
              ("strokes", n), ("dep", P.format_fixed(s["depth_sum"] // n if n else 0, 3)),
              ("dep_max", P.format_fixed(s["depth_max"], 3)),
              ("hz", P.format_fixed(n * 100000 // s["needle_ms"] if s["needle_ms"] else 0, 2)),
              ("hz_max", P.format_fixed(s["rate_max"], 2)), ("end", why),
              ("faults", P.mask_names(s["faults"], P.FAULTS))]
    cmds.ctl.post("SESSION", fields)
    s["open"] = 0
    import clock

    clock.set_mark(b"")


def _mark(n):
    return b"PEN" + bytes((n & 0xFF, n >> 8 & 0xFF))


def admit(cmds, missing):
    """START's cartridge checks, each refusal added to `missing`; with none there and none
    here, the cartridge is committed to the session (a new one opened if need be) before
    its needles move, and the controller given its stroke budget."""
    from cartridge import IdChip

    chip = IdChip(cmds.cartridge_pin)
    cart, why = read_id(chip.rom())
    if why:
        missing.append(why)
        return
    session, carts, problem = load()
    if problem:
        cmds.ctl.warn(P.W_LOG, problem)
    folded = fold(cmds, session, carts)
    same = session["open"] and session["cart"] == cart
    test = is_test(cart)
    row = decode_row(chip.read_row())
    # strokes so far: the most of the chip's count and this board's (a test cartridge's
    # count starts again with each session)
    used = max([c[1] for c in carts if c[0] == cart and same] + [0 if test or not row
                                                                  else row[0]])
    if test and not cmds.saved["test_mode"]:
        missing.append("test cartridge %s: accepted only in test mode" % cart)
    elif not same and not test:
        mine = [c for c in carts if c[0] == cart]
        if mine:
            missing.append("cartridge %s was used in session %d, which has ended: fit a new "
                           "one" % (cart, mine[0][2]))
        elif row and row[1]:
            missing.append("cartridge %s is marked used (pen %04x, session %d): fit a new one"
                           % (cart, row[1], row[2]))
    limit = cmds.stroke_limit
    if used >= limit:
        missing.append("cartridge %s is at its stroke limit (%d of %d): fit a new one"
                       % (cart, used, limit))
    if missing:
        if folded:  # the last run's figures, taken from the controller, are kept all the same
            save(session, carts)
        return
    if not same:
        _open(cmds, session, carts, cart, used)
    if folded or not same:
        save(session, carts)
    mark = encode_row(used, 0 if test else pen_tag(cmds.uid), session["n"])
    if chip.read_row() != mark and not chip.write_row(mark):
        missing.append("cartridge %s did not take its mark: refit it" % cart)
        return
    cmds.ctl.stroke_budget = limit - used


def _open(cmds, session, carts, cart, used):
    import clock

    if session["open"]:
        end(cmds, session, "cartridge")
    n = session["n"] + 1
    session.update(new_session())
    session["n"], session["open"], session["cart"] = n, 1, cart
    session["profile"] = cmds.ctl.caps.profile
    _now(cmds, session, "0")
    _now(cmds, session, "1")
    # once in the record, newest first (a test cartridge comes back session after session)
    carts[:] = [c for c in carts if c[0] != cart]
    carts.insert(0, [cart, used, n])
    clock.set_mark(_mark(n))


def run_ended(cmds):
    """After a run, once the needles are still: its figures into the record and onto the
    cartridge's chip."""
    session, carts, _ = load()
    if fold(cmds, session, carts):
        save(session, carts)
        _count_on_chip(cmds, session, carts)


def _count_on_chip(cmds, session, carts):
    """The session's cartridge's strokes onto its chip (a test cartridge carries none)."""
    strokes = [c[1] for c in carts if c[0] == session["cart"]]
    if strokes and not is_test(session["cart"]):
        from cartridge import IdChip

        # a cartridge pulled out meanwhile keeps its mark from START: the write fails
        IdChip(cmds.cartridge_pin).write_row(
            encode_row(strokes[0], pen_tag(cmds.uid), session["n"]))


def command(cmds, args):
    """SESSION: the open session's figures; with end=1 the operator ends it."""
    cmds.ctl.require_still("SESSION")
    session, carts, _ = load()
    changed = fold(cmds, session, carts)
    if args == [("end", "1")]:
        end(cmds, session, "operator")
        changed = True
    elif args:
        raise P.ProtocolError("MALFORMED", "SESSION takes nothing, or end=1")
    if changed:
        save(session, carts)
        _count_on_chip(cmds, session, carts)
    s = session
    return wire.pairs([("n", s["n"]), ("open", s["open"]), ("cart", s["cart"]),
                       ("needle_ms", s["needle_ms"]), ("strokes", s["strokes"])])


def boot(cmds):
    """At boot: an open session goes on after a reset that kept the RTC's mark (a watchdog,
    a panic, a brown-out), and ends after a power-off, which took the mark."""
    import clock

    session, carts, problem = load()
    if problem:
        cmds.ctl.warn(P.W_LOG, problem)
    if session["open"] and clock.mark() != _mark(session["n"]):
        end(cmds, session, "power-off")
        save(session, carts)
