"""Chip targets, one class each (as esptool keeps them): what flashing needs to know."""


class Chip:
    name = ""  # esptool's --chip
    image_chip_id = -1  # chip id in an ESP image's extended header
    app_offset = 0  # where a MicroPython firmware image goes


class ESP32(Chip):
    name = "esp32"
    image_chip_id = 0
    app_offset = 0x1000


class ESP32S3(Chip):
    name = "esp32s3"
    image_chip_id = 9
    app_offset = 0x0


class ESP32C3(Chip):
    name = "esp32c3"
    image_chip_id = 5
    app_offset = 0x0


CHIPS = {c.name: c for c in (ESP32, ESP32S3, ESP32C3)}
BY_IMAGE_ID = {c.image_chip_id: c for c in CHIPS.values()}
IMAGE_MAGIC = 0xE9
