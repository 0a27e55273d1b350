"""Board definitions: boards/<name>.json, with "extends" naming a base definition."""

import json

from .errors import UsageError
from .paths import BOARDS_DIR


def names():
    return sorted(p.stem for p in BOARDS_DIR.glob("*.json"))


def load(name):
    """The merged definition of a board (base first, then the board's own keys)."""
    path = BOARDS_DIR / ("%s.json" % name)
    if not path.is_file():
        raise UsageError("no board definition %r; known boards: %s" % (name, ", ".join(names())))
    own = json.loads(path.read_text())
    base = load(own.pop("extends")) if "extends" in own else {}
    return _merge(base, own)


def _merge(base, own):
    out = dict(base)
    for key, value in own.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def firmware_definition(board):
    """What the board's flash holds as board.json: everything but the simulator's physics."""
    return {k: v for k, v in board.items() if k != "physics"}


def to_json(definition):
    """board.json as deployed: one spelling, so identical definitions hash the same."""
    return json.dumps(definition, indent=1, sort_keys=True)
