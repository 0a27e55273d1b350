"""The ESP32 ROM serial bootloader (download mode), as esptool meets it: sync, registers
(chip detect, MAC, SPI0's user commands to the flash: spi_flash.py), SPI attach, flash
write (plain and compressed), MD5, slow read, RAM download, and the stub flasher esptool
uploads to RAM by default (stub_flasher.py), which then answers in the ROM's place.

SLIP-framed requests `<BBHI` (0x00, op, length, checksum) + data; replies `<BBHI` (0x01, op,
length, value) + data + status bytes (ESP32 ROM: 4, status, error, 0, 0; esptool's
docs/en/advanced-topics/serial-protocol.rst). The ROM builds each reply in one header it
keeps between commands: a reply carries the value of the last command that set one (a
MEM_BEGIN reply carrying the previous READ_REG's value, esptool issue #544's trace), and a
command the ROM does not have is answered with error 0x05 in a header still naming the
previous command, which is how esptool tells it apart (loader.py command(): an op that
does not match plus 0x05 is UnsupportedCommandError; cmds.py: "UnsupportedCommandError:
ESP8266/ESP32 ROM"). Only the ROM's behaviour is modelled, not its code.

The chip's CPU runs the loader: a thread per download-mode session takes the frames in
order and answers when the work is done (flash erase and program times: spi_flash.py), so
esptool waits as it waits for a chip. Code loaded to RAM and run is executed only if it is
esptool's own stub flasher (byte for byte the image the installed esptool ships): the
virtual chip cannot run Xtensa code, so any other image runs as code that says nothing,
and the UART stays silent until EN resets the chip.

Long because: the ROM's commands, its RAM download and each chip's boot text are one
protocol state (the reply header, the RAM, the flash's attachment) kept in one place.
"""

import hashlib
import queue
import struct
import threading
import time
import zlib

from .. import chips
from . import stub_flasher
from .spi_flash import SPI_CMD_USR, SpiFlash

SLIP_END, SLIP_ESC = 0xC0, 0xDB
CHECKSUM_SEED = 0xEF
ERR_FAILED = 0x06  # "Message is ok, but the running result is wrong"
ERR_INVALID = 0x05  # invalid or unsupported command
ERR_BAD_DATA = 0x07  # checksum error
ERR_FLASH_WRITE = 0x08  # a written block did not read back
ERR_RANGE = 0x08  # outside the flash
ERR_RAM_SIZE, ERR_RAM_ADDR = 0x0E, 0x0F

FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
MEM_BEGIN, MEM_END, MEM_DATA = 0x05, 0x06, 0x07
SYNC, WRITE_REG, READ_REG = 0x08, 0x09, 0x0A
SPI_SET_PARAMS, SPI_ATTACH, READ_FLASH_SLOW, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0E, 0x0F
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12
SPI_FLASH_MD5, GET_SECURITY_INFO = 0x13, 0x14
SYNC_DATA = b"\x07\x07\x12\x20" + b"\x55" * 32


class Esp32Rom:
    """What the ROM of one chip answers and prints. One class per target, as esptool
    keeps them."""

    spec = chips.ESP32
    name = "esp32"
    detect_magic = 0x00F01D83
    efuse_base = 0x3FF5A000
    uart_clkdiv = 0x3FF40014
    spi_base = 0x3FF42000  # SPI0 (esptool targets/esp32.py)
    spi_usr2_offs = 0x24  # the user command register
    spi_w0_offs = 0x80  # where its result lands
    spi_miso_dlen_offs = 0x2C  # how many bits it reads, less one
    spi_addr_msb = True
    status_len = 4  # the ESP32 ROM sends four status bytes; later ROMs two
    # where RAM download may write (esptool targets/esp32.py MEMORY_MAP: RTC, DRAM, IRAM)
    ram = ((0x3FF80000, 0x3FF82000), (0x3FFAE000, 0x40000000), (0x40070000, 0x400C2000),
           (0x50000000, 0x50002000))
    # what the ROM prints at a reset, by cause (its rst: line)
    POWERON, SW_CPU, BROWNOUT = "0x1 (POWERON_RESET)", "0xc (SW_CPU_RESET)", \
        "0xf (RTCWDT_BROWN_OUT_RESET)"
    _ets = b"ets Jun  8 2016 00:22:57\r\n\r\nrst:%s,boot:%s\r\n"
    # a DevKitC's ROM and second-stage bootloader before MicroPython (a capture of an
    # ESP32-D0WD on ESP-IDF v5: github.com/joelsernamoreno/EvilCrowRF-V2 issue #80)
    _flash_boot = (b"configsip: 0, SPIWP:0xee\r\n"
                   b"clk_drv:0x00,q_drv:0x00,d_drv:0x00,cs0_drv:0x00,hd_drv:0x00,wp_drv:0x00\r\n"
                   b"mode:DIO, clock div:2\r\nload:0x3fff0030,len:4744\r\n"
                   b"load:0x40078000,len:15712\r\nload:0x40080400,len:3152\r\n"
                   b"entry 0x4008059c\r\n")

    def __init__(self, mac):
        self.mac = mac

    def boot_text(self, rst, download=False, app=True):
        """What the ROM prints at a reset (rst: one of POWERON, SW_CPU, BROWNOUT): the
        download banner, the flash boot up to the app's entry, or a flash without an app."""
        if download:
            return self._ets % (rst.encode(), b"0x3 (DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))"
                                ) + b"waiting for download\r\n"
        head = self._ets % (rst.encode(), b"0x13 (SPI_FAST_FLASH_BOOT)")
        return head + (self._flash_boot if app else b"invalid header: 0xffffffff\r\n")

    def registers(self):
        m = self.mac
        return {
            0x40001000: self.detect_magic,
            self.efuse_base + 4: (m[2] << 24) | (m[3] << 16) | (m[4] << 8) | m[5],
            self.efuse_base + 8: (m[0] << 8) | m[1],
            self.uart_clkdiv: 347,  # 40 MHz crystal at 115200 baud
        }

    def security_info(self):
        """GET_SECURITY_INFO's data, or None where the ROM does not know the command."""
        return None


