"""Line transport over pyserial: opens any pyserial URL, reads board lines on a thread
and sorts them into replies (by sequence number), events and telemetry."""

import collections
import queue
import re
import threading
import time

import serial

from . import patience
from .errors import LinkError
from .firmware import app_mode, wire
from .firmware import protocol as P

REPL_MARKERS = (">>> ", "raw REPL; CTRL-B to exit")
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"
# what the board prints when main.py finds the service flag (firmware/main.py)
SERVICE_BANNER = "pen: service mode"
# Read-only, and its echo (the friendly REPL echoes) cannot match PROBE_ANSWER.
PROBE = "import os;_l=os.listdir();print('pen-'+'probe',%r in _l,'main.py' in _l or " \
        "'main.mpy' in _l)"
PROBE_ANSWER = re.compile(rb"pen-probe (True|False) (True|False)")

if "penctl.urlhandler" not in serial.protocol_handler_packages:  # socket:// with a count
    serial.protocol_handler_packages.insert(0, "penctl.urlhandler")


def open_exclusive(port, baudrate, tries=6):
    """The port, locked against other programs. A port another program has just closed can
    stay locked for a moment (a thread still inside a read on it keeps the file, and its
    lock, until the read returns: seen under load), so a lock is tried for about a second."""
    for attempt in range(tries):
        try:
            return serial.serial_for_url(port, baudrate=baudrate, timeout=0.05, exclusive=True)
        except serial.SerialException as e:
            if "lock" not in str(e) or attempt == tries - 1:
                raise LinkError("cannot open %s: %s; check the port name and that no other "
                                "program (mpremote, a terminal) holds it" % (port, e),
                                "OPEN") from e
            time.sleep(0.2)


