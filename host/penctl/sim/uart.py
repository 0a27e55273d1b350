"""The ESP32's UART0 (the REPL's, behind the DevKitC's USB-UART) as the firmware and the
host see it, for the link bridge (link.py). Read from ports/esp32 at v1.26.0:
- 115200 baud 8N1, 10 bits a byte, both ways: a byte reaches the other side BYTE_S after
  the one before it, never sooner.
- TX: uart.c's uart_stdout_tx_strn() puts what fits into the 128-byte hardware FIFO and
  waits one RTOS tick (ulTaskNotifyTake(pdFALSE, 1): 10 ms) for room, again and again, so
  a write blocks the firmware until all but the FIFO's last 128 bytes are on the wire,
  and nothing is ever lost. Here the VM's stdout is a pipe the bridge reads only as far as
  the FIFO has room: the VM blocks in its write once the pipe is full too. A pipe holds a
  page at least (4096 bytes, F_SETPIPE_SZ's floor), so the VM may run up to that far ahead
  of the chip before it blocks; that page also carries a host that keeps the bridge's
  thread from running for a moment (0.36 s of output at full rate) without the firmware
  seeing a slower UART than the chip's.
- RX: uart.c's interrupt handler turns the interrupt character (Ctrl-C, while set) into a
  KeyboardInterrupt as the byte arrives, and puts every other byte into mphalport.c's
  stdin_ringbuf (260 bytes, py/ringbuf.h keeps one free: 259 hold); a byte that finds it
  full is lost. Here the ring is what the VM has not read of its stdin (FIONREAD).
- "\\n" goes out as "\\r\\n": print() and sys.stdout.write() go through
  mp_hal_stdout_tx_strn_cooked (shared/runtime/sys_stdio_mphal.c). The unix VM leaves that
  to a terminal it does not have, so the bridge does it here, for every "\\n" not already
  after a "\\r" (the VM writes "\\r\\n" itself where the port does); sys.stdout.buffer's bare
  "\\n", which the chip sends as it is, gets its "\\r" too: the VM's stdout cannot tell the
  two apart.
Times are the chip's (ChipTime): a host that keeps the VM from running does not drain the
FIFO meanwhile, as the chip's clock leaves that time out.
"""

import fcntl
import os
import re

BAUD = 115200
BYTE_S = 10 / BAUD
TX_FIFO = 128  # SOC_UART_FIFO_LEN
RX_RING = 259  # stdin_ringbuf_array[260], one slot kept free
PIPE_BYTES = 4096
CHUNK = 32  # bytes released per wake-up of the bridge at most once a queue is that long
# what the host side holds of bytes the UART has yet to send to the chip (a tty's buffer, the
# USB-UART's): beyond it the host's writes wait, as a real host's do, instead of piling up
# seconds of a flood for the chip to work off after its writer is gone
HOST_BUFFER = 4096

_BARE_LF = re.compile(rb"(?<!\r)\n")


def open_vm_stdout():
    """(bridge's read end, VM's write end) of the VM's stdout: a pipe of one page."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    os.set_blocking(r, False)
    return r, w


class ChipTime:
    """Host time less what the VM's clock has left out (its waits for a CPU, its world,
    its link, a stop: the lag it tells, chip_clock.ChipClock.lag_s), as far as it is told
    in time: a wait told late (a VM that was stopped tells it at its next look) is not taken
    off afterwards, which would stop the wire for as long after the VM is back. So the UART
    the firmware sees is never slower than the chip's; a new VM's clock, which starts where
    it likes, costs at most one pass."""

    def __init__(self, lag_s, now):
        self.lag_s = lag_s
        self._lag = None
        self._host = now
        self.t = 0.0

    def new_vm(self):
        self._lag = None

    def told(self):
        """What the VM has told its clock left out since the last now() (s)."""
        return 0.0 if self._lag is None else max(0.0, self.lag_s() - self._lag)

    def now(self, host_now):
        lag = self.lag_s()
        grew = 0.0 if self._lag is None else max(0.0, lag - self._lag)
        self._lag = lag
        dt = max(0.0, host_now - self._host)
        self._host = host_now
        self.t += dt - min(grew, dt)
        return self.t


class Wire:
    """One direction of the UART: bytes queued to go, each BYTE_S of chip time after the
    one before, the line idle between bursts."""

    def __init__(self):
        self.queue = bytearray()
        self.at = 0.0  # chip time the wire has sent up to
        self.eol_at = 0.0  # chip time the last "\n" finished (make bench's round trips)

    def put(self, data, chip):
        if not self.queue:
            self.at = max(self.at, chip)
        self.queue += data

    def due(self, chip):
        """The bytes whose last bit has gone by chip time `chip`."""
        n = min(len(self.queue), int((chip - self.at) / BYTE_S + 1e-9))
        if n <= 0:
            return b""
        out = bytes(self.queue[:n])
        del self.queue[:n]
        eol = out.rfind(b"\n")
        if eol >= 0:
            self.eol_at = self.at + (eol + 1) * BYTE_S
        self.at += n * BYTE_S
        return out

    def wait_s(self, chip):
        """Chip seconds until the next release worth a wake-up, or None with nothing queued."""
        if not self.queue:
            return None
        return max(0.0, self.at + min(len(self.queue), CHUNK) * BYTE_S - chip)

    def clear(self):
        del self.queue[:]


class Cook:
    """"\\n" to "\\r\\n" on the way out, across reads."""

    def __init__(self):
        self._cr = False

    def __call__(self, data):
        out = _BARE_LF.sub(b"\r\n", data)
        if self._cr and data[:1] == b"\n":
            out = out[1:]
        self._cr = data[-1:] == b"\r"
        return out
