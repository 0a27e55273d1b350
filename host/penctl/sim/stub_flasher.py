"""esptool's stub flasher, as the virtual chip runs it once esptool has uploaded it to RAM.

Recognised byte for byte: what was downloaded must be the text and data segments of a stub
image the installed esptool ships (esptool/targets/stub_flasher/<version>/<chip>.json),
started at its entry point. Then it answers as the stub does (esp-flasher-stub's
src/command_handler.c, the "2" images esptool 5 uploads by default; the legacy "1" images,
esptool's flasher_stub/stub_flasher.c, differ where noted): two status bytes, a 16-bit
big-endian code (0 or 0xC0xx; 0xFF00 for a command it lacks) echoing the request's op;
SYNC answered 8 times with value 0 (how esptool finds a stub already running); flash
writes acknowledged first and done after, erasing just in time and skipping sectors that
read blank until the first that is not; an error of that deferred work answers the next
command; MD5 as 16 raw bytes; ERASE_FLASH, ERASE_REGION and READ_FLASH, which the ROM
lacks.

Long because: one handler per stub command, each a few lines, as the stub's own dispatch.
"""

import base64
import hashlib
import importlib.util
import json
import struct
import zlib
from pathlib import Path

from . import rom  # the protocol's checksum (rom.py imports this module: used at call time)
from .spi_flash import BLOCK, SECTOR

OK, BAD_DATA_LEN, BAD_CHECKSUM, INVALID_COMMAND = 0x0000, 0xC000, 0xC100, 0xC300
FAILED_SPI_OP, NOT_IN_FLASH_MODE, INFLATE_ERROR = 0xC400, 0xC600, 0xC700
NOT_ENOUGH_DATA, TOO_MUCH_DATA, NOT_IMPLEMENTED = 0xC800, 0xC900, 0xFF00
ERASE_FLASH, ERASE_REGION, READ_FLASH, RUN_USER_CODE = 0xD0, 0xD1, 0xD2, 0xD3


def shipped(chip_name):
    """{version: (text_start, text, data_start, data, entry)} of the stub images the
    installed esptool carries for this chip (none without esptool)."""
    spec = importlib.util.find_spec("esptool")
    if spec is None or spec.origin is None:
        return {}
    found = {}
    for path in sorted(Path(spec.origin).parent.glob("targets/stub_flasher/*/%s.json"
                                                     % chip_name)):
        stub = json.loads(path.read_text())
        found[path.parent.name] = (stub["text_start"], base64.b64decode(stub["text"]),
                                   stub.get("data_start"),
                                   base64.b64decode(stub["data"]) if "data" in stub else b"",
                                   stub["entry"])
    return found


def recognise(chip_name, ram, entry):
    """The version of esptool's stub whose segments `ram` holds and whose entry is
    `entry`, or None."""
    for version, (text_start, text, data_start, data, stub_entry) in \
            shipped(chip_name).items():
        if entry == stub_entry and ram.get(text_start) == text and \
                (not data or ram.get(data_start) == data):
            return version
    return None