class Esp32S3Rom(Esp32Rom):
    spec = chips.ESP32S3
    name = "esp32s3"
    detect_magic = 0x00000009
    efuse_base = 0x60007000
    spi_base = 0x60002000
    spi_usr2_offs = 0x20
    spi_w0_offs = 0x58
    spi_miso_dlen_offs = 0x28
    spi_addr_msb = False
    status_len = 2
    ram = ((0x3FC88000, 0x3FD00000), (0x40370000, 0x403E0000), (0x50000000, 0x50002000),
           (0x600FE000, 0x60100000))
    POWERON, SW_CPU, BROWNOUT = "0x1 (POWERON)", "0xc (RTC_SW_CPU_RST)", "0xf (BROWN_OUT_RST)"
    _ets = b"ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:%s,boot:%s\r\n"
    _flash_boot = (b"SPIWP:0xee\r\nmode:DIO, clock div:1\r\nload:0x3fce2810,len:0x15a0\r\n"
                   b"load:0x403c8700,len:0x4\r\nload:0x403c8704,len:0xd20\r\n"
                   b"load:0x403cb700,len:0x2f00\r\nentry 0x403c8928\r\n")

    def boot_text(self, rst, download=False, app=True):
        if download:
            return self._ets % (rst.encode(), b"0x0 (DOWNLOAD(USB/UART0))") + \
                b"waiting for download\r\n"
        head = self._ets % (rst.encode(), b"0x8 (SPI_FAST_FLASH_BOOT)")
        return head + (self._flash_boot if app else b"invalid header: 0xffffffff\r\n")

    def registers(self):
        m = self.mac
        return {  # MAC in BLOCK1: low word first, then the top two bytes
            0x40001000: self.detect_magic,
            self.efuse_base + 0x44: (m[2] << 24) | (m[3] << 16) | (m[4] << 8) | m[5],
            self.efuse_base + 0x48: (m[0] << 8) | m[1],
        }

    def security_info(self):
        # flags, flash_crypt_cnt, 7 key purposes, chip id, API version: nothing secured
        return struct.pack("<IBBBBBBBBII", 0, 0, 0, 0, 0, 0, 0, 0, 0,
                           self.spec.image_chip_id, 0)


ROMS = {"esp32": Esp32Rom, "esp32s3": Esp32S3Rom}


def slip_encode(payload):
    return bytes([SLIP_END]) + bytes(payload).replace(b"\xdb", b"\xdb\xdd").replace(
        b"\xc0", b"\xdb\xdc") + bytes([SLIP_END])


def checksum(data):
    value = CHECKSUM_SEED
    for b in data:
        value ^= b
    return value


def _block(data, chk, seq):
    """The data of a FLASH_DATA or MEM_DATA packet (its size, sequence number, two words of
    padding, then the data), or None when its size, checksum or sequence number is wrong."""
    length, number = struct.unpack("<II", data[:8])
    payload = data[16:]
    if len(payload) != length or checksum(payload) != chk or number != seq:
        return None
    return payload


