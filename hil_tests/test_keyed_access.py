"""Locked product mode (docs/security.md): nobody with the USB cable drives the needles
around the firmware. Application mode gives no REPL to the ordinary tools; service mode and
the calibration need the board's key (firmware/auth.py), and every attempt is logged; a
manifest rewritten without the key locks the motor out."""

import hashlib

import pytest
from conftest import board_sleep, motor_stopped, mpremote, mpremote_fails, patient_pen, wait_until
from penctl import RefusedError, keys
from penctl.firmware import integrity

pytestmark = pytest.mark.injects


def flash_files(board):
    """Every file but the event log (mpremote's Ctrl-C is a realtime STOP, which it logs)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(board.flash_dir.iterdir()) if p.name != "events.log"}


def auth_records(pen):
    return [r["text"] for r in pen.log() if r["event"] == "AUTH"]


@pytest.mark.long(25)
def test_mpremote_gets_nothing_from_application_mode_and_changes_nothing(board):
    with patient_pen(board.url) as pen:
        pen.home()
    before = flash_files(board)
    out = mpremote_fails(board.port, "exec", "import machine")
    assert "raw repl" in out.lower() or "could not" in out.lower(), out
    mpremote_fails(board.port, "fs", "ls")
    assert ">>> " not in board.output() and not board.bridge.at_repl
    assert flash_files(board) == before
    with patient_pen(board.url) as pen:  # still the firmware, as it was
        assert pen.status().state == "READY"
    assert motor_stopped(board)


def test_service_without_the_key_is_refused_naming_the_key_and_the_way_back(board):
    keys.forget(board.uid.hex())
    with patient_pen(board.url) as pen:
        with pytest.raises(keys.MissingKeyError) as missing:
            pen.service()
        assert board.uid.hex() in str(missing.value) and "pen flash --erase" in str(missing.value)
        # a SERVICE sent as it was before keys came: refused under AUTH, and logged
        with pytest.raises(RefusedError) as refused:
            pen.request("SERVICE")
        assert refused.value.code == "AUTH"
        assert pen.status().state == "IDLE"
        assert any("cmd=SERVICE result=refused" in t for t in auth_records(pen))
    assert not (board.flash_dir / "service").exists()


def test_a_wrong_answer_is_refused_logged_and_the_next_challenge_waits(board):
    uid = board.uid.hex()
    right = keys.load(uid)
    keys.save(uid, bytes(32))  # another key than the board's
    with patient_pen(board.url) as pen:
        with pytest.raises(RefusedError) as wrong:
            pen.service()
        assert wrong.value.code == "AUTH" and "wrong answer" in wrong.value.message
        with pytest.raises(RefusedError, match="no challenge for [12] s more"):
            pen.request("CHALLENGE")
        board_sleep(1.2)  # the first wait: 1 s
        keys.save(uid, bytes(32))
        with pytest.raises(RefusedError, match="wrong answer"):  # a second wrong answer
            pen.service()
        with pytest.raises(RefusedError, match="no challenge for [1-3] s more"):
            pen.request("CHALLENGE")  # 2 s now
        keys.save(uid, right)
        board_sleep(2.2)
        refused = [t for t in auth_records(pen) if "result=refused" in t]
        assert len(refused) >= 2
        pen.service()  # the right key, after the wait
    wait_until(lambda: ">>> " in board.output(), 10, "service mode's REPL")


def test_an_answer_counts_once_a_replay_is_refused(board):
    uid = board.uid.hex()
    key = keys.load(uid)
    with patient_pen(board.url) as pen:
        nonce = pen.request("CHALLENGE")[0]["nonce"]
        mac = keys.answer(key, nonce, uid, "CONFIG", [("current_zero", "4")])
        pen.request("CONFIG", current_zero=4, mac=mac)
        assert pen.config()["current_zero"] == "4"
        # the same answer again, with a fresh challenge out or none: refused, logged
        with pytest.raises(RefusedError) as replay:
            pen.request("CONFIG", current_zero=4, mac=mac)
        assert replay.value.code == "AUTH"
        pen.request("CHALLENGE")
        with pytest.raises(RefusedError, match="wrong answer"):
            pen.request("CONFIG", current_zero=4, mac=mac)
        # an answer for one command does not open another
        board_sleep(1.2)  # past the wait of the wrong answer above
        nonce = pen.request("CHALLENGE")[0]["nonce"]
        mac = keys.answer(key, nonce, uid, "CONFIG", [("current_zero", "9")])
        with pytest.raises(RefusedError, match="wrong answer"):
            pen.request("SERVICE", mac=mac)
        texts = auth_records(pen)
        assert sum("result=refused" in t for t in texts) >= 3
        assert any("cmd=CONFIG result=granted" in t for t in texts)
    assert not (board.flash_dir / "service").exists()


def test_calibration_needs_the_key_and_the_profile_does_not(board):
    keys.forget(board.uid.hex())
    with patient_pen(board.url) as pen:
        with pytest.raises(RefusedError) as refused:
            pen.request("CONFIG", current_zero=20)
        assert refused.value.code == "AUTH"
        with pytest.raises(keys.MissingKeyError):
            pen.config(supply_gain=1010, telemetry=25)
        assert pen.config()["supply_gain"] == "1000" and pen.config()["telemetry"] != "25"
        assert pen.config(profile="cheeks", telemetry=25)["profile"] == "cheeks"  # operator's
        pen.use_profile("forehead")


@pytest.mark.long(30)
def test_files_and_a_manifest_rewritten_without_the_key_lock_the_motor_out(board, tmp_path):
    with patient_pen(board.url) as pen:
        pen.service()
    wait_until(lambda: ">>> " in board.output(), 10, "service mode's REPL")
    # at the REPL anyone with the key's session could write anything; this writer has no
    # key: an edited module and the manifest that matches it
    edited = tmp_path / "codes.py"  # deployed as source
    edited.write_text((board.flash_dir / "codes.py").read_text() + "# edited\n")
    mpremote(board.port, "fs", "cp", str(edited), ":codes.py")
    files = {p.name: p.read_bytes() for p in board.flash_dir.iterdir()
             if p.name not in (integrity.MANIFEST, integrity.MAC, *integrity.DATA)}
    forged = tmp_path / integrity.MANIFEST
    forged.write_text(integrity.format_manifest(
        [(n, hashlib.sha256(d).hexdigest()) for n, d in sorted(files.items())]))
    mpremote(board.port, "fs", "cp", str(forged), ":" + integrity.MANIFEST, "+",
             "fs", "rm", ":service", "+", "reset")
    board_sleep(1.0)
    with patient_pen(board.url) as pen:
        st = pen.status()
        assert "INTEGRITY" in st.faults
        with pytest.raises(RefusedError):
            pen.request("HOME")
    assert motor_stopped(board)
    assert "manifest.mac does not match" in board.output()


@pytest.mark.long(40)
def test_a_lost_key_is_recovered_by_erasing_and_deploying_again(board, tmp_path):
    # the documented way back (docs/security.md): physical access, and the flash and its
    # log are wiped; `pen flash --erase` then `pen deploy` gives the board a new key
    from penctl.deploy import deploy
    from penctl.flash import flash
    from test_flash import PTY, esp_image

    uid = board.uid.hex()
    keys.forget(uid)
    board.enter_download_mode()
    flash(board.port, esp_image(tmp_path / "fw.bin"), "virtual", erase=True, **PTY)
    board.reset()
    wait_until(lambda: ">>> " in board.output(), 10, "MicroPython's REPL on a new filesystem")
    assert [p.name for p in board.flash_dir.iterdir()] == ["boot.py"]  # files, log, key: gone
    report = deploy(board.port, board="virtual")
    assert report.key == "new" and "boot.py" in report.removed
    assert len(keys.load(uid)) == 32 and (keys.path(uid).stat().st_mode & 0o777) == 0o600
    with patient_pen(board.url) as pen:
        assert pen.status().state == "IDLE"
        events = [r["text"] for r in pen.log()]
        assert any(t.startswith("DEPLOY") for t in events)
        assert any(t.startswith("KEY change=new") for t in events)
        pen.service()  # the new key opens service mode
    wait_until(lambda: ">>> " in board.output()[-200:], 10, "service mode's REPL")


@pytest.mark.long(30)
@pytest.mark.parametrize("damaged", ["supervisor.mpy", "protocol.mpy"],
                         ids=["lockout", "minimal-lockout"])
def test_both_lockouts_want_the_key_for_service(board, damaged):
    # a board locked out by a damaged file still gives service mode, for pen deploy to
    # repair it: only to the key's holder
    uid = board.uid.hex()
    right = keys.load(uid)
    target = board.flash_dir / damaged
    target.write_bytes(target.read_bytes()[:100])
    board.reset()
    keys.save(uid, bytes(32))
    with patient_pen(board.url) as pen:
        assert pen.status().faults == ["INTEGRITY"]
        with pytest.raises(RefusedError) as wrong:
            pen.service()
        assert wrong.value.code == "AUTH"
        with pytest.raises(RefusedError, match="wait|no challenge"):
            pen.request("CHALLENGE")
        keys.save(uid, right)
        board_sleep(1.2)
        pen.service()
    wait_until(lambda: ">>> " in board.output()[-300:], 10, "service mode's REPL")
    if damaged == "supervisor.mpy":  # the lockout logs; the minimal one has no log module
        log = (board.flash_dir / "events.log").read_bytes()
        assert b"AUTH cmd=SERVICE result=refused" in log
        assert b"AUTH cmd=SERVICE result=granted" in log


def test_nothing_keyed_is_judged_while_the_needles_run(running_pen, board):
    # refused for the state before any answer is judged: a wrong one is counted on the
    # flash, whose writes stall the control loop
    for command, params in (("CHALLENGE", {}), ("CONFIG", {"current_zero": 3, "mac": "0" * 64}),
                            ("SERVICE", {"mac": "0" * 64})):
        with pytest.raises(RefusedError) as refused:
            running_pen.request(command, **params)
        assert refused.value.code == "STATE", command
    assert not (board.flash_dir / "auth_fails").exists()
    assert board.observe()["motor_duty"] > 0


def test_pen_deploy_without_the_key_stops_before_touching_the_board_and_says_why(board):
    import subprocess
    import sys

    keys.forget(board.uid.hex())
    before = flash_files(board)
    done = subprocess.run([sys.executable, "-m", "penctl", "--port", board.url, "deploy"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no key for board %s" % board.uid.hex() in done.stderr
    assert "pen flash --erase" in done.stderr and "Traceback" not in done.stderr
    assert flash_files(board) == before and not (board.flash_dir / "service").exists()
    with patient_pen(board.url) as pen:
        assert pen.status().state == "IDLE"


# the firmware as it was before keyed access: no CHALLENGE, a SERVICE that takes no answer
BEFORE_KEYS = [
    ("codes.py", '("CHALLENGE", "", ("a fresh nonce', '("CHALLENGE_", "", ("a fresh nonce'),
    ("admin_cmds.py", '''    if keyed(cmds, "SERVICE", args, now_ms):
        raise P.ProtocolError("MALFORMED", "SERVICE takes only mac=")
''', ""),
]


@pytest.mark.long(30)
def test_a_board_on_a_firmware_from_before_keys_is_brought_up_to_date_by_pen_deploy(tmp_path):
    # It knows no CHALLENGE (refused as UNKNOWN_CMD) and its SERVICE takes no answer:
    # Pen.keyed() sends the command as that firmware takes it, and the deploy puts the
    # firmware of today on the board
    from mutants import build
    from penctl.deploy import deploy
    from penctl.sim import VirtualBoard

    build(BEFORE_KEYS, tmp_path / "fw")
    with VirtualBoard(firmware_dir=tmp_path / "fw") as board:
        with patient_pen(board.url) as pen:
            with pytest.raises(RefusedError) as unknown:
                pen.request("CHALLENGE")
            assert unknown.value.code == "UNKNOWN_CMD"
        report = deploy(board.url, board="virtual")
        assert {"codes.py", "admin_cmds.mpy"} <= set(report.copied) and report.key == "kept"
        with patient_pen(board.url) as pen:
            assert pen.status().faults == [] and pen.request("CHALLENGE")[0]["nonce"]
