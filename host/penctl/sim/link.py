"""The virtual board's USB-UART: a bridge between the host's PTY and the VM's stdio.

It carries bytes both ways through the chip's UART as uart.py models it (115200 baud, the
TX FIFO the firmware waits on, the RX ring, "\\n" out as "\\r\\n"), turns Ctrl-C from the
host into SIGINT for a VM that catches it (as the ESP32's UART driver turns it into
KeyboardInterrupt while the interrupt character is set) and passes it on as a byte
otherwise (at the REPL, or after `micropython.kbd_intr(-1)`), and can drop, corrupt,
duplicate, delay or cut the traffic to test the protocol's integrity checks. The ROM's
serial loader (rom.py) is not paced: it answers at once.

Long because: one thread's pass carries every direction and every client (the PTY, the
socket:// clients, the RFC 2217 tap) under one lock, which the tests' starved() and
stalled() hold as a busy host would; split up, its parts would share that state anyway.
"""

import collections
import contextlib
import errno
import fcntl
import os
import random
import select
import socket
import termios
import threading
import time
import tty

from . import uart
from .vm import simhw

CTRL_C = 0x03
_REPL_MARKERS = (b">>> ", b"raw REPL; CTRL-B to exit\r\n>")


def open_vm_channel():
    """(bridge's end, VM's end) of the VM's stdin, then of its stdout. Its stdin: a Unix
    socket pair, not a PTY. A PTY
    hands every write to a kernel worker thread before the reader sees it, and a VM polling
    its PTY waits for that worker in uninterruptible sleep: on a busy host seconds at a
    time that no run-queue figure shows and the chip's clock counted (a watchdog reset of
    a VM that was only waiting). The host's side stays a real PTY. The VM's stdout is a
    pipe (uart.open_vm_stdout()): its page, unlike a socket's buffer, holds a number of
    bytes, not of writes, before the VM blocks."""
    bridge_end, vm_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    bridge_end.setblocking(False)
    return (bridge_end.detach(), vm_end) + uart.open_vm_stdout()


def open_raw_pty():
    """(master, slave) of a new pseudo-terminal in raw mode (no echo, no \\r\\n mapping)."""
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    return master, slave


