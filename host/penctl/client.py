"""penctl.Pen: the pen over a serial port, one method per protocol command.

Long because: one method per protocol command, each with its reply's reading and its own
refusals, is the module's purpose; the session records' reading is in sessions.py.
"""

import random
import threading
import time

from . import keys, patience
from .errors import FaultError, LinkError, RefusedError
from .firmware import protocol as P
from .firmware import wire
from .keepalive import Keepalive
from .status import Status
from .transport import Transport

_BOOT_RETRACT_S = 6.0  # the longest a boot's retract may take: a homing timeout, and more


def _reason(command, message):
    """The board's refusal without its own "<command> refused: " (the error says it)."""
    head = "%s refused: " % command
    return message[len(head):] if message[: len(head)].upper() == head.upper() else message


class Pen:
    """Context manager over one serial port (any pyserial URL).

    Every method sends one command and returns when the board answered; refusals raise
    RefusedError, faults FaultError, link trouble LinkError, each with `.code`.
    """

    def __init__(self, port, timeout=None, retries=4, connect_timeout=None, baudrate=115200):
        """timeout: seconds to wait for each answer (1 s), connect_timeout: for the board
        to answer HELLO (8 s). Every wait a Pen's methods default to (these two, home 10 s,
        stop 5 s, reset 8 s, telemetry 1 s) is times PEN_TIMEOUT_SCALE (patience.py)."""
        timeout = patience.scaled(1.0) if timeout is None else timeout
        connect_timeout = patience.scaled(8.0) if connect_timeout is None else connect_timeout
        self.timeout = timeout
        self.retries = retries
        self.link = Transport(port, baudrate)
        self._seq = random.randrange(1, P.SEQ_MAX)
        self._seq_lock = threading.Lock()
        self.keepalive = Keepalive(self.link, self._next_seq)
        self.info = {}
        try:
            self._connect(connect_timeout)
        except BaseException:
            self.link.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the port; a motor still running is stopped first."""
        try:
            latest = self.link.latest or {}
            if self.keepalive.running or latest.get("st") == "RUNNING":
                self.request("STOP")
        except LinkError:
            pass
        finally:
            self.keepalive.stop()
            self.link.close()

    # ---- requests -------------------------------------------------------------------------
    def _next_seq(self, fresh=False):
        with self._seq_lock:
            if fresh:  # away from numbers another writer may have taken after ours
                self._seq = random.randrange(1, P.SEQ_MAX)
            self._seq = self._seq % P.SEQ_MAX + 1
            return self._seq

    def request(self, command, retries=None, **params):
        """Send a command; returns (fields, message) of its OK reply. Retries (the Pen's
        unless given) reuse the sequence number, so the board never runs a command twice.
        A number the board answered for another frame (SEQ_REUSED: another writer on the
        port, or a stale host) is refused without running; the command goes once more
        under a fresh number."""
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise RefusedError("%s must be a number, not %r" % (name, value), "BAD_VALUE")
        args = wire.request_fields(params)
        for fresh in (False, True):
            fields, message = self._exchange(command, self._next_seq(fresh), args, retries)
            if fields.get("err") != "SEQ_REUSED":
                break
        if "err" in fields:
            raise RefusedError("%s refused (%s): %s" % (command, fields["err"],
                                                        _reason(command, message)),
                               fields["err"])
        return fields, message

    def _exchange(self, command, seq, args, retries):
        """(fields, message) of the board's answer to seq, through resends."""
        line = wire.frame(wire.request(seq, command, args))
        boots = self.link.boots
        self.link.forget(seq)  # an answer to someone else's frame with this number
        tries = (self.retries if retries is None else retries) + 1
        timeouts = garbled = 0
        # A try is used up by a timeout. A garbled answer gets a resend at once without
        # using one: it may be the late answer to an earlier send (a slow host, a delayed
        # link), and counting those ran the tries out in a burst of resends.
        while timeouts < tries and garbled < 4 * tries:
            self.link.write_line(line)
            reply = self.link.wait_reply(seq, self.timeout, boots)
            if reply is None and self.link.at_repl:
                break  # frames typed into a Python prompt will never be answered
            if reply is None or reply[0].get("garbled"):
                if self.link.boots != boots:
                    # a restarted board has forgotten the sequence numbers it answered:
                    # no resend (the board also refuses it until a new HELLO)
                    raise self._restarted(command, "it may or may not have been done")
                timeouts += reply is None
                garbled += reply is not None
                continue  # lost, or the board could not read our frame: send it again
            if reply[0].get("err") == "RESTARTED":
                raise self._restarted(command, "it was not run")
            return reply
        raise self.link.no_answer(command, self.retries + 1)

    def _restarted(self, command, outcome):
        """The LinkError for a board that restarted under a request; the Pen says HELLO
        again, so the next request finds the board listening."""
        try:
            self._connect(self.timeout * (self.retries + 1))
        except LinkError:
            pass
        return LinkError("the board restarted (reset cause %s) while %s was pending, so %s: check "
                         "its state (`pen status`, `pen log`)" % (self.info.get("reset", "?"),
                                                                  command, outcome), "RESET")

    def _connect(self, deadline_s):
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                fields = self._hello()
                break
            except LinkError:
                if time.monotonic() > deadline or self.link.at_repl:
                    raise
        if int(fields.get("proto", -1)) != P.PROTOCOL_VERSION:
            raise LinkError("board speaks protocol %s, this host speaks %d: deploy matching "
                            "firmware" % (fields.get("proto"), P.PROTOCOL_VERSION), "PROTOCOL")
        self.info = fields
        # a board that has just booted first brings the needles in to its home switch
        # (st=BOOT, bounded by its homing timeout); it takes commands once they are in
        settled = time.monotonic() + max(deadline_s, _BOOT_RETRACT_S)
        while self.status().state == "BOOT" and time.monotonic() < settled:
            time.sleep(0.05)

    def _hello(self):
        """HELLO with this host's clock for the board's (its session records' times)."""
        try:
            return self.request("HELLO", time=int(time.time()))[0]
        except RefusedError as e:  # a firmware from before the board kept the time
            if e.code != "MALFORMED":
                raise
            return self.request("HELLO")[0]

    # ---- commands ---------------------------------------------------------------------------
    def status(self):
        return Status.from_fields(self.request("STATUS")[0])

    def home(self, timeout=None):
        """Home the depth actuator; returns the status once READY (wait_for's timeout)."""
        self.request("HOME")
        return self.wait_for("READY", patience.scaled(10.0) if timeout is None else timeout)

    def set(self, depth_mm=None, rate_hz=None, **params):
        """Set parameters (depth_mm, rate_hz, telemetry, link_timeout, run_limit)."""
        if depth_mm is not None:
            params["depth"] = depth_mm
        if rate_hz is not None:
            params["rate"] = rate_hz
        if not params:
            raise RefusedError("set() needs at least one parameter", "MALFORMED")
        self.request("SET", **params)

    def get(self):
        return self.request("GET")[0]

    def start(self):  # a keepalive runs until stop(), a fault or close()
        self.request("START")
        self.keepalive.start()

    def stop(self, timeout=None):
        """Ramp the motor down; the status once it reports a state other than RUNNING, or
        LinkError (TIMEOUT): an answer to STOP is no proof (another writer can make one).
        timeout=0: None once STOP is answered, for a caller that shows the state (monitor)."""
        timeout = patience.scaled(5.0) if timeout is None else timeout
        try:
            self.request("STOP")
            if not timeout:
                return None
            deadline = time.monotonic() + timeout
            while True:
                st = self.status()
                if st.state in P.STATES and st.state != "RUNNING":
                    return st
                if time.monotonic() > deadline:
                    raise LinkError(
                        "the board still reports %s %.1f s after STOP: it has not stopped; "
                        "the keepalive ends now, so its link timeout stops it, else press the "
                        "e-stop" % (st.state, timeout), "TIMEOUT")
                time.sleep(0.05)
        finally:
            self.keepalive.stop()

    def clear(self):
        return self.request("CLEAR")[0].get("st")

    def faults(self):  # latched faults: dicts with code, detail and readings
        fields, message = self.request("FAULTS")
        return [{"code": code, "detail": detail, "readings": readings}
                for code, detail, readings in wire.fault_items(message)]

    def reset(self, timeout=None):
        """Restart the board (refused while running), reconnect; returns HELLO's fields."""
        self.request("RESET")
        self.link.at_repl = False
        time.sleep(0.2)
        self._connect(patience.scaled(8.0) if timeout is None else timeout)
        return self.info

    def service(self):
        """Restart the board into service mode (no app, no watchdog): the REPL is free for
        mpremote. Leave it by removing /service and resetting. Keyed (keyed())."""
        self.keyed("SERVICE")

    def keyed(self, command, **params):
        """A command only the board key's holder may give (firmware/auth.py): CHALLENGE, then
        the command with mac=; keys.MissingKeyError without the key, AUTH if refused."""
        return keys.keyed(self, command, params)

    def config(self, **values):
        """The saved settings (profile, telemetry, link_timeout, run_limit, and source:
        "saved" or "defaults"); with values, sets and saves them first (keyed() for the
        calibration: current_zero, supply_gain)."""
        return keys.config(self, values)

    def defaults(self):
        """Save and apply the safe defaults (the first, most restrictive profile); the
        unit's calibration is kept."""
        fields, _ = self.request("DEFAULTS")
        return fields

    def use_profile(self, name):
        """Switch the treatment profile (saved; refused while running)."""
        return self.config(profile=name)

    def log(self, since=0):
        """Event log records from record number `since` on, oldest first: dicts with seq,
        boot, uptime_ms, event (BOOT, STATE, FAULT, CLEAR, WARN, PROFILE, LOST) and text."""
        records = []
        while True:
            fields, message = self.request("LOG", since=since)
            for seq, boot, up, text in wire.log_records(message):
                records.append({"seq": seq, "boot": boot, "uptime_ms": up,
                                "event": wire.split_text(text)[0], "text": text})
            following = int(fields["next"])
            if following == since:
                return records
            since = following

    def session(self, end=False):
        """The treatment session under way (or the last): number, open, cartridge, time
        needling and strokes; end=True ends it (refused while running)."""
        fields, _ = self.request("SESSION", **({"end": 1} if end else {}))
        return fields

    def sessions(self):
        """The finished sessions in the board's log, oldest first (sessions.Session)."""
        from .sessions import from_log

        return from_log(self.log())

    def diag(self):
        fields, _ = self.request("DIAG")
        return {k: int(v) for k, v in fields.items()}

    def telemetry(self, timeout=None, fresh=True):
        """Iterate Status objects from telemetry lines that arrive from now on; with
        fresh=False, first the lines already received and not yet taken (up to the
        transport's queue, possibly seconds old). LinkError after `timeout` s of silence."""
        timeout = patience.scaled(1.0) if timeout is None else timeout
        while fresh and not self.link.telemetry.empty():
            self.link.telemetry.get_nowait()
        while True:
            yield Status.from_fields(self.link.next_telemetry(timeout))

    def events(self):
        """Events received so far: list of (name, fields, message)."""
        out = []
        while not self.link.events.empty():
            out.append(self.link.events.get_nowait())
        return out

    def wait_for(self, state, timeout=None):
        """The status once the board reports `state`; FaultError if it faults first."""
        timeout = patience.scaled(10.0) if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st.state == state:
                return st
            if st.state in ("FAULT", "ESTOP"):
                raise FaultError("board went to %s with %s while waiting for %s" % (
                    st.state, ",".join(st.faults), state),
                    st.faults[0] if st.faults else st.state)
            if time.monotonic() > deadline:
                raise LinkError("board still %s after %.1f s, expected %s" % (
                    st.state, timeout, state), "TIMEOUT")
            time.sleep(0.05)