class RomLoader:
    """The chip in download mode. Feed it the bytes the host sends; its thread answers
    through `send`. `on_exit(kind)` tells the chip the loader ended ("app": run the
    flash's app; "rom": a software reset back into download mode)."""

    def __init__(self, flash_path, chip, flash_size, send=lambda data: None,
                 on_exit=lambda kind: None, alive=lambda: True):
        self.chip = chip
        self.flash = SpiFlash(flash_path, flash_size, chip)
        self.flash_size = flash_size
        self.regs = chip.registers()
        self.send = send
        self.on_exit = on_exit
        self.alive = alive
        self._frame = None  # bytearray while inside a SLIP frame
        self._escape = False
        self._frames = queue.Queue()
        self._halt = threading.Event()
        self._write = None  # [offset, block_size, next_seq, inflater or None, cursor]
        self._mem = None  # [address, size, next_seq] of the RAM download under way
        self.ram = {}  # address -> bytes downloaded to RAM
        self._op, self._value = SYNC, 0  # the reply header the ROM keeps between commands
        self.stub = None  # a stub_flasher.Stub once esptool's stub runs
        self.silent = False  # code the virtual chip cannot run is running
        self.log = []  # (op, status) of every request, for tests
        self._thread = threading.Thread(target=self._run, daemon=True, name="pen-rom")
        self._thread.start()

    def stop(self):
        """EN low or another boot: the loader's work ends where it stands."""
        self._halt.set()

    def busy(self, seconds):
        """The chip is at work for `seconds` (a reset or the board's end cuts it short);
        False if cut short."""
        end = time.monotonic() + seconds
        while not self._halt.is_set() and self.alive():
            left = end - time.monotonic()
            if left <= 0:
                return True
            self._halt.wait(min(left, 0.1))
        return False

    # ---- SLIP, in the link's thread ------------------------------------------------------
    def feed(self, data):
        for b in data:
            if b == SLIP_END:
                if self._frame:
                    self._frames.put(bytes(self._frame))
                self._frame = bytearray()
            elif self._frame is None:
                continue  # noise between frames
            elif self._escape:
                self._frame.append({0xDC: SLIP_END, 0xDD: SLIP_ESC}.get(b, b))
                self._escape = False
            elif b == SLIP_ESC:
                self._escape = True
            else:
                self._frame.append(b)
        return b""

    def next_frame(self, timeout):
        """The next frame the host sent, within `timeout` s (None: nothing, or halted)."""
        waited = 0.0
        while waited < timeout and not self._halt.is_set() and self.alive():
            try:
                return self._frames.get(timeout=0.1)
            except queue.Empty:
                waited += 0.1
        return None

    def _run(self):
        while not self._halt.is_set() and self.alive():
            frame = self.next_frame(1.0)
            if frame is None or self.silent:
                continue
            if self.stub is not None:
                self.stub.handle(frame)
            else:
                self._handle(frame)

    def reply(self, op, value=None, data=b"", error=0):
        if value is not None:
            self._value = value
        status = bytes([1 if error else 0, error, 0, 0])[: self.chip.status_len]
        body = data + status
        self._op = op
        self.log.append((op, error))
        self.send_frame(struct.pack("<BBHI", 1, op, len(body), self._value) + body)

    def send_frame(self, payload):
        if not self._halt.is_set() and self.alive():  # never into a closed board's UART
            self.send(slip_encode(payload))

    # ---- requests -------------------------------------------------------------------
    def _handle(self, frame):
        if len(frame) < 8 or frame[0] != 0:
            return
        _, op, length, chk = struct.unpack("<BBHI", frame[:8])
        data = frame[8:]
        if len(data) != length:
            return self.reply(op, error=ERR_INVALID)
        handler = {
            SYNC: self._sync, READ_REG: self._read_reg, WRITE_REG: self._write_reg,
            SPI_ATTACH: self._attach, SPI_SET_PARAMS: self._ok, CHANGE_BAUDRATE: self._ok,
            FLASH_BEGIN: self._flash_begin, FLASH_DEFL_BEGIN: self._flash_begin,
            FLASH_DATA: self._flash_data, FLASH_DEFL_DATA: self._flash_data,
            FLASH_END: self._flash_end, FLASH_DEFL_END: self._flash_end,
            SPI_FLASH_MD5: self._md5, READ_FLASH_SLOW: self._read_flash,
            MEM_BEGIN: self._mem_begin, MEM_DATA: self._mem_data, MEM_END: self._mem_end,
        }.get(op)
        if op == GET_SECURITY_INFO and self.chip.security_info() is not None:
            return self.reply(op, data=self.chip.security_info())
        if handler is None:  # a command this ROM lacks: the header still names the last one
            self.log.append((op, ERR_INVALID))
            status = bytes([1, ERR_INVALID, 0, 0])[: self.chip.status_len]
            return self.send_frame(struct.pack("<BBHI", 1, self._op, len(status),
                                               self._value) + status)
        return handler(op, data, chk)

    def _ok(self, op, data, chk):
        self.reply(op)

    def _attach(self, op, data, chk):
        self.flash.attached = True
        self.reply(op)

    def _sync(self, op, data, chk):
        if data != SYNC_DATA:
            return
        for _ in range(8):  # the ROM answers a sync 8 times
            self.reply(op, value=0x20120707)

    def _read_reg(self, op, data, chk):
        (addr,) = struct.unpack("<I", data[:4])
        self.reply(op, value=self.regs.get(addr, 0))

    def write_reg(self, addr, value):
        self.regs[addr] = value
        if addr == self.chip.spi_base and value & SPI_CMD_USR:
            self.flash.user_command(self.regs)

    def _write_reg(self, op, data, chk):
        addr, value = struct.unpack("<II", data[:8])
        self.write_reg(addr, value)
        self.reply(op)

    # ---- flash ----------------------------------------------------------------------
    def _flash_begin(self, op, data, chk):
        size, _blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        if offset + size > self.flash_size or offset >= self.flash_size:
            return self.reply(op, error=ERR_RANGE)
        inflater = zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None
        if size:  # the ROM erases the whole (uncompressed) region first
            seconds = self.flash.erase(offset, offset + size)
            if seconds is None:  # no flash answered: the erase never reports done
                return self.reply(op, error=ERR_FAILED)
            if not self.busy(seconds):
                return
        self._write = [offset, block_size, 0, inflater, offset]
        self.reply(op)

    def _flash_data(self, op, data, chk):
        if self._write is None or len(data) < 16:
            return self.reply(op, error=ERR_BAD_DATA)
        offset, block_size, seq, inflater, cursor = self._write
        payload = _block(data, chk, seq)
        if payload is None:
            return self.reply(op, error=ERR_BAD_DATA)
        if inflater is not None:
            payload = inflater.decompress(payload)
        else:
            cursor = offset + seq * block_size
        if cursor + len(payload) > self.flash_size:
            return self.reply(op, error=ERR_RANGE)
        seconds = self.flash.program(cursor, payload)
        if seconds is None or self.flash.read(cursor, len(payload)) != payload:
            return self.reply(op, error=ERR_FLASH_WRITE)  # the ROM reads each block back
        if not self.busy(seconds):
            return
        self._write[2] = seq + 1
        self._write[4] = cursor + len(payload)
        self.reply(op)

    def _flash_end(self, op, data, chk):
        self._write = None
        self.reply(op)
        if struct.unpack("<I", data[:4].ljust(4, b"\0"))[0]:  # 1: run the user code
            self.on_exit("app")

    def _md5(self, op, data, chk):
        addr, size = struct.unpack("<II", data[:8])
        if addr + size > self.flash_size:
            return self.reply(op, error=ERR_RANGE)
        self.reply(op, data=hashlib.md5(self.flash.read(addr, size)).hexdigest().encode())

    def _read_flash(self, op, data, chk):
        addr, size = struct.unpack("<II", data[:8])
        if size > 64 or addr + size > self.flash_size:
            return self.reply(op, error=ERR_RANGE)
        self.reply(op, data=self.flash.read(addr, size).ljust(64, b"\xff"))

    # ---- RAM download -----------------------------------------------------------------
    def _mem_begin(self, op, data, chk):
        size, _blocks, _block_size, addr = struct.unpack("<IIII", data[:16])
        if not any(lo <= addr and addr + size <= hi for lo, hi in self.chip.ram):
            return self.reply(op, error=ERR_RAM_ADDR)
        self._mem = [addr, size, 0]
        self.ram[addr] = b""
        self.reply(op)

    def _mem_data(self, op, data, chk):
        if self._mem is None or len(data) < 16:
            return self.reply(op, error=ERR_INVALID)
        addr, size, seq = self._mem
        payload = _block(data, chk, seq)
        if payload is None:
            return self.reply(op, error=ERR_BAD_DATA)
        if len(self.ram[addr]) + len(payload) > size:
            return self.reply(op, error=ERR_RAM_SIZE)
        self.ram[addr] += payload
        self._mem[2] += 1
        self.reply(op)

    def _mem_end(self, op, data, chk):
        run, entry = struct.unpack("<II", data[:8])
        self._mem = None
        self.reply(op)
        if run == 0:  # 0: jump to the entry point
            self.run_ram(entry)

    def run_ram(self, entry):
        """Jump to code downloaded to RAM: esptool's own stub flasher runs (it greets with
        OHAI and answers from then on); anything else runs as code that says nothing."""
        version = stub_flasher.recognise(self.chip.name, self.ram, entry)
        if version is None:
            self.silent = True
            return
        self.stub = stub_flasher.Stub(self, version)
        self.flash.attached = True  # the stub attaches the flash itself at start
        self.send_frame(b"OHAI")
