# Keyed access: what only the holder of this board's key may do (service mode, calibration).
# `pen deploy` puts a key of 32 random bytes in the file "key" (integrity.py, which also
# checks the manifest by it); no command reads it out. A keyed command is a
# challenge-response: CHALLENGE gives a fresh random nonce, and the next keyed command
# carries mac=, the HMAC-SHA256 under the key of "<nonce> <board uid> <command and its other
# arguments as sent>". So an answer is bound to one board, one command with its values, and
# one challenge: it counts once, right or wrong, and an answer to an earlier challenge (a
# replay) is wrong. Each wrong answer doubles the wait before the next challenge (1 s, 2 s,
# ... 64 s), counted in a file so that a reset does not end it. No module of the pen's
# motor side is imported here; the host imports it too (penctl.firmware.auth), for answer().
import binascii
import os
import time

if "." in __name__:  # the host, where this file is penctl.firmware.auth
    from . import wire
    from .integrity import hmac_sha256, read_key
else:  # the board
    import wire  # type: ignore[no-redef]
    from integrity import hmac_sha256, read_key  # type: ignore[no-redef]

try:
    from micropython import const
except ImportError:  # the host

    def const(x):  # type: ignore[misc]
        return x


FAILS_FILE = "auth_fails"  # wrong answers in a row (integrity.DATA)
_NONCE_BYTES = const(16)
_NONCE_MS = const(30000)  # a challenge not answered within 30 s is void
_WAIT_MAX_DOUBLINGS = const(6)  # the wait after wrong answers: 1 s doubled, at most 64 s


def answer(key, nonce, uid, name, fields=()):
    """The mac= for command `name` with its other [(name, text)] fields: hex HMAC of
    '<nonce> <uid> <CMD a=1 b=2>'."""
    msg = ("%s %s %s" % (nonce, uid, wire.command_text(name, fields))).encode()
    return binascii.hexlify(hmac_sha256(key, msg)).decode()


def failures():
    try:
        with open(FAILS_FILE) as f:
            return int(f.read(4))
    except (OSError, ValueError):
        return 0


def _count_failure(n):
    try:
        if n:
            with open(FAILS_FILE, "w") as f:
                f.write(str(n))
        else:
            os.remove(FAILS_FILE)
    except OSError:
        pass


# A board's challenge state is a plain list the caller keeps, [nonce out or None, when it was
# given, when the last wrong answer came (or the boot)]: the firmware drops this module
# after each use (admin_cmds), and a class kept alive would keep it on the heap.
_NONCE = const(0)
_GIVEN = const(1)
_FAILED = const(2)


def new_state():
    return [None, 0, time.ticks_ms()]  # a wait counted before a reset runs again from boot


def challenge(state, now_ms):
    """A fresh nonce (hex); the one out before is void. Raises ValueError(reason)."""
    if read_key() is None:
        raise ValueError("this board has no key: erase and reflash it, then pen deploy "
                         "gives it one (docs/security.md, recovery)")
    n = failures()
    if n:
        wait = (1 << min(n - 1, _WAIT_MAX_DOUBLINGS)) * 1000 - time.ticks_diff(
            now_ms, state[_FAILED])
        if wait > 0:
            raise ValueError("%d wrong answers in a row: no challenge for %d s more"
                             % (n, (wait + 999) // 1000))
    state[_NONCE] = binascii.hexlify(os.urandom(_NONCE_BYTES)).decode()
    state[_GIVEN] = now_ms
    return state[_NONCE]


def check(state, uid, name, args, now_ms):
    """Judge keyed command `name`, its [(name, text)] arguments with mac= among them.
    Returns the arguments without mac; raises ValueError(reason) for a refusal, counted as
    a wrong answer unless no challenge was out. The nonce is spent either way."""
    nonce, state[_NONCE] = state[_NONCE], None
    mac = None
    rest = []
    for pair in args:
        if pair[0] == "mac":
            mac = pair[1]
        else:
            rest.append(pair)
    if nonce is None:
        raise ValueError("%s needs a fresh CHALLENGE: each answers one command" % name)
    key = read_key()
    why = None
    if key is None:
        why = "this board has no key"
    elif time.ticks_diff(now_ms, state[_GIVEN]) > _NONCE_MS:
        why = "the challenge expired (30 s)"
    elif mac is None:
        why = "%s needs mac=, the answer to the challenge" % name
    elif not _same(mac, answer(key, nonce, uid, name, rest)):
        why = "wrong answer to the challenge"
    if why:
        _count_failure(failures() + 1)
        state[_FAILED] = now_ms
        raise ValueError(why)
    _count_failure(0)
    return rest


def _same(a, b):
    # every byte compared, whatever the first difference: no timing tells how much matched
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0
