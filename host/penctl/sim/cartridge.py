"""The needle cartridge in the virtual board's handpiece: its presence switch (the physics'
"cartridge_removed") and its ID chip, a DS2431 1-Wire EEPROM that the VM's
vm/_onewire.py answers as, from the register file (simhw.C_*). A test fits one, new or
used, with or without a chip, with a good or a bad CRC, pulls it out, and reads back what
a pen wrote on it (to move it to another board)."""

import os

from ..errors import UsageError
from ..firmware import cartridge_mark as treatment
from .vm import simhw

TEST_SERIAL_END = bytes((0xFE, 0xFF))  # the id's bytes 5 and 6 of a test cartridge


def make_id(serial=None, test=False):
    """A DS2431's ROM id as sent (family, 48-bit serial low byte first, CRC-8), in hex."""
    serial = bytearray(serial or os.urandom(6))
    if test:
        serial[4:6] = TEST_SERIAL_END
    elif serial[4:6] == TEST_SERIAL_END:
        serial[5] = 0
    rom = bytes((treatment.FAMILY,)) + bytes(serial)
    return (rom + bytes((treatment.crc8(rom),))).hex()


class CartridgeSlot:
    def __init__(self, definition, registers, injection, lock):
        self.gpio = definition["pins"]["cartridge_id"]
        self.registers = registers
        self.regs = registers.regs
        self.injection = injection
        self.lock = lock

    def insert_cartridge(self, id=None, strokes_used=0, chip=True, bad_crc=False,
                         used_by=None, memory=None, test=False):
        """Fit a cartridge (the one fitted before is pulled out first): a new one by default,
        with a chip whose ROM id is `id` (16 hex digits as sent, family first; a new one if
        None), `strokes_used` on its count, marked by pen `used_by` (its uid, in session 1)
        or by none; `memory` (144 bytes) instead, as read from another board's cartridge.
        chip=False: one without an ID chip; bad_crc: its id's CRC does not match; test: a
        test cartridge's id. Returns the id."""
        rom = bytes.fromhex(id or make_id(test=test))
        if len(rom) != 8:
            raise UsageError("a cartridge id is 16 hex digits, not %r" % id)
        if bad_crc:
            rom = rom[:7] + bytes((rom[7] ^ 0x5A,))
        if memory is None:
            memory = bytearray(simhw.C_MEM_BYTES)
            if strokes_used or used_by:
                pen = treatment.pen_tag(used_by) if used_by else 0
                memory[:8] = treatment.encode_row(strokes_used, pen, 1)
        with self.lock:
            self.remove_cartridge()
            self.registers.set_cartridge_bytes(simhw.C_ROM, rom)
            self.registers.set_cartridge_bytes(simhw.C_MEM, bytes(memory))
            self.regs[simhw.C_CHIP] = self.gpio + 1 if chip else 0
            self.injection.remove("cartridge_removed")
        return rom.hex()

    def remove_cartridge(self):
        """Pull the cartridge out: its switch opens, its chip leaves the bus."""
        with self.lock:
            self.regs[simhw.C_CHIP] = 0
            self.injection.inject("cartridge_removed")

    def cartridge(self):
        """The fitted cartridge as a pen left it: its id, its memory, and the pens' row
        decoded (strokes, pen, session; None: no pen's record), or None without a chip."""
        with self.lock:
            if not self.regs[simhw.C_CHIP]:
                return None
            rom = self.registers.cartridge_bytes(simhw.C_ROM, 8)
            memory = self.registers.cartridge_bytes(simhw.C_MEM, simhw.C_MEM_BYTES)
        return {"id": rom.hex(), "memory": memory, "row": treatment.decode_row(memory[:8])}