class Transport:
    def __init__(self, port, baudrate=115200):
        self.serial = open_exclusive(port, baudrate)
        self.port = port
        self.serial.reset_input_buffer()
        self._replies = {}
        self._cond = threading.Condition()
        self.events = queue.Queue()
        self.telemetry = queue.Queue(maxsize=1000)
        self.latest = None  # last telemetry fields
        self.noise = collections.deque(maxlen=40)  # lines that were not frames
        self.counts = collections.Counter()
        self.at_repl = False
        self.heard = b""  # the last bytes read, for probe_repl()
        self.boots = 0  # BOOT events seen: a restart forgets the board's answered requests
        self.passed_at = time.monotonic()  # the reader's last pass, its lines sorted
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._read_loop, daemon=True, name="pen-reader")
        self._thread.start()

    def close(self):
        """Close the port, and its lock with it: the next program (mpremote) can open it
        once this returns. The reader leaves within one read timeout of being run; a busy
        host may take seconds to run it, and a port closed under a read stays held (the
        read keeps the file) until the read returns."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.serial.close()

    def write_line(self, line):
        with self._write_lock:
            try:
                self.serial.write(line.encode("ascii") + b"\n")
                self.serial.flush()
            except (serial.SerialException, OSError) as e:
                raise LinkError("writing to %s failed: %s" % (self.port, e)) from e

    def write_raw(self, data):
        with self._write_lock:
            self.serial.write(data)

    def _read_loop(self):
        pending = b""
        while not self._stop.is_set():
            try:
                chunk = self.serial.read(self.serial.in_waiting or 1)
            except (serial.SerialException, OSError, TypeError):
                if self._stop.is_set():
                    return
                self.counts["read_errors"] += 1
                self._stop.wait(0.05)
                continue
            if not chunk:
                if any(pending.decode("ascii", "replace").endswith(m) for m in REPL_MARKERS):
                    self.at_repl = True
                self.passed_at = time.monotonic()
                continue
            pending += chunk
            self.heard = (self.heard + chunk)[-1024:]
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._dispatch(raw.decode("ascii", "replace").strip())
            self.passed_at = time.monotonic()

    def next_telemetry(self, timeout):
        """The next telemetry line's fields. LinkError once this reader has looked for
        `timeout` s and found none: a busy host that did not run the reader for a second
        (the board's lines waiting in the kernel) is not a silent board; 200 passes beside
        two CPU-bound processes and more work failed 6 on a wall-clock second."""
        deadline = time.monotonic() + timeout
        ceiling = deadline + patience.scaled(30.0)  # a reader that never runs again
        while True:
            looked = self.passed_at > deadline  # all that pass found is queued by now
            try:
                return self.telemetry.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                if looked or time.monotonic() > ceiling:
                    raise LinkError("no telemetry for %.1f s; is telemetry off (SET "
                                    "telemetry=0)?" % timeout, "NO_TELEMETRY") from None

    def _dispatch(self, line):
        if not line:
            return
        try:
            kind, key, fields, message = wire.parse(line)
        except P.ProtocolError:
            self.counts["bad_lines"] += 1
            self.noise.append(line)
            if any(m in line for m in REPL_MARKERS):
                self.at_repl = True
            return
        self.at_repl = False
        self.counts[kind] += 1
        if kind == "reply":
            with self._cond:
                self._replies[key] = (fields, message)
                if len(self._replies) > 64:  # answers nobody waits for any more (late ones)
                    del self._replies[next(iter(self._replies))]
                self._cond.notify_all()
        elif kind == "event":
            if key == "BOOT":
                self.boots += 1
                with self._cond:
                    self._cond.notify_all()
            self.events.put((key, fields, message))
        else:
            self.latest = fields
            if self.telemetry.full():
                self.telemetry.get_nowait()
            self.telemetry.put(fields)

    def no_answer(self, command, tries):
        """The LinkError for frames nobody answered: what holds the port (probe_repl()),
        and what to do about it."""
        port = self.port
        kind, service, main = self.probe_repl()
        if service:
            return LinkError(
                "the board on %s is in service mode: the pen firmware does not run, and a "
                "reset brings it back to service mode; leave it with `mpremote connect %s fs "
                "rm :service + reset` (`pen deploy` also leaves it)" % (port, port), "REPL")
        where = {"raw": "MicroPython's raw REPL (where mpremote or another tool left it)",
                 "repl": "the MicroPython REPL"}.get(kind)
        if where and main is False:
            return LinkError("the board on %s is at %s and has no pen firmware on its flash: "
                             "deploy it with `pen deploy`" % (port, where), "REPL")
        if kind == "raw":
            return LinkError("the board on %s is at %s, not running the pen firmware: reset "
                             "it with `mpremote connect %s reset`, its EN button or a power "
                             "cycle" % (port, where, port), "REPL")
        if kind == "repl":
            return LinkError("the board on %s is at %s, not running the pen firmware: "
                             "soft-reset it (Ctrl-D in a terminal, or `mpremote connect %s "
                             "reset`) or power-cycle it" % (port, where, port), "REPL")
        return LinkError("no answer to %s from %s after %d tries; check the cable and that "
                         "the pen firmware is running" % (command, port, tries), "NO_ANSWER")

    def probe_repl(self, wait=1.5):
        """What holds the port when frames go unanswered: (kind, service, main) with kind
        "repl" (MicroPython's friendly REPL), "raw" (its raw REPL) or None (silence, or
        something else); service and main (None if unknown): whether the pen's service
        flag and a main.py are on the board's flash. Neither REPL is left in another mode
        (a friendly REPL that answers late is taken back out of the raw REPL the probe's
        Ctrl-A put it in), and the firmware ignores an empty line and control bytes."""
        self.heard = b""
        self.write_raw(b"\r\n")  # the friendly REPL answers with its prompt
        if self._hear(lambda h: h.endswith(b">>> "), wait):
            kind, run = "repl", b"\r\n"
        else:
            self.write_raw(b"\x01")  # the raw REPL starts over, dropping our frames, and says so
            # the last chance to hear anything: twice the patience (a busy virtual board)
            if not self._hear(lambda h: h.endswith(RAW_PROMPT), 2 * wait):
                return None, None, None
            kind, run = "raw", b"\x04"
            if b">>> " in self.heard[: self.heard.rfind(RAW_PROMPT)]:
                # the friendly REPL did answer, late (a busy board), and our Ctrl-A took it
                # into the raw REPL: back to where it was
                self.heard = b""
                self.write_raw(b"\x02")
                self._hear(lambda h: h.endswith(b">>> "), wait)
                kind, run = "repl", b"\r\n"
        self.at_repl = True
        self.heard = b""
        self.write_raw((PROBE % app_mode.SERVICE_FLAG).encode() + run)
        found = self._hear(PROBE_ANSWER.search, 4 * wait)  # compiled and run: a busy board
        if not found:
            banner = any(SERVICE_BANNER in line for line in self.noise)
            return kind, True if banner else None, None
        return kind, found.group(1) == b"True", found.group(2) == b"True"

    def _hear(self, test, wait):
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            found = test(self.heard)
            if found:
                return found
            time.sleep(0.02)
        return test(self.heard)

    def forget(self, seq):
        """Drop a reply for seq that arrived before its request was sent."""
        with self._cond:
            self._replies.pop(seq, None)

    def wait_reply(self, seq, timeout, boots=None):
        """(fields, message) for seq, or None on timeout or when the board restarts (a
        BOOT event while boots was the count). A '-' error (garbled frame) is returned
        too, so the caller can resend at once."""
        with self._cond:
            self._cond.wait_for(lambda: seq in self._replies or None in self._replies
                                or (boots is not None and self.boots != boots), timeout)
            if seq in self._replies:
                return self._replies.pop(seq)
            if None in self._replies:
                fields, message = self._replies.pop(None)
                return dict(fields, garbled=True), message
            return None
