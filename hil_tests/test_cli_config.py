"""`pen config` and `pen profile` as an operator or a script meets them. Few tests, many
steps each: every test costs a fresh board and every step a process start."""

import json
import os
import subprocess
import sys

from penctl.firmware.protocol import PROFILES, SAVED

USAGE, REFUSED = 2, 3


def pen(port, *args, timeout=60):
    cmd = [sys.executable, "-m", "penctl"] + (["--port", port] if port else []) + list(args)
    # without a port the CLI must not find one in the caller's environment either
    env = {k: v for k, v in os.environ.items() if k != "PEN_PORT"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def ok_json(port, *args):
    done = pen(port, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_config_set_get_refusal_and_reset(port):
    before = ok_json(port, "config", "get")
    assert set(before) == {"profile", "source", *SAVED}
    assert before["source"] in ("saved", "defaults")

    ok_json(port, "config", "set", "--profile", "cheeks", "--telemetry", "50",
            "--link-timeout", "800", "--run-limit", "600", "--current-zero", "-12",
            "--supply-gain", "1010")
    saved = ok_json(port, "config", "get")
    assert saved == {"profile": "cheeks", "telemetry": "50", "link_timeout": "800",
                     "run_limit": "600", "current_zero": "-12", "supply_gain": "1010",
                     "test_mode": "0", "source": "saved"}

    refused = pen(port, "config", "set", "--link-timeout", "5000")
    assert refused.returncode == REFUSED and "outside 100..2000 ms" in refused.stderr
    assert "nothing was saved" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one sentence, no traceback
    assert pen(port, "config", "set").returncode == USAGE
    assert ok_json(port, "config", "get") == saved
    shown = pen(port, "config", "get")
    assert shown.returncode == 0 and "800 ms" in shown.stdout and "settings file" in shown.stdout

    reset = pen(port, "config", "reset")
    assert reset.returncode == 0 and "periorbital profile" in reset.stdout
    assert ok_json(port, "config", "get")["profile"] == "periorbital"


def test_profile_use_changes_the_caps_the_board_enforces(port):
    assert ok_json(port, "config", "reset")["profile"] == "periorbital"
    rows = ok_json(port, "profile", "list")
    assert [r["name"] for r in rows] == [p[0] for p in PROFILES]
    assert [r["name"] for r in rows if r["active"]] == ["periorbital"]

    refused = pen(port, "--json", "set", "--depth", "1.5")
    assert refused.returncode == REFUSED
    assert "periorbital profile's cap of 0.500 mm" in refused.stderr

    used = ok_json(port, "profile", "use", "cheeks")
    assert (used["profile"], used["cap"]) == ("cheeks", "1.500")
    assert ok_json(port, "set", "--depth", "1.5")["depth"] == "1.500"
    listed = pen(port, "profile", "list")
    marked = [line for line in listed.stdout.splitlines() if "*" in line and "cheeks" in line]
    assert listed.returncode == 0 and marked and "active on the board" in listed.stdout
    ok_json(port, "config", "reset")  # a real board is left as the other tests expect it


def test_profiles_without_a_board():
    listed = pen(None, "profile", "list")
    assert listed.returncode == 0 and "periorbital" in listed.stdout
    assert "active profile unknown" in listed.stdout
    assert all(r["active"] is None for r in ok_json(None, "profile", "list"))
    assert ok_json(None, "profile", "show", "cheeks") == {
        "name": "cheeks", "area": "cheeks", "depth_cap_mm": 1.5, "rate_cap_hz": 150.0}
    for args in (("profile", "show", "nose"), ("profile", "use", "nose")):
        unknown = pen(None, *args)
        assert unknown.returncode == USAGE and "periorbital, forehead, cheeks" in unknown.stderr
