"""The virtual chip's flash, in its two views:

- the SPI flash image esptool writes through the ROM loader (rom.py): a file as large as
  the chip's flash. The ROM boots MicroPython only if a valid app image header sits at the
  app offset; a new board holds a MicroPython-like one there.
- the MicroPython filesystem the firmware runs from: a directory the VM mounts as "/",
  holding what a finished `pen deploy` leaves (bundle.py's files and manifest).
"""

import shutil

from .. import bundle, chips
from ..firmware import integrity
from .rom import ROMS

FLASH_SIZE = 4 * 1024 * 1024
# ESP32_GENERIC's partition table (partitions-4MiBplus.csv, ports/esp32 at v1.26.0) ends
# the app at 0x200000, and MicroPython's main.c registers the rest of the flash as the
# "vfs" partition, LittleFS: the filesystem vm/littlefs.py gives the flash directory
VFS_OFFSET = 0x200000
# LittleFS's superblock names itself at offset 8 of its first block (lfs2.c): what tells a
# formatted partition from an erased one (ports/esp32/modules/inisetup.py, check_bootsec)
_LFS_MAGIC = b"littlefs"
# what the port's inisetup.setup() writes on the filesystem it has just made (v1.26.0)
_INITIAL_BOOT_PY = ("# This file is executed on every boot (including wake-boot from deepsleep)\n"
                    "#import esp\n#esp.osdebug(None)\n#import webrepl\n#webrepl.start()\n")


class SpiFlash:
    def __init__(self, path, chip, vfs_dir):
        self.path = path
        self.vfs_dir = vfs_dir  # the partition's files (vm/littlefs.py)
        self.size = FLASH_SIZE
        self.chip_id = ROMS[chip].spec.image_chip_id
        self.app_offset = ROMS[chip].spec.app_offset

    def factory(self):
        """Erased flash holding a MicroPython-like image header at the app offset, as a
        board arrives: magic 0xE9, one segment, chip id in the extended header."""
        header = bytearray(b"\xff" * 24)
        header[0:4] = bytes([0xE9, 1, 2, 0x20])
        header[12:14] = self.chip_id.to_bytes(2, "little")
        with open(self.path, "wb") as f:
            f.write(b"\xff" * self.size)
            f.seek(self.app_offset)
            f.write(bytes(header))
            f.seek(VFS_OFFSET + 8)
            f.write(_LFS_MAGIC)  # a filesystem there: the deployed files (fill_filesystem)

    def initial_setup(self):
        """At a boot of MicroPython: an erased "vfs" partition (esptool erase-flash, `pen
        flash --erase`) gets a new, empty LittleFS with the port's boot.py in it, as
        _boot.py's mount fails and inisetup.setup() runs. True if it did."""
        with open(self.path, "r+b") as f:
            f.seek(VFS_OFFSET)
            if f.read(4096) != b"\xff" * 4096:
                return False
            f.seek(VFS_OFFSET + 8)
            f.write(_LFS_MAGIC)
        shutil.rmtree(self.vfs_dir, ignore_errors=True)
        self.vfs_dir.mkdir()
        (self.vfs_dir / "boot.py").write_text(_INITIAL_BOOT_PY)
        return True

    def app_valid(self):
        """The ROM boots the app only if a valid image header sits at the app offset."""
        with open(self.path, "rb") as f:
            f.seek(self.app_offset)
            header = f.read(24)
        chip_id = int.from_bytes(header[12:14], "little")
        return header[0] == chips.IMAGE_MAGIC and chip_id == self.chip_id


def fill_filesystem(flash_dir, board_name, mpy_arch, firmware_dir, key):
    """The filesystem as a finished `pen deploy` leaves it (the same bundle and manifest,
    and the board's key)."""
    flash_dir.mkdir(parents=True)
    files = bundle.bundle(board_name, mpy_arch, firmware_dir=firmware_dir)
    for name, data in files.items():
        (flash_dir / name).write_bytes(data)
    text = bundle.manifest(files)
    (flash_dir / integrity.MANIFEST).write_text(text)
    (flash_dir / integrity.KEY_FILE).write_bytes(key)
    (flash_dir / integrity.MAC).write_text(integrity.manifest_mac(key, text))
