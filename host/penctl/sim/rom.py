"""The ESP32 ROM serial bootloader, enough of it for esptool (`--no-stub`) to detect the
chip, read its MAC and flash id, and write, verify and read the board's flash image.

SLIP-framed requests `<BBHI` (0x00, op, length, checksum) + data; replies `<BBHI`
(0x01, op, length, value) + data + 4 status bytes (status, error, 0, 0), as the ESP32 ROM
sends them. Only the ROM's behaviour is modelled, not its code.
"""

import hashlib
import struct
import zlib

from .. import chips

SLIP_END, SLIP_ESC = 0xC0, 0xDB
CHECKSUM_SEED = 0xEF
ERR_INVALID = 0x05  # invalid or unsupported command
ERR_BAD_DATA = 0x07  # wrong checksum or length
ERR_RANGE = 0x08  # outside the flash (our name; the ROM answers a non-zero error)

SYNC, READ_REG, WRITE_REG = 0x08, 0x0A, 0x09
FLASH_BEGIN, FLASH_DATA, FLASH_END = 0x02, 0x03, 0x04
SPI_SET_PARAMS, SPI_ATTACH, CHANGE_BAUDRATE = 0x0B, 0x0D, 0x0F
READ_FLASH_SLOW, SPI_FLASH_MD5, GET_SECURITY_INFO = 0x0E, 0x13, 0x14
FLASH_DEFL_BEGIN, FLASH_DEFL_DATA, FLASH_DEFL_END = 0x10, 0x11, 0x12

BANNER = (b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x3 "
          b"(DOWNLOAD_BOOT(UART0/UART1/SDIO_REI_REO_V2))\r\nwaiting for download\r\n")


class Esp32Rom:
    """What the ROM of one chip answers. One class per target, as esptool keeps them."""

    spec = chips.ESP32
    banner = BANNER
    detect_magic = 0x00F01D83
    efuse_base = 0x3FF5A000
    uart_clkdiv = 0x3FF40014
    spi_base = 0x3FF42000
    spi_usr2_offs = 0x24  # the user command register
    spi_w0_offs = 0x80  # where its result lands
    status_len = 4  # the ESP32 ROM sends four status bytes; later ROMs two

    def __init__(self, mac):
        self.mac = mac

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
    banner = (b"ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\nrst:0x1 (POWERON),boot:0x0 "
              b"(DOWNLOAD(USB/UART0))\r\nwaiting for download\r\n")
    detect_magic = 0x00000009
    efuse_base = 0x60007000
    spi_base = 0x60002000
    spi_usr2_offs = 0x20
    spi_w0_offs = 0x58
    status_len = 2

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
    out = bytearray([SLIP_END])
    for b in payload:
        if b == SLIP_END:
            out += bytes([SLIP_ESC, 0xDC])
        elif b == SLIP_ESC:
            out += bytes([SLIP_ESC, 0xDD])
        else:
            out.append(b)
    out.append(SLIP_END)
    return bytes(out)


