# Stand-in for the ESP32 port's C module `_onewire` (extmod/modonewire.c, v1.26.0): the bus
# primitives reset, readbit, readbyte, writebit, writebyte and crc8, each taking the pin.
# Behind them, the bus itself: the needle cartridge's ID chip, a DS2431 (1024-bit 1-Wire
# EEPROM) modelled at its bit slots, over the register file the host fills when a test fits
# a cartridge (simhw.C_*: VirtualBoard.insert_cartridge). It answers what the firmware
# and the port's `onewire` driver send: READ ROM, MATCH ROM, SKIP ROM, SEARCH ROM; READ
# MEMORY, WRITE SCRATCHPAD, READ SCRATCHPAD, COPY SCRATCHPAD (an 8-byte row, copied at
# once as on the chip; its 10 ms of programming are the master's to wait). Each primitive
# takes the chip's time the port's bit-banging takes (its TIMING_* delays): a reset ~0.96
# ms, a bit ~70 us. On a chip this is ROM and silicon: here it is a stand-in sim_start.py
# loads with machine.py (make bench counts it with them).
import time

import simhw

_IDLE = 0  # after a reset the chip waits for a ROM command; _IDLE ignores all until one
_ROM = 1
_MATCH = 2
_FUNCTION = 3
_ADDRESS = 4  # collecting a memory command's target address (and E/S for a copy)
_DATA = 5  # taking scratchpad data
_SEARCH = 6

# bus state: [state, command, bits in, byte in, bytes collected, search bit, search phase]
_s = [_IDLE, 0, 0, 0, 0, 0, 0]
_args = bytearray(3)  # TA1, TA2, E/S as the master sent them
_scratch = bytearray(8)  # the scratchpad's row
_out = bytearray(48)  # what the chip sends next
_o = [0, 0, 0]  # next bit to send, bits queued, then 1s (the bus released)
_sp = [0, 0, 0, 0]  # scratchpad: target address, E/S, valid (AA), partial (PF)


def _present(pin):
    # a chip answers on the cartridge's own pin only (C_CHIP holds its GPIO + 1)
    return simhw.regs.get(simhw.C_CHIP) == getattr(pin, "_id", -2) + 1


def _mem(i):
    return simhw.regs.read(simhw.C_MEM * 4 + i, 1)[0]


def _rom():
    return simhw.regs.read(simhw.C_ROM * 4, 8)


def _send(data):
    n = len(data)
    _out[:n] = data
    _o[0], _o[1] = 0, n * 8


def crc8(data):
    # the Dallas/Maxim CRC-8 (x^8 + x^5 + x^4 + 1, reflected) the port computes
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def _crc16(data, crc=0):
    # the DS2431's CRC-16 (x^16 + x^15 + x^2 + 1, reflected), sent inverted
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def reset(pin):
    time.sleep_us(960)
    _o[1] = 0
    if not _present(pin):
        _s[0] = _IDLE
        return False
    _s[0], _s[2], _s[3], _s[4] = _ROM, 0, 0, 0
    return True


def readbit(pin):
    time.sleep_us(70)
    if not _present(pin):
        return 1
    if _s[0] == _SEARCH:
        bit = _rom()[_s[5] >> 3] >> (_s[5] & 7) & 1
        _s[6] += 1
        return bit if _s[6] == 1 else bit ^ 1
    i = _o[0]
    if i >= _o[1]:
        return 1
    _o[0] = i + 1
    return _out[i >> 3] >> (i & 7) & 1


def writebit(pin, value):
    time.sleep_us(70)
    if not _present(pin):
        return
    if _s[0] == _SEARCH:
        i = _s[5]
        if (value & 1) != _rom()[i >> 3] >> (i & 7) & 1:
            _s[0] = _IDLE  # another chip's branch: this one drops out
        _s[5], _s[6] = i + 1, 0
        if i + 1 == 64:
            _s[0] = _FUNCTION
        return
    _s[3] |= (value & 1) << _s[2]
    _s[2] += 1
    if _s[2] == 8:
        b = _s[3]
        _s[2] = _s[3] = 0
        _byte(b)


