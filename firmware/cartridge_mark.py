# The needle cartridge's identity, shared by the board and the host (the virtual board's
# cartridges, the tests): its 1-Wire ROM id (family code, 48-bit serial, CRC-8) read and
# judged, and the pens' row on its chip (who used it, in which session, how many strokes).
# No sibling imports: the host imports it as penctl.firmware.cartridge_mark.
try:
    from micropython import const
except ImportError:  # CPython: the host

    def const(x):  # type: ignore[misc]
        return x


FAMILY = const(0x2D)  # DS2431-class 1-Wire EEPROM
_ROW = const(0x4E)  # the first byte of a pen's row on a cartridge


def crc8(data):
    """The 1-Wire ROM id's CRC-8 (Dallas/Maxim: x^8 + x^5 + x^4 + 1, reflected)."""
    crc = 0
    for b in data:
        for _ in range(8):
            mix = (crc ^ b) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            b >>= 1
    return crc


def read_id(rom):
    """(id, None) of a ROM id as read (8 bytes: family, serial, CRC; None: no chip), the id
    as 16 hex digits in that order; or (None, why START is refused)."""
    if rom is None:
        return None, "no cartridge ID chip answers: fit a pen cartridge"
    if crc8(rom[:7]) != rom[7]:
        return None, "cartridge ID fails its CRC: refit the cartridge"
    if rom[0] != FAMILY:
        return None, "not a pen cartridge (1-Wire family %02x)" % rom[0]
    return "".join("%02x" % b for b in rom), None


def is_test(cart):
    """A test cartridge: serial numbers ending fffe (the id's bytes 5 and 6), reserved for
    HIL tests and accepted only in test mode (docs/sessions.md)."""
    return cart[10:14] == "feff"


def pen_tag(uid):
    """This board's two bytes in a cartridge's row: the end of its chip id."""
    return int(uid[-4:], 16)


def encode_row(strokes, pen, session):
    """The pen's record on a cartridge: marker, strokes (24 bits), the pen that used it and
    that pen's session (low byte), CRC-8; pen 0: strokes only (a cartridge's count from the
    factory, no pen's mark)."""
    row = bytearray((_ROW, strokes & 0xFF, strokes >> 8 & 0xFF, min(strokes >> 16, 0xFF),
                     pen & 0xFF, pen >> 8, session & 0xFF, 0))
    row[7] = crc8(row[:7])
    return bytes(row)


def decode_row(row):
    """(strokes, pen, session) of a cartridge's row, or None if it holds no pen's record."""
    if row is None or row[0] != _ROW or crc8(row[:7]) != row[7]:
        return None
    return row[1] | row[2] << 8 | row[3] << 16, row[4] | row[5] << 8, row[6]
