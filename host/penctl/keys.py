"""Each board's key on the host, and the commands that need it. The key: 32 random bytes
(firmware/auth.py), made when `pen deploy` first gives a board its key, kept as hex in
`<key dir>/<uid>.key` (mode 0600, the directory 0700), named by the board's
`machine.unique_id()` as HELLO reports it. The key directory is the user's config directory
(`click.get_app_dir("pen")`/keys), or PEN_KEY_DIR: tests and parallel workers keep their
keys apart from the user's own."""

import os
import secrets
from pathlib import Path

import click

from .errors import RefusedError
from .firmware import auth, integrity, wire
from .firmware import protocol as P

ENV = "PEN_KEY_DIR"


class MissingKeyError(RefusedError):
    """This host has no key for the board: it cannot answer the board's challenge."""


def key_dir():
    return Path(os.environ.get(ENV) or Path(click.get_app_dir("pen")) / "keys")


def path(uid):
    if not uid or not all(c in "0123456789abcdef" for c in uid):
        raise RefusedError("the board reported no usable unique id (%r)" % uid, "AUTH")
    return key_dir() / ("%s.key" % uid)


def load(uid):
    """The board's key; MissingKeyError saying where it was looked for and how to recover."""
    where = path(uid)
    try:
        key = bytes.fromhex(where.read_text().strip())
    except FileNotFoundError:
        raise MissingKeyError(
            "no key for board %s in %s: service mode and calibration need the key this "
            "board got at its deploy. Copy %s.key from the host that deployed it (or set "
            "%s to its key directory); if the key is lost, erase and reflash the board "
            "(`pen flash --erase`, then `pen deploy`: its flash and log are wiped and it "
            "gets a new key; docs/security.md)" % (uid, where.parent, uid, ENV), "AUTH") from None
    except ValueError:
        key = b""
    if len(key) != integrity.KEY_BYTES:
        raise MissingKeyError("the key file %s is damaged (not %d bytes of hex)"
                              % (where, integrity.KEY_BYTES), "AUTH")
    return key


def new(uid):
    """A fresh random key for the board, saved (0600) before any board holds it."""
    key = secrets.token_bytes(integrity.KEY_BYTES)
    save(uid, key)
    return key


def save(uid, key):
    where = path(uid)
    where.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = where.with_suffix(".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key.hex() + "\n")
    os.chmod(tmp, 0o600)  # an older file of that name kept its mode
    os.replace(tmp, where)


def forget(uid):
    """Remove the host's copy (a virtual board's, when it closes)."""
    try:
        path(uid).unlink()
    except FileNotFoundError:
        pass


def answer(key, nonce, uid, command, fields=()):
    """mac= for `command` with its other [(name, text)] fields, as the board checks it."""
    return auth.answer(key, nonce, uid, command, fields)


# ---- the commands that need it (Pen.keyed, Pen.config) ----------------------------------------
def keyed(pen, command, params):
    """CHALLENGE, then the command with mac=, the answer under this board's key. A
    firmware from before keyed access does not know CHALLENGE, nor keys: the command goes
    as it takes it, so that `pen deploy` can bring such a board up to date (and give it
    its key)."""
    uid = pen.info.get("uid", "")
    try:
        nonce = pen.request("CHALLENGE")[0]["nonce"]  # changes nothing on the board
    except RefusedError as e:
        if e.code != "UNKNOWN_CMD":
            raise
        return pen.request(command, **params)
    mac = answer(load(uid), nonce, uid, command, wire.request_fields(params))
    return pen.request(command, **params, mac=mac)


def config(pen, values):
    """CONFIG: the preferences as they are, the calibration keyed, in a request of its own
    (with a 64-digit mac= beside them all, a line passes the board's 160 bytes). Everything
    that can be refused here is refused before anything is sent, so a refusal saves
    nothing; only a refusal of the answer itself (AUTH) comes after the preferences."""
    names = {entry[0] for entry in P.CALIBRATION}
    calibration = {n: v for n, v in values.items() if n in names}
    if not calibration:
        return pen.request("CONFIG", **values)[0]
    load(pen.info.get("uid", ""))  # no key: nothing is sent
    for name, text in wire.request_fields(calibration):
        entry = P.spec(name)
        try:
            P.check_value(entry, P.parse_fixed(text, entry[2]))
        except P.ProtocolError as e:
            raise RefusedError("CONFIG refused (%s): %s" % (e.code, e.message), e.code) from None
    preferences = {n: v for n, v in values.items() if n not in names}
    if preferences:
        pen.request("CONFIG", **preferences)
    try:
        return keyed(pen, "CONFIG", calibration)[0]
    except RefusedError as e:
        if preferences:
            e.message += "; the other settings were saved, the calibration was not"
            e.args = (e.message,)
        raise
