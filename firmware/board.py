# The board definition (board.json on the board's flash, from boards/ in the repo):
# pins, calibration, limits and timings. Nothing else in the firmware holds such numbers.
import json


def load(path="board.json"):
    with open(path) as f:
        return json.load(f)


def u16(fraction):
    """A duty fraction (0..1) as a duty_u16 integer."""
    return int(fraction * 65535 + 0.5)
