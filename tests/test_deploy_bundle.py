"""The deploy bundle and the boot-time integrity check, in CPython: the manifest the host
writes is exactly what the firmware's check accepts, and every kind of damage is named."""

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from penctl import boards
from penctl.bundle import bundle, firmware_version, manifest, mpy_cross_version, mpy_target
from penctl.errors import UsageError
from penctl.firmware import app_mode, integrity
from penctl.firmware import protocol as firmware_protocol

KEY = bytes(range(32))  # the board's key (auth.py): only its holder writes manifest.mac


def write_bundle(files, into):
    for name, data in files.items():
        (into / name).write_bytes(data)
    (into / integrity.MANIFEST).write_text(manifest(files))
    (into / integrity.KEY_FILE).write_bytes(KEY)
    (into / integrity.MAC).write_text(integrity.manifest_mac(KEY, manifest(files)))


def rewrite_manifest_without_the_key(d):
    # a file edited and a matching manifest written, as anyone at the REPL could
    (d / "supervisor.py").write_text("# edited\n")
    files = {p.name: p.read_bytes() for p in d.iterdir()
             if p.name not in (integrity.MANIFEST, integrity.MAC, *integrity.DATA)}
    (d / integrity.MANIFEST).write_text(manifest(files))


@pytest.fixture
def flash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the check runs in the board's filesystem root
    write_bundle(bundle("esp32-devkitc"), tmp_path)
    return tmp_path


def test_a_deployed_bundle_passes_the_boot_check(flash):
    assert integrity.check() == []


def test_bundle_holds_firmware_and_board_definition():
    files = bundle("esp32-devkitc")
    assert {"main.py", "integrity.py", "board.json"} <= set(files)
    assert "boot.py" not in files  # a Ctrl-C while it runs skips main.py for the REPL
    board = json.loads(files["board.json"])
    assert board == boards.firmware_definition(boards.load("esp32-devkitc"))
    assert "physics" not in json.loads(bundle("virtual")["board.json"])


def test_mpy_bundle_compiles_modules_but_not_the_boot_files():
    files = bundle("esp32-devkitc", mpy_arch="xtensawin")
    assert "controller.mpy" in files and "controller.py" not in files
    assert files["controller.mpy"][:2] == b"M\x06"  # .mpy magic and format 6
    assert "main.py" in files and "main.mpy" not in files


@pytest.mark.parametrize("damage, problem", [
    (lambda d: (d / "supervisor.py").write_text("# edited\n"), ("supervisor.py", "hash mismatch")),
    (lambda d: (d / "motor.py").unlink(), ("motor.py", "missing")),
    (lambda d: (d / integrity.MANIFEST).unlink(), (integrity.MANIFEST, "missing")),
    (lambda d: (d / integrity.MANIFEST).write_text("nonsense\n"), (integrity.MANIFEST, "corrupt")),
    (lambda d: (d / integrity.MANIFEST).write_text(""), (integrity.MANIFEST, "empty")),
    (rewrite_manifest_without_the_key,
     (integrity.MAC, "does not match the manifest under the board's key")),
    (lambda d: (d / integrity.MAC).unlink(), (integrity.MAC, "missing")),
    (lambda d: (d / integrity.KEY_FILE).unlink(),
     (integrity.KEY_FILE, "missing: no key to check the manifest by")),
    (lambda d: (d / integrity.KEY_FILE).write_bytes(bytes(32)),
     (integrity.MAC, "does not match the manifest under the board's key")),
])
def test_every_kind_of_damage_is_named(flash, damage, problem):
    damage(flash)
    assert problem in integrity.check()