def readbyte(pin):
    v = 0
    for i in range(8):
        v |= readbit(pin) << i
    return v


def writebyte(pin, value):
    for i in range(8):
        writebit(pin, value >> i & 1)


def _byte(b):
    st = _s[0]
    if st == _ROM:
        if b == 0x33:  # READ ROM
            _send(_rom())
            _s[0] = _FUNCTION
        elif b == 0xCC:  # SKIP ROM
            _s[0] = _FUNCTION
        elif b == 0x55:  # MATCH ROM
            _s[0], _s[4] = _MATCH, 0
        elif b == 0xF0:  # SEARCH ROM
            _s[0], _s[5], _s[6] = _SEARCH, 0, 0
        else:
            _s[0] = _IDLE
    elif st == _MATCH:
        if b != _rom()[_s[4]]:
            _s[0] = _IDLE
        else:
            _s[4] += 1
            if _s[4] == 8:
                _s[0] = _FUNCTION
    elif st == _FUNCTION:
        _function(b)
    elif st == _ADDRESS:
        _address(b)
    elif st == _DATA:
        n = _s[4]
        if n < 8 - (_sp[0] & 7):
            _scratch[(_sp[0] & 7) + n] = b
            _s[4] = n + 1
            _sp[1] = (_sp[0] & 7) + n
            _sp[3] = 1 if _sp[1] != 7 else 0
            _send_crc_of_write()


def _function(b):
    if b in (0xF0, 0x0F, 0x55):  # READ MEMORY, WRITE and COPY SCRATCHPAD: an address first
        _s[1], _s[0], _s[4] = b, _ADDRESS, 0
    elif b == 0xAA:  # READ SCRATCHPAD: TA1 TA2 E/S, the row from the target on, CRC-16
        ta = _sp[0]
        es = _sp[1] | (0x20 if _sp[3] else 0) | (0x80 if _sp[2] else 0)
        head = bytes((0xAA, ta & 0xFF, ta >> 8, es))
        body = bytes(_scratch[ta & 7:(_sp[1] & 7) + 1])
        crc = _crc16(head + body) ^ 0xFFFF
        _send(head[1:] + body + bytes((crc & 0xFF, crc >> 8)))
        _s[0] = _IDLE
    else:
        _s[0] = _IDLE


def _address(b):
    n = _s[4]
    _args[n] = b
    _s[4] = n + 1
    cmd = _s[1]
    if n == 1 and cmd == 0xF0:  # READ MEMORY from the address to the last register
        ta = _args[0] | _args[1] << 8
        _send(simhw.regs.read(simhw.C_MEM * 4 + ta, max(0, simhw.C_MEM_BYTES - ta)))
        _s[0] = _IDLE
    elif n == 1 and cmd == 0x0F:  # WRITE SCRATCHPAD: data follows
        ta = _args[0] | _args[1] << 8
        _sp[0], _sp[2], _sp[3] = ta, 0, 1
        for i in range(8):
            _scratch[i] = _mem((ta & ~7) + i) if ta + 8 <= simhw.C_MEM_BYTES else 0xFF
        _s[0], _s[4] = _DATA, 0
    elif n == 2 and cmd == 0x55:  # COPY SCRATCHPAD: the authorisation must match
        ta = _args[0] | _args[1] << 8
        if ta == _sp[0] and _args[2] == _sp[1] | (0x20 if _sp[3] else 0) and not _sp[3] \
                and not ta & 7 and ta < 0x80:
            simhw.regs.write(simhw.C_MEM * 4 + (ta & ~7), bytes(_scratch))
            _sp[2] = 1
            _send(b"\xaa" * 6)
        _s[0] = _IDLE


def _send_crc_of_write():
    # after a full row the chip sends the inverted CRC-16 of command, address and data
    if _s[4] == 8 - (_sp[0] & 7):
        ta = _sp[0]
        crc = _crc16(bytes((0x0F, ta & 0xFF, ta >> 8)) + bytes(_scratch[ta & 7:])) ^ 0xFFFF
        _send(bytes((crc & 0xFF, crc >> 8)))