class RomLoader:
    """Feed it the bytes the host sends; it returns the bytes the ROM would answer."""

    def __init__(self, flash_path, chip, flash_size, jedec_id=0x1640EF):
        self.flash_path = flash_path
        self.chip = chip
        self.flash_size = flash_size
        self.regs = chip.registers()
        self.jedec_id = jedec_id
        self._frame = None  # bytearray while inside a SLIP frame
        self._escape = False
        self._write = None  # (offset, size, block_size, next_seq, inflater or None)
        self.log = []  # (op, status) of every request, for tests

    # ---- SLIP --------------------------------------------------------------------------------
    def feed(self, data):
        out = b""
        for b in data:
            if b == SLIP_END:
                if self._frame:
                    out += self._handle(bytes(self._frame))
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
        return out

    def _reply(self, op, value=0, data=b"", error=0):
        status = bytes([1 if error else 0, error, 0, 0])[: self.chip.status_len]
        body = data + status
        self.log.append((op, error))
        return slip_encode(struct.pack("<BBHI", 1, op, len(body), value) + body)

    # ---- requests ------------------------------------------------------------------------------
    def _handle(self, frame):
        if len(frame) < 8 or frame[0] != 0:
            return b""
        _, op, length, checksum = struct.unpack("<BBHI", frame[:8])
        data = frame[8:]
        if len(data) != length:
            return self._reply(op, error=ERR_BAD_DATA)
        handler = {
            SYNC: self._sync, READ_REG: self._read_reg, WRITE_REG: self._write_reg,
            SPI_ATTACH: self._ok, SPI_SET_PARAMS: self._ok, CHANGE_BAUDRATE: self._ok,
            FLASH_BEGIN: self._flash_begin, FLASH_DEFL_BEGIN: self._flash_begin,
            FLASH_DATA: self._flash_data, FLASH_DEFL_DATA: self._flash_data,
            FLASH_END: self._flash_end, FLASH_DEFL_END: self._flash_end,
            SPI_FLASH_MD5: self._md5, READ_FLASH_SLOW: self._read_flash,
            GET_SECURITY_INFO: self._security_info,
        }.get(op)
        if handler is None:
            return self._reply(op, error=ERR_INVALID)
        return handler(op, data, checksum)

    def _security_info(self, op, data, checksum):
        info = self.chip.security_info()
        if info is None:  # the ESP32 ROM predates the command: esptool needs the error
            return self._reply(op, error=ERR_INVALID)
        return self._reply(op, data=info)

    def _ok(self, op, data, checksum):
        return self._reply(op)

    def _sync(self, op, data, checksum):
        if data != b"\x07\x07\x12\x20" + b"\x55" * 32:
            return b""
        return self._reply(op, value=0x20120707) * 8  # the ROM answers a sync 8 times

    def _read_reg(self, op, data, checksum):
        (addr,) = struct.unpack("<I", data[:4])
        return self._reply(op, value=self.regs.get(addr, 0))

    def _write_reg(self, op, data, checksum):
        addr, value = struct.unpack("<II", data[:8])
        self.regs[addr] = value
        base = self.chip.spi_base
        if addr == base and value & (1 << 18):  # SPI_CMD_USR: run the user command
            command = self.regs.get(base + self.chip.spi_usr2_offs, 0) & 0xFFFF
            self.regs[base + self.chip.spi_w0_offs] = self.jedec_id if command == 0x9F else 0
            self.regs[base] = 0  # done at once
        return self._reply(op)

    # ---- flash --------------------------------------------------------------------------
    def _flash_begin(self, op, data, checksum):
        size, blocks, block_size, offset = struct.unpack("<IIII", data[:16])
        if offset + size > self.flash_size or offset >= self.flash_size:
            return self._reply(op, error=ERR_RANGE)
        inflater = zlib.decompressobj() if op == FLASH_DEFL_BEGIN else None
        if size:  # the ROM erases the whole (uncompressed) region first
            self._erase(offset, size)
        self._write = [offset, block_size, 0, inflater, offset]
        return self._reply(op)

    def _erase(self, offset, size):
        sector = 0x1000
        start = offset - offset % sector
        end = min(self.flash_size, -(-(offset + size) // sector) * sector)
        with open(self.flash_path, "r+b") as f:
            f.seek(start)
            f.write(b"\xff" * (end - start))

    def _flash_data(self, op, data, checksum):
        if self._write is None or len(data) < 16:
            return self._reply(op, error=ERR_BAD_DATA)
        length, seq = struct.unpack("<II", data[:8])
        payload = data[16:]
        expected = CHECKSUM_SEED
        for b in payload:
            expected ^= b
        if len(payload) != length or expected != checksum or seq != self._write[2]:
            return self._reply(op, error=ERR_BAD_DATA)
        offset, block_size, _, inflater, cursor = self._write
        if inflater is not None:
            payload = inflater.decompress(payload)
        else:
            cursor = offset + seq * block_size
        if cursor + len(payload) > self.flash_size:
            return self._reply(op, error=ERR_RANGE)
        with open(self.flash_path, "r+b") as f:
            f.seek(cursor)
            f.write(payload)
        self._write[2] = seq + 1
        self._write[4] = cursor + len(payload)
        return self._reply(op)

    def _flash_end(self, op, data, checksum):
        self._write = None
        return self._reply(op)

    def _read(self, addr, size):
        with open(self.flash_path, "rb") as f:
            f.seek(addr)
            return f.read(size)

    def _md5(self, op, data, checksum):
        addr, size = struct.unpack("<II", data[:8])
        if addr + size > self.flash_size:
            return self._reply(op, error=ERR_RANGE)
        digest = hashlib.md5(self._read(addr, size)).hexdigest().encode()
        return self._reply(op, data=digest)

    def _read_flash(self, op, data, checksum):
        addr, size = struct.unpack("<II", data[:8])
        if size > 64 or addr + size > self.flash_size:
            return self._reply(op, error=ERR_RANGE)
        return self._reply(op, data=self._read(addr, size).ljust(64, b"\xff"))