class Stub:
    def __init__(self, rom, version):
        self.rom = rom  # the RomLoader: the same chip, its registers, flash and UART
        self.version = version
        self.flash = rom.flash
        self._write = None  # the flash write under way (dict)
        self._mem = None
        self._deferred = OK  # the deferred work's error, for the next command

    def reply(self, op, code=OK, value=0, data=b""):
        body = data + struct.pack(">H", code)
        self.rom.log.append((op, code))
        self.rom.send_frame(struct.pack("<BBHI", 1, op, len(body), value) + body)

    def handle(self, frame):
        if len(frame) < 8:
            return
        direction, op, length, chk = struct.unpack("<BBHI", frame[:8])
        data = frame[8:]
        if direction != 0:
            return self.reply(op, INVALID_COMMAND)
        if len(data) != length:
            return self.reply(op, BAD_DATA_LEN)
        if self._deferred != OK:
            code, self._deferred = self._deferred, OK
            return self.reply(op, code)
        if op == RUN_USER_CODE:  # no answer (ESP8266's only)
            return None
        handler = getattr(self, "_op_%02x" % op, None)
        if handler is None:
            return self.reply(op, INVALID_COMMAND)
        after = handler(op, data, chk)
        if after is not None:  # the work done after the answer, as the stub double-buffers
            self._deferred = after()
        return None

    # ---- the ROM's own commands, as the stub answers them -------------------------------
    def _op_08(self, op, data, chk):  # SYNC
        if len(data) == 36:
            for _ in range(8):
                self.reply(op, value=0)

    def _op_0a(self, op, data, chk):  # READ_REG
        if len(data) != 4:
            return self.reply(op, BAD_DATA_LEN)
        self.reply(op, value=self.rom.regs.get(struct.unpack("<I", data)[0], 0))

    def _op_09(self, op, data, chk):  # WRITE_REG: entries of address, value, mask, delay
        if not data or len(data) % 16:
            return self.reply(op, NOT_ENOUGH_DATA)
        for addr, value, mask, _delay in struct.iter_unpack("<IIII", data):
            old = self.rom.regs.get(addr, 0)
            self.rom.write_reg(addr, (value & mask) | (old & ~mask & 0xFFFFFFFF))
        self.reply(op)

    def _op_0d(self, op, data, chk):  # SPI_ATTACH
        self.flash.attached = True
        self.reply(op, OK if len(data) == 4 else BAD_DATA_LEN)

    def _op_0b(self, op, data, chk):  # SPI_SET_PARAMS
        self.reply(op, OK if len(data) == 24 else BAD_DATA_LEN)

    def _op_0f(self, op, data, chk):  # CHANGE_BAUDRATE (the UART's rate is the link's)
        self.reply(op, OK if len(data) == 8 else BAD_DATA_LEN)

    def _op_14(self, op, data, chk):  # GET_SECURITY_INFO
        info = self.rom.chip.security_info()
        if info is None:  # the ESP32's stub library has none to give
            return self.reply(op, NOT_IMPLEMENTED)
        self.reply(op, data=info)

    def _op_13(self, op, data, chk):  # SPI_FLASH_MD5: 16 raw bytes, not the ROM's hex
        if len(data) != 16:
            return self.reply(op, BAD_DATA_LEN)
        addr, size = struct.unpack("<II", data[:8])
        self.reply(op, data=hashlib.md5(self.flash.read(addr, size)).digest())

    # ---- flash writes: erased just in time, written after the answer ---------------------
    def _op_02(self, op, data, chk, compressed=False):  # FLASH_BEGIN
        if len(data) not in (16, 20):
            return self.reply(op, BAD_DATA_LEN)
        size, blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        end = -(-(offset + size) // SECTOR) * SECTOR
        self._write = {"remaining": size, "offset": offset, "erase_at": offset - offset % SECTOR,
                       "erase_end": end, "dirty": False,
                       "inflater": zlib.decompressobj() if compressed else None}
        code = self._erase_next()
        self.reply(op, code)

    def _op_10(self, op, data, chk):  # FLASH_DEFL_BEGIN
        return self._op_02(op, data, chk, compressed=True)

    def _erase_next(self):
        """One erase step: skip a blank sector until the first dirty one is seen."""
        w = self._write
        if w["erase_at"] >= w["erase_end"]:
            return OK
        at = w["erase_at"]
        if not w["dirty"] and self.flash.blank(at, SECTOR):
            w["erase_at"] += SECTOR
            return OK
        w["dirty"] = True
        step = BLOCK if at % BLOCK == 0 and w["erase_end"] - at >= BLOCK else SECTOR
        seconds = self.flash.erase(at, at + step)
        w["erase_at"] += step
        if seconds is None:
            return FAILED_SPI_OP
        self.rom.busy(seconds)
        return OK

    def _write_flash(self, payload):
        w = self._write
        payload = payload[: w["remaining"]]
        while w["erase_at"] < w["offset"] + len(payload):
            code = self._erase_next()
            if code != OK:
                return code
        seconds = self.flash.program(w["offset"], payload)
        if seconds is None:
            return FAILED_SPI_OP
        self.rom.busy(seconds)
        w["offset"] += len(payload)
        w["remaining"] -= len(payload)
        return OK

    def _op_03(self, op, data, chk):  # FLASH_DATA
        if len(data) < 16:
            return self.reply(op, NOT_ENOUGH_DATA)
        if self._write is None:
            return self.reply(op, NOT_IN_FLASH_MODE)
        payload = data[16:]
        if struct.unpack("<I", data[:4])[0] != len(payload):
            return self.reply(op, TOO_MUCH_DATA)
        if rom.checksum(payload) != chk:
            return self.reply(op, BAD_CHECKSUM)
        self.reply(op)
        return lambda: self._write_flash(payload)

    def _op_11(self, op, data, chk):  # FLASH_DEFL_DATA
        if len(data) < 16:
            return self.reply(op, BAD_DATA_LEN)
        if self._write is None:
            return self.reply(op, NOT_IN_FLASH_MODE)
        payload = data[16:16 + struct.unpack("<I", data[:4])[0]]
        if rom.checksum(payload) != chk:
            return self.reply(op, BAD_CHECKSUM)
        self.reply(op)

        def inflate_and_write():
            try:
                out = self._write["inflater"].decompress(payload)
            except zlib.error:
                return INFLATE_ERROR
            return self._write_flash(out)

        return inflate_and_write

    def _op_04(self, op, data, chk):  # FLASH_END
        if len(data) != 4:
            return self.reply(op, BAD_DATA_LEN)
        if self._write is None:
            return self.reply(op, NOT_IN_FLASH_MODE)
        if self._write["remaining"]:
            return self.reply(op, BAD_DATA_LEN)
        self._write = None
        self.reply(op)
        # 0 asks for a reboot: the legacy stub resets the CPU (back into the ROM loader,
        # the boot mode latched at power-on); the current one leaves it to come (a TODO)
        if op == 0x04 and self.version == "1" and struct.unpack("<I", data)[0] == 0:
            self.rom.on_exit("rom")

    def _op_12(self, op, data, chk):  # FLASH_DEFL_END
        return self._op_04(op, data, chk)

    # ---- what only the stub has ------------------------------------------------------
    def _op_d0(self, op, data, chk):  # ERASE_FLASH
        seconds = self.flash.erase_chip()
        if seconds is None or not self.rom.busy(seconds):
            return self.reply(op, FAILED_SPI_OP) if seconds is None else None
        self.reply(op)

    def _op_d1(self, op, data, chk):  # ERASE_REGION
        if len(data) != 8:
            return self.reply(op, BAD_DATA_LEN)
        addr, size = struct.unpack("<II", data)
        if addr % SECTOR or size % SECTOR:
            return self.reply(op, BAD_DATA_LEN)
        seconds = self.flash.erase(addr, addr + size)
        if seconds is None or not self.rom.busy(seconds):
            return self.reply(op, FAILED_SPI_OP) if seconds is None else None
        self.reply(op)

    def _op_d2(self, op, data, chk):  # READ_FLASH: packets, each acknowledged, then MD5
        if len(data) != 16:
            return self.reply(op, BAD_DATA_LEN)
        offset, size, packet, _inflight = struct.unpack("<IIII", data)
        if packet > 4096:
            return self.reply(op, BAD_DATA_LEN)
        self.reply(op)

        def send_packets():
            md5, sent = hashlib.md5(), 0
            while sent < size:
                chunk = self.flash.read(offset + sent, min(packet, size - sent))
                md5.update(chunk)
                self.rom.send_frame(chunk)
                sent += len(chunk)
                ack = self.rom.next_frame(10.0)  # one packet in flight, as the stub allows
                if ack is None or len(ack) != 4:
                    break
            self.rom.send_frame(md5.digest())
            return OK

        return send_packets

    # ---- RAM ------------------------------------------------------------------------
    def _op_05(self, op, data, chk):  # MEM_BEGIN
        if len(data) != 16:
            return self.reply(op, BAD_DATA_LEN)
        size, _blocks, _block_size, addr = struct.unpack("<IIII", data)
        self._mem = [addr, size]
        self.rom.ram[addr] = b""
        self.reply(op)

    def _op_07(self, op, data, chk):  # MEM_DATA
        if len(data) < 16:
            return self.reply(op, NOT_ENOUGH_DATA)
        if self._mem is None:
            return self.reply(op, NOT_IN_FLASH_MODE)
        payload = data[16:]
        addr, size = self._mem
        if struct.unpack("<I", data[:4])[0] != len(payload) or \
                len(self.rom.ram[addr]) + len(payload) > size:
            return self.reply(op, TOO_MUCH_DATA)
        self.rom.ram[addr] += payload
        self.reply(op)

    def _op_06(self, op, data, chk):  # MEM_END
        if len(data) != 8:
            return self.reply(op, BAD_DATA_LEN)
        if self._mem is None:
            return self.reply(op, NOT_IN_FLASH_MODE)
        self._mem = None
        run, entry = struct.unpack("<II", data)
        self.reply(op)
        if run == 0:
            self.rom.stub = None
            self.rom.run_ram(entry)
