# Stand-in for the `onewire` driver the ESP32 port freezes into its firmware
# (ports/esp32/boards/manifest.py: require("onewire"), from micropython-lib): the class
# OneWire over the `_onewire` primitives, with its names and arguments: reset(required),
# readbit, readbyte, readinto, write, writebit, writebyte, select_rom, scan, crc8, and
# OneWireError. Written here from its documented interface (docs/esp32/quickref.rst).
import _onewire as _ow


class OneWireError(Exception):
    pass


class OneWire:
    SEARCH_ROM = 0xF0
    MATCH_ROM = 0x55
    SKIP_ROM = 0xCC

    def __init__(self, pin):
        self.pin = pin
        pin.init(pin.OPEN_DRAIN, pin.PULL_UP)

    def reset(self, required=False):
        found = _ow.reset(self.pin)
        if required and not found:
            raise OneWireError
        return found

    def readbit(self):
        return _ow.readbit(self.pin)

    def readbyte(self):
        return _ow.readbyte(self.pin)

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = _ow.readbyte(self.pin)

    def writebit(self, value):
        return _ow.writebit(self.pin, value)

    def writebyte(self, value):
        return _ow.writebyte(self.pin, value)

    def write(self, buf):
        for b in buf:
            _ow.writebyte(self.pin, b)

    def select_rom(self, rom):
        self.reset()
        self.writebyte(self.MATCH_ROM)
        self.write(rom)

    def crc8(self, data):
        return _ow.crc8(data)

    def scan(self):
        # the ROM search: at each of the 64 bits read the chips' bit and its complement;
        # where both values answer, take 0 the first time, and on the next pass 1 at the
        # last such fork (the bits before it as before)
        found = []
        rom = bytearray(8)
        fork = -1
        while True:
            if not self.reset():
                return found
            self.writebyte(self.SEARCH_ROM)
            last, fork = fork, -1
            for i in range(64):
                bit, other = self.readbit(), self.readbit()
                if bit and other:
                    return found  # no chip answered this bit
                if not bit and not other:
                    bit = 1 if i == last else rom[i >> 3] >> (i & 7) & 1 if i < last else 0
                    if not bit:
                        fork = i
                if bit:
                    rom[i >> 3] |= 1 << (i & 7)
                else:
                    rom[i >> 3] &= ~(1 << (i & 7))
                self.writebit(bit)
            found.append(bytes(rom))
            if fork < 0:
                return found
