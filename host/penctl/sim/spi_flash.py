"""The board's SPI flash chip as the ROM loader and the stub flasher reach it: its JEDEC id
and SFDP table through SPI0's user-command registers, its erase and program times, and the
image file it holds (flash_image.py's).

The chip is a 4 MB Winbond W25Q32JV (JEDEC id EF 40 16), a part the ESP32-WROOM-32 modules
of DevKitC boards carry. Times are its datasheet's typical figures (W25Q32JV datasheet,
"AC Electrical Characteristics": tSE 4 KB sector erase 45 ms, tBE2 64 KB block erase 150 ms,
tCE chip erase 10 s, tPP page program 0.4 ms per 256 bytes), not the maxima (400 ms, 2 s,
50 s, 3 ms), so a test's few sectors cost well under a second.
"""

import struct

SECTOR, BLOCK, PAGE = 0x1000, 0x10000, 0x100
SECTOR_ERASE_S, BLOCK_ERASE_S, CHIP_ERASE_S, PAGE_PROGRAM_S = 0.045, 0.150, 10.0, 0.0004
JEDEC_ID = 0x1640EF  # EF 40 16 as the ESP32's W0 register reads the three bytes

RDID, RDSFDP = 0x9F, 0x5A
SPI_CMD_USR = 1 << 18


def _sfdp_table():
    """256 bytes of SFDP (JESD216): the header ("SFDP", rev 1.6, one parameter header)
    and the JEDEC basic flash parameter table at 0x80; its first two words as the
    W25Q32JV lists them (4 KB erase with 0x20, 32 Mbit). Unwritten bytes read 0xFF."""
    table = bytearray(b"\xff" * 256)
    table[0:8] = b"SFDP" + bytes([0x06, 0x01, 0x00, 0xFF])
    table[8:16] = bytes([0x00, 0x06, 0x01, 0x10, 0x80, 0x00, 0x00, 0xFF])
    table[0x80:0x88] = struct.pack("<II", 0xFFF920E5, 32 * 1024 * 1024 - 1)
    return bytes(table)


SFDP = _sfdp_table()


class SpiFlash:
    """The flash chip and SPI0's user-command registers of one chip model (`rom`)."""

    def __init__(self, path, size, rom):
        self.path = path
        self.size = size
        self.rom = rom
        # The ROM loader leaves SPI0 unconfigured: the flash sees nothing until
        # SPI_ATTACH (esptool's serial-protocol docs: "required before interacting with
        # SPI flash"); the bus then reads high. The stub attaches it itself at start.
        self.attached = False

    # ---- SPI0's user command: what esptool's run_spiflash_command() drives ------------
    def user_command(self, regs):
        """SPI_CMD_USR was set: run the command in USR2 and leave the result in W0."""
        base, rom = self.rom.spi_base, self.rom
        command = regs.get(base + rom.spi_usr2_offs, 0) & 0xFF
        addr = regs.get(base + 4, 0)
        if rom.spi_addr_msb:  # the ESP32 sends the address from the register's MSB
            addr >>= 8
        if not self.attached:
            result = 0xFFFFFFFF
        elif command == RDID:
            result = JEDEC_ID
        elif command == RDSFDP:
            result = int.from_bytes(SFDP[addr & 0xFF:(addr & 0xFF) + 4].ljust(4, b"\xff"),
                                    "little")
        else:  # status registers (nothing busy), resets, power-down: nothing to report
            result = 0
        bits = (regs.get(base + rom.spi_miso_dlen_offs, 31) & 0x1F) + 1
        regs[base + rom.spi_w0_offs] = result & ((1 << bits) - 1)
        regs[base] = 0  # done: the busy bit reads back clear

    # ---- the array ----------------------------------------------------------------
    def read(self, addr, size):
        if not self.attached:
            return b"\xff" * size
        with open(self.path, "rb") as f:
            f.seek(addr)
            return f.read(size)

    def erase(self, start, end):
        """Erase the sectors covering [start, end) as the ROM's SPIEraseArea and the stub
        do (sectors up to a 64 KB boundary, whole blocks, then sectors); returns the time
        it takes, or None when the flash is not attached (nothing answered)."""
        if not self.attached:
            return None
        start -= start % SECTOR
        end = min(self.size, -(-end // SECTOR) * SECTOR)
        seconds, addr = 0.0, start
        while addr < end:
            if addr % BLOCK == 0 and end - addr >= BLOCK:
                seconds += BLOCK_ERASE_S
                addr += BLOCK
            else:
                seconds += SECTOR_ERASE_S
                addr += SECTOR
        if end > start:
            with open(self.path, "r+b") as f:
                f.seek(start)
                f.write(b"\xff" * (end - start))
        return seconds

    def erase_chip(self):
        if not self.attached:
            return None
        with open(self.path, "r+b") as f:
            f.write(b"\xff" * self.size)
        return CHIP_ERASE_S

    def program(self, addr, data):
        """NOR programming only clears bits; returns the time, or None if not attached."""
        if not self.attached:
            return None
        with open(self.path, "r+b") as f:
            f.seek(addr)
            old = f.read(len(data))
            f.seek(addr)
            f.write((int.from_bytes(old, "big") & int.from_bytes(data[:len(old)], "big"))
                    .to_bytes(len(old), "big"))
        return -(-len(data) // PAGE) * PAGE_PROGRAM_S

    def blank(self, addr, size):
        return self.read(addr, size) == b"\xff" * size
