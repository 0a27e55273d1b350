# The needle cartridge's ID chip: a DS2431-class 1-Wire EEPROM (64-bit ROM id: family code,
# 48-bit serial, CRC-8; 128 bytes of memory) alone on its own pin (board.json's
# pins.cartridge_id), read with the port's `onewire` driver. Its first 8-byte row holds the
# pens' record of the cartridge (treatment.py's row): written through the scratchpad, which
# the chip copies into its memory in one step, so a cut leaves the old row or the new.
# The bus takes milliseconds (a reset ~1 ms, a byte ~0.6 ms, a copy 10 ms): used only while
# the needles are still, imported for that and dropped again (commands.py).
import time

import onewire
from machine import Pin
from micropython import const

_READ_ROM = const(0x33)
_SKIP_ROM = const(0xCC)
_READ_MEMORY = const(0xF0)
_WRITE_SCRATCHPAD = const(0x0F)
_READ_SCRATCHPAD = const(0xAA)
_COPY_SCRATCHPAD = const(0x55)
_COPIED = const(0xAA)  # what the chip sends once a copy is done
_PROGRAM_MS = const(12)  # tPROG is 10 ms at most


class IdChip:
    def __init__(self, pin):
        self.bus = onewire.OneWire(Pin(pin))

    def rom(self):
        """The ROM id as read (8 bytes, family code first, CRC last), or None when no chip
        answers the reset."""
        bus = self.bus
        if not bus.reset():
            return None
        bus.writebyte(_READ_ROM)
        rom = bytearray(8)
        bus.readinto(rom)
        return rom

    def read_row(self):
        """The first row of the memory (8 bytes), or None if the chip went away."""
        bus = self.bus
        if not bus.reset():
            return None
        bus.write(bytes((_SKIP_ROM, _READ_MEMORY, 0, 0)))
        row = bytearray(8)
        bus.readinto(row)
        return row

    def write_row(self, row):
        """Write the first row: True once the chip has copied it and it reads back."""
        bus = self.bus
        if not bus.reset():
            return False
        bus.write(bytes((_SKIP_ROM, _WRITE_SCRATCHPAD, 0, 0)))
        bus.write(row)
        # the scratchpad as the chip holds it: address, E/S (the authorisation), the row
        if not bus.reset():
            return False
        bus.write(bytes((_SKIP_ROM, _READ_SCRATCHPAD)))
        got = bytearray(11)
        bus.readinto(got)
        if got[0] or got[1] or got[2] & 0x07 != 7 or got[3:11] != row:
            return False
        bus.reset()
        bus.write(bytes((_SKIP_ROM, _COPY_SCRATCHPAD, 0, 0, got[2])))
        time.sleep_ms(_PROGRAM_MS)
        if bus.readbyte() != _COPIED:
            return False
        return self.read_row() == row