class LinkBridge:
    def __init__(self, vm_master, vm_out, vm_in_fd, on_ctrl_c, on_pass=lambda now: None,
                 lag_s=lambda: 0.0, vm_writing=lambda: False, regs=None):
        self.vm_master = vm_master  # the VM's stdin, written
        self.vm_out = vm_out  # the VM's stdout, read as far as the TX FIFO has room
        self.vm_in_fd = vm_in_fd  # the VM's own end of its stdin: what it has not read
        self._chip = uart.ChipTime(lag_s, time.monotonic())
        self.vm_writing = vm_writing  # whether the VM is blocked in a write to its stdout
        self.regs = regs
        self._tx, self._rx = uart.Wire(), uart.Wire()  # to the host, to the VM
        self._cook = uart.Cook()
        self._vm_busy = False  # drain_vm() or stalled() had the VM's stdout at the last try
        # the TX queue, which the chip's own messages (send_to_host) and drain_vm() fill
        # from other threads: held for a moment only (starved() holds the pass for seconds)
        self._tx_lock = threading.Lock()
        self.on_pass = on_pass  # after each pass, with the time it began
        self.host_master, self._host_slave = open_raw_pty()
        self.host_port = os.ttyname(self._host_slave)
        # an in-process client that owns the UART meanwhile (the RFC 2217 server): the
        # bridge's end of its socket pair; the PTY is left alone while it is attached
        self.tap = None
        self._closing = []  # taps let go, closed by this thread alone: never under its select
        # socket:// clients (VirtualBoard.url) on the UART beside the PTY, each seeing all
        # it sends: their bytes never cross a PTY either
        self.clients = []
        self.on_ctrl_c = on_ctrl_c
        self.cut = False
        self.at_repl = False
        self._rom = None  # a RomLoader while the chip sits in its serial bootloader
        self.raw_repl = False
        self._tail = collections.deque(maxlen=64)
        self._recent = b""
        self._stop = threading.Event()
        self._pending = []  # (due, fd, bytes) for delayed traffic
        # one reader of the VM's output at a time: this thread, or drain_vm() for a VM
        # that has ended, whose last output says where it left off
        self._vm_lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self._stalled_s = 0.0  # host time this thread was kept from running (see run())
        self._held_at = time.monotonic()  # the last pass's start, under the pass lock
        self._last_pass = time.monotonic()
        self.set_faults(0.0, 0.0, 0.0, 0.0, None)
        self.stats = {"to_vm": 0, "to_host": 0, "dropped": 0, "corrupted": 0,
                      "rx_overflow": 0, "kbd_printed": 0}

    @property
    def rom(self):
        return self._rom

    @rom.setter
    def rom(self, loader):
        """The ROM's serial loader owns the UART (None: MicroPython does). Entering it is a
        reset: what the UART still had to send of MicroPython's is gone, as from a reset
        chip's FIFO (esptool reads the ROM's answers, nothing else)."""
        if loader is not None:
            with self._tx_lock:
                self._tx.clear()
            self._rx.clear()
        self._rom = loader

    def set_faults(self, drop, corrupt, duplicate, delay_s, seed):
        self._drop, self._corrupt, self._dup, self._delay = drop, corrupt, duplicate, delay_s
        self._rng = random.Random(seed)

    def vm_started(self, raw=False):
        # what the last VM wrote first: the chip's reset waits for its UART to send what it
        # holds (the IDF's restart waits for the console's TX to be idle), and the VM may
        # have run a pipe's page ahead of the chip (uart.py)
        self.drain_vm()
        self.at_repl = False
        self.raw_repl = False
        self._recent = b""
        self._chip.new_vm()
        if raw:  # back into the raw REPL the soft reset came from
            self._write(self.vm_master, b"\x01")

    def stop(self):
        self._stop.set()

    def attach(self):
        """The UART for an in-process client (the RFC 2217 server), as the client's end of
        a socket pair, until detach(). A port has one owner, as on a real board; and the
        client's bytes never cross a PTY, whose kernel worker a busy host can hold up for a
        minute and more (docs/figures.md, "Figures")."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        mine.setblocking(False)
        with self._pass_lock:
            self._detach()
            self.tap = mine.detach()
        return theirs

    def detach(self):
        with self._pass_lock:
            self._detach()

    def _detach(self):
        # closed at this thread's next pass: closed from another thread while this one
        # selects on it, the descriptor ended the thread (EBADF) and the board went silent
        if self.tap is not None:
            self._closing.append(self.tap)
            self.tap = None

    def _close_detached(self):
        while self._closing:
            os.close(self._closing.pop())

    def add_client(self, fd):
        """A socket:// client's connection (its fd), on the UART until it closes. Its
        receive buffer is a tty's, not TCP's megabytes: a client writing faster than the
        baud rate waits (uart.HOST_BUFFER)."""
        conn = socket.socket(fileno=fd)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, uart.HOST_BUFFER)
        conn.detach()
        os.set_blocking(fd, False)
        with self._pass_lock:
            self.clients.append(fd)

    def _let_go(self, fd):
        # this thread's own, as a detached tap is: never closed under its select
        if fd == self.tap:
            self._detach()
        elif fd in self.clients:
            self.clients.remove(fd)
            self._closing.append(fd)

    def _hosts(self):
        """What the UART talks to now: the RFC 2217 server alone, or the PTY and the
        socket clients."""
        return [self.tap] if self.tap is not None else [self.host_master] + self.clients

    def close(self):
        with self._pass_lock:
            self._detach()
            for fd in list(self.clients):
                self._let_go(fd)
        self._close_detached()  # this thread has ended (the board joined it)
        for fd in (self.host_master, self._host_slave, self.vm_master, self.vm_out):
            try:
                os.close(fd)
            except OSError:
                pass

    def run(self):
        self._last_pass = time.monotonic()
        wait = 0.02
        while not self._stop.is_set():
            hosts = self._hosts()
            # the host's writes wait while the UART has a host buffer's worth to send
            heard = hosts if self.rom is not None or \
                len(self._rx.queue) < uart.HOST_BUFFER else []
            vm = [self.vm_out] if self._tx_room() > 0 and not self._vm_busy else []
            ready, _, _ = select.select(heard + vm, [], [], wait)
            # a pass is due every 20 ms at most: a longer gap is a host that starved this
            # thread, while a VM writing more than its channel holds waited for it
            now = time.monotonic()
            self._stalled_s += max(0.0, now - self._last_pass - 0.03)
            self._last_pass = now
            with self._pass_lock:  # starved() holds it as a busy host holds this thread
                self._count_held()
                self._close_detached()
                chip = self._chip.now(now)
                for host in hosts:
                    if host in ready and host in self._hosts():
                        data = self._read(host)
                        if not data and host != self.host_master:  # a client closed its end
                            self._let_go(host)
                        self._from_host(data, chip)
                self._to_vm(chip)
                self._to_host(chip)
                self._vm_busy = not self._vm_lock.acquire(blocking=False)
                if not self._vm_busy:
                    try:
                        self._take_from_vm(chip, self._tx_room())
                    finally:
                        self._vm_lock.release()
                self._flush_pending()
                self.on_pass(now)
                with self._tx_lock:
                    waits = [w for w in (self._tx.wait_s(chip), self._rx.wait_s(chip))
                             if w is not None]
                wait = max(0.0005, min([0.02] + waits))

    def _count_held(self):
        """A VM blocked writing to its stdout when this thread comes back from a stall
        (the host's, or starved()) waited on the host, not on the chip's UART: the stall
        goes to the time its clock leaves out (simhw.waiting()), as a VM waits for a link
        the host holds at its peripherals (machine.py). The whole stall less those waits:
        more is no worse than the chip waiting a little longer for its link, off its clock."""
        now = time.monotonic()
        gap, self._held_at = now - self._held_at, now
        # less what the VM told its clock left out meanwhile (its waits at its peripherals
        # for this link, machine.py): counted twice, its clock stood still after the stall
        told = self._chip.told()
        if gap - told > 0.03 and self.regs is not None and self.vm_writing():
            gap -= told
            # with inject("starve")'s stops: one register the VM already reads (a new one
            # cost the VM's tight heap the block a 60 KB board's minimal lockout needs)
            held = self.regs[simhw.H_STOPPED_MS] + int(gap * 1000)
            self.regs[simhw.H_STOPPED_MS] = held & 0xFFFFFFFF

    def _tx_room(self):
        # the FIFO's 128 bytes and the one in the shift register
        with self._tx_lock:
            return uart.TX_FIFO + 1 - len(self._tx.queue)

    def _take_from_vm(self, chip, room):
        while room > 0:
            data = self._read(self.vm_out, room)
            if not data:
                return
            self._from_vm(data, chip)
            room -= len(data)

    def _to_vm(self, chip):
        """The host's bytes whose time on the wire is over, into the chip's RX: Ctrl-C as
        the interrupt handler takes it, the rest into the ring, or lost when it is full."""
        data = self._rx.due(chip)
        if not data:
            return
        out = bytearray()
        held = self._unread()
        for b in data:
            if b == CTRL_C and self.on_ctrl_c():
                continue  # became a KeyboardInterrupt
            if held + len(out) >= uart.RX_RING:
                self.stats["rx_overflow"] += 1
                continue
            out.append(b)
        self.stats["to_vm"] += len(out)
        self._send(self.vm_master, bytes(out))

    def _unread(self):
        try:
            return int.from_bytes(fcntl.ioctl(self.vm_in_fd, termios.FIONREAD, b"\0" * 4),
                                  "little")
        except OSError:
            return 0

    def _to_host(self, chip):
        with self._tx_lock:
            data = self._tx.due(chip)
        if not data or self.cut:  # a cut wire: the chip sends into nothing
            return
        data = self._degrade(data)
        self.stats["to_host"] += len(data)
        self._send(None, data)

    def line_ends(self):
        """Chip times (s) the last line's "\n" reached the chip and left it: a round trip
        in the chip's own time, without the host's scheduling on either side."""
        return self._rx.eol_at, self._tx.eol_at

    def stalled_s(self, now):
        """Host time this thread has been kept from running, the stall it is in now
        included: the VM may be waiting on it this moment (a full channel), and the
        watchdog must not judge that time before this thread runs again to count it."""
        return self._stalled_s + max(0.0, now - self._last_pass - 0.03)

    def drain_vm(self):
        """Take in everything the VM wrote, so at_repl and raw_repl tell where a VM that
        has just ended left off. A busy host may not have run this thread since: deploy's
        last step, leaving the raw REPL and a soft reset at once, was judged by the raw
        REPL's prompt and the board came back into the raw REPL, not its firmware."""
        with self._vm_lock:
            chip = self._chip.t
            data = self._read(self.vm_out)
            while data:
                self._from_vm(data, chip)
                data = self._read(self.vm_out)

    @contextlib.contextmanager
    def starved(self):
        """For tests: the bridge's thread carries nothing either way meanwhile, as when
        the host keeps it from running (its stall counted as such)."""
        with self._pass_lock:
            yield

    @contextlib.contextmanager
    def stalled(self):
        """For tests: the bridge takes in nothing from the VM meanwhile, as when the host
        keeps its thread from running."""
        with self._vm_lock:
            yield

    @staticmethod
    def _read(fd, n=4096):
        # nothing (EAGAIN), a PTY nobody holds (EIO), or a tap whose client went with bytes
        # unread (ECONNRESET: it ended the link thread, and the board went silent)
        try:
            return os.read(fd, n)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EIO, errno.ECONNRESET):
                return b""
            raise

    def _from_host(self, data, chip):
        if not data or self.cut:
            return
        if self.rom is not None:  # the ROM bootloader owns the UART; the VM is not running
            self._send(None, self.rom.feed(self._degrade(data)))
            return
        self._rx.put(self._degrade(data), chip)

    def _from_vm(self, data, chip):
        if not data or self._rom is not None:  # a killed VM's last output, after the reset
            return
        data = self._cook(data)
        with self._tx_lock:
            self._tx.put(data, chip)
        self._tail.append(data)
        seen = self._recent[-20:] + data  # a KeyboardInterrupt it printed (VmProcess)
        self.stats["kbd_printed"] += seen.count(b"KeyboardInterrupt") - \
            self._recent[-20:].count(b"KeyboardInterrupt")
        self._recent = (self._recent + data)[-64:]
        # the prompt seen last tells which REPL: not necessarily at the end of a read
        # (drain_vm() takes in a prompt and the echo of the Ctrl-D after it at once)
        friendly, raw = (self._recent.rfind(m) for m in _REPL_MARKERS)
        if friendly >= 0 or raw >= 0:
            self.at_repl = True
            self.raw_repl = raw > friendly

    def send_to_host(self, data):
        """What the chip prints outside MicroPython (a reset's text, the ROM's): after what
        the UART still has to send, at its pace; the ROM's loader at once."""
        if self.rom is not None:
            self._send(None, data)
            return
        with self._tx_lock:
            self._tx.put(data, self._chip.t)

    def _degrade(self, data):
        if not (self._drop or self._corrupt or self._dup):
            return data
        out = bytearray()
        rng = self._rng
        for b in data:
            if rng.random() < self._drop:
                self.stats["dropped"] += 1
                continue
            if rng.random() < self._corrupt:
                b ^= 1 << rng.randrange(7)
                if b == CTRL_C:  # noise that forges Ctrl-C is a realtime STOP (safe, and a
                    b ^= 0x40  # test of its own in test_lifecycle); here it stays garbage
                self.stats["corrupted"] += 1
            out.append(b)
            if rng.random() < self._dup:
                out.append(b)
        return bytes(out)

    def _send(self, fd, data):
        """data to the VM (fd: vm_master) or the host (fd None: whoever owns the UART when
        the bytes go out)."""
        if not data:
            return
        if self._delay:
            self._pending.append((time.monotonic() + self._delay, fd, data))
            return
        self._deliver(fd, data)

    def _deliver(self, fd, data):
        for out in self._hosts() if fd is None else [fd]:
            self._write(out, data)

    def _flush_pending(self):
        now = time.monotonic()
        while self._pending and self._pending[0][0] <= now:
            _, fd, data = self._pending.pop(0)
            self._deliver(fd, data)

    @staticmethod
    def _write(fd, data):
        # A full buffer means nobody is reading: the bytes are lost, as on a UART; so are
        # bytes for a client that has just gone (the RFC 2217 server's end, closed)
        try:
            os.write(fd, data)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EIO, errno.EPIPE, errno.ECONNRESET,
                               errno.EBADF):
                raise

    def vm_output_tail(self):
        return b"".join(self._tail)[-4000:].decode("utf-8", "replace")
