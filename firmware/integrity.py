# Boot-time check of the deployed files against the manifest `pen deploy` writes last,
# so a tampered or half-copied file never gets to run the motor. The manifest has the
# format of sha256sum ("<hex>  <name>" per line): `sha256sum -c` checks a copy on a PC.
# Imports nothing of the firmware: no module may run before it has been judged. The
# host builds manifests with this same module, so both sides share one format. The manifest
# is keyed: manifest.mac holds its HMAC-SHA256 under the board's own key (auth.py), which
# only `pen deploy` with that key writes, so files and a matching manifest written by
# anyone without the key are refused like any other mismatch.
import binascii
import hashlib
import os

MANIFEST = "manifest.sha256"
MAC = "manifest.mac"
KEY_FILE = "key"  # the board's key: 32 random bytes from pen deploy; no command reads it
KEY_BYTES = 32
# Everything on the flash that is not deployed code: what the firmware itself writes. The one
# table of them (pen deploy keeps them too); any other file or folder is a mismatch.
DEPLOYED = "deployed"  # pen deploy's records, which the firmware logs at its next boot
DATA = ("settings.txt", "settings.new", "treatment.txt", "treatment.new", "events.log", "service",
        "failed_boots", KEY_FILE,
        "auth_fails", DEPLOYED)
_CHUNK = 512


def hmac_sha256(key, msg):
    """RFC 2104 over hashlib.sha256 (the ESP32 port has no hmac module)."""
    key = key + bytes(64 - len(key))
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    inner.update(msg)
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    outer.update(inner.digest())
    return outer.digest()


def manifest_mac(key, text):
    """What manifest.mac holds for a manifest's text: hex HMAC under the board's key."""
    return binascii.hexlify(hmac_sha256(key, text.encode())).decode()


def read_key():
    """This board's key, or None when it has none (a board not deployed since keys came)."""
    try:
        with open(KEY_FILE, "rb") as f:
            key = f.read(KEY_BYTES + 1)
    except OSError:
        return None
    return key if len(key) == KEY_BYTES else None


def digest(name, buf=None):
    """Hex SHA-256 of a file's bytes, or None if it cannot be read."""
    if buf is None:
        buf = bytearray(_CHUNK)
    view = memoryview(buf)
    h = hashlib.sha256()
    try:
        with open(name, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
    except OSError:
        return None
    return binascii.hexlify(h.digest()).decode()


def format_manifest(entries):
    """Manifest text from [(name, hexdigest)]."""
    return "".join("%s  %s\n" % (hexdigest, name) for name, hexdigest in entries)


def parse_manifest(text):
    """[(name, hexdigest)] from manifest text; ValueError on a malformed line."""
    entries = []
    for line in text.split("\n"):
        if not line:
            continue
        hexdigest, sep, name = line.partition("  ")
        if len(hexdigest) != 64 or not sep or not name or "/" in name:
            raise ValueError("malformed manifest line")
        int(hexdigest, 16)
        entries.append((name, hexdigest))
    return entries


def check():
    """What is wrong, as [(file, reason)]; empty when every listed file matches and the flash
    holds nothing else but the manifest and DATA. Nothing unlisted may stay: a .py or a
    package folder by a module's name is imported before its .mpy, and the check cannot
    know which names some import will ever look for."""
    try:
        with open(MANIFEST) as f:
            # at most 4 KB (a deploy writes ~25 lines of 83 bytes): a huge file must not run
            # the heap out before the watchdog exists
            text = f.read(4097)
        if len(text) > 4096:
            raise ValueError
        entries = parse_manifest(text)
    except OSError:
        return [(MANIFEST, "missing")]
    except ValueError:
        return [(MANIFEST, "corrupt")]
    if not entries:
        return [(MANIFEST, "empty")]
    key = read_key()
    if key is None:
        return [(KEY_FILE, "missing: no key to check the manifest by")]
    try:
        with open(MAC) as f:
            mac = f.read(65)
    except OSError:
        return [(MAC, "missing")]
    if mac != manifest_mac(key, text):
        return [(MAC, "does not match the manifest under the board's key")]
    buf = bytearray(_CHUNK)
    problems = []
    listed = set()
    for name, want in entries:
        listed.add(name)
        got = digest(name, buf)
        if got != want:
            problems.append((name, "missing" if got is None else "hash mismatch"))
    for name in os.listdir():
        if name not in listed and name != MANIFEST and name != MAC and name not in DATA:
            problems.append((name, "not deployed"))
    return problems


def trusted(problems, *modules):
    """True if none of these modules (by name, .py or .mpy) is among the problems; nothing
    is trusted when the manifest itself is wrong."""
    for name, _ in problems:
        if name in (MANIFEST, MAC, KEY_FILE):
            return False
        for module in modules:
            if name == module or name.startswith(module + "."):  # a package folder too
                return False
    return True


def refuse(problems):
    """The board's answer to damaged files: the lockout (lockout.py: FAULT INTEGRITY on the
    link, nothing moves) when the modules it runs on are undamaged, else one printed line."""
    if trusted(problems, "protocol", "codes", "link", "lockout", "app_mode", "auth", "eventlog",
               "wire"):
        import lockout

        lockout.run(problems)
    else:
        print("pen: INTEGRITY %s %s: the firmware cannot run; deploy it again (pen deploy)"
              % problems[0])