def test_anything_on_the_flash_not_deployed_is_caught_but_the_firmwares_data(tmp_path,
                                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_bundle(bundle("esp32-devkitc", mpy_arch=""), tmp_path)
    for name in integrity.DATA:  # what the firmware writes itself (the key: the deploy's)
        if name != integrity.KEY_FILE:
            (tmp_path / name).write_text("data\n")
    assert integrity.check() == []
    (tmp_path / "controller.py").write_text("# an old copy, imported before the .mpy\n")
    (tmp_path / "caps").mkdir()  # a package is imported before caps.mpy too
    (tmp_path / "notes.txt").write_text("# nothing imports it today; nothing may stay\n")
    assert sorted(integrity.check()) == [("caps", "not deployed"),
                                         ("controller.py", "not deployed"),
                                         ("notes.txt", "not deployed")]


def test_the_data_table_names_what_the_firmware_writes():
    from penctl.paths import FIRMWARE_DIR

    settings = (FIRMWARE_DIR / "settings.py").read_text()
    for written in ('FILE = "settings.txt"', 'NEW = "settings.new"'):
        assert written in settings and written.split('"')[1] in integrity.DATA
    assert 'FILE = "events.log"' in (FIRMWARE_DIR / "eventlog.py").read_text()
    assert "events.log" in integrity.DATA
    assert app_mode.SERVICE_FLAG in integrity.DATA


def test_a_manifest_too_long_to_be_one_is_corrupt(flash):
    # well-formed lines, but more than a deploy ever writes: not read whole into the heap
    (flash / integrity.MANIFEST).write_text("".join("%s  f%d.py\n" % ("0" * 64, i)
                                                   for i in range(100)))
    assert integrity.check() == [(integrity.MANIFEST, "corrupt")]


def test_only_undamaged_modules_are_trusted():
    problems = [("controller.py", "hash mismatch")]
    assert integrity.trusted(problems, "protocol", "link")
    assert not integrity.trusted(problems, "link", "controller")
    assert not integrity.trusted([(integrity.MANIFEST, "missing")], "protocol")
    assert not integrity.trusted([(integrity.MAC, "missing")], "protocol")
    assert not integrity.trusted([(integrity.KEY_FILE, "missing")], "protocol")
    assert not integrity.trusted([("link", "not deployed")], "link")  # a package folder


@given(st.dictionaries(st.from_regex(r"[a-z_]{1,12}\.(py|mpy|json)", fullmatch=True),
                       st.binary(max_size=64), max_size=8))
def test_manifest_round_trips(files):
    entries = integrity.parse_manifest(manifest(files))
    assert entries == [(name, hashlib.sha256(data).hexdigest()) for name, data in files.items()]


@pytest.mark.parametrize("line", ["abc  x.py", "%s x.py" % ("0" * 64), "%s  " % ("0" * 64),
                                  "%s  lib/x.py" % ("0" * 64), "%s  x.py" % ("g" * 64)])
def test_malformed_manifest_lines_are_refused(line):
    with pytest.raises(ValueError):
        integrity.parse_manifest(line + "\n")


def test_mpy_target_from_the_boards_own_report():
    major, minor = mpy_cross_version()
    word = lambda arch: major | minor << 8 | arch << 10  # noqa: E731
    assert mpy_target(word(10)) == "xtensawin"  # an ESP32
    assert mpy_target(word(2)) == "x64"  # the virtual board's VM on this machine
    assert mpy_target(word(0)) == ""  # bytecode only, loads anywhere
    with pytest.raises(UsageError, match="mpy-cross emits"):
        mpy_target(word(10) ^ 1)
    with pytest.raises(UsageError, match="does not say"):
        mpy_target(0)


def test_firmware_version_is_read_from_the_tree():
    assert firmware_version() == firmware_protocol.FIRMWARE_VERSION


def test_main_py_minimal_lockout_matches_the_protocol_and_the_data_table():
    # main.py cannot import protocol (it may be the damaged module): what it writes by
    # hand must match the one definition
    import ast

    from penctl.paths import FIRMWARE_DIR

    main = (FIRMWARE_DIR / "main.py").read_text()
    protocol = firmware_protocol
    assert main.count("proto=%d " % protocol.PROTOCOL_VERSION) == 2  # BOOT and HELLO
    assert protocol.index_of(protocol.FAULTS, "INTERNAL") >= 0
    assert protocol.index_of(protocol.FAULTS, "INTEGRITY") >= 0
    assert main.count('"%s"' % app_mode.SERVICE_FLAG) == 2
    assert '"failed_boots"' in main and "failed_boots" in integrity.DATA
    text = main.rstrip()
    lockout = text[text.rindex("\n\'\'\'\n# The minimal lockout") + 5 : -3]
    assert "import protocol" not in lockout and "import link" not in lockout
    ast.parse(lockout)  # the string main.py compiles when it must
