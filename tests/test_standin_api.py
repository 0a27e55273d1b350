"""The virtual board's machine.py copies the ESP32 port's API: every public class,
method, parameter and constant it offers exists, by the same name, in the pinned
micropython-esp32-stubs (machine.pyi)."""

import ast
import sysconfig
from pathlib import Path

import pytest

STANDIN = Path(__file__).parents[1] / "host" / "penctl" / "sim" / "vm" / "machine.py"
STUBS = Path(sysconfig.get_paths()["purelib"]) / "machine.pyi"


def _params(fn):
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg != "self"]
    return names, a.kwarg is not None or a.vararg is not None


def _public(name):
    return not name.startswith("_") or name == "__init__" or name == "__call__"


def api(source):
    """{name: {"params": {method: [(params, takes_varargs, doc)]}, "attrs": set()}}"""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            entry = out.setdefault(node.name, {"methods": {}, "attrs": set()})
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and _public(item.name):
                    params, var = _params(item)
                    doc = ast.get_docstring(item) or ""
                    entry["methods"].setdefault(item.name, []).append((params, var, doc))
                elif isinstance(item, ast.Assign | ast.AnnAssign):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    entry["attrs"].update(t.id for t in targets
                                          if isinstance(t, ast.Name) and _public(t.id))
        elif isinstance(node, ast.FunctionDef) and _public(node.name):
            params, var = _params(node)
            out.setdefault(node.name, {"function": []})["function"].append(
                (params, var, ast.get_docstring(node) or ""))
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and not t.id.startswith("_"):
                    out[t.id] = {"constant": True}
    return out


def _param_known(name, variants):
    for params, var, doc in variants:
        if name in params or (var and name in doc):
            return True
    return False


def mismatches(standin_source, stub_source):
    ours, theirs = api(standin_source), api(stub_source)
    problems = []
    for name, entry in ours.items():
        if name not in theirs:
            problems.append("machine.%s is not in the ESP32 port" % name)
            continue
        if "function" in entry:
            for params, _, _ in entry["function"]:
                problems += ["machine.%s(%s) has no such parameter" % (name, p)
                             for p in params if not _param_known(p, theirs[name]["function"])]
        for attr in entry.get("attrs", ()):
            if attr not in theirs[name]["attrs"]:
                problems.append("%s.%s is not in the ESP32 port" % (name, attr))
        for method, variants in entry.get("methods", {}).items():
            stub_variants = theirs[name]["methods"].get(method)
            if stub_variants is None:
                problems.append("%s.%s() is not in the ESP32 port" % (name, method))
                continue
            for params, _, _ in variants:
                problems += ["%s.%s(%s) has no such parameter" % (name, method, p)
                             for p in params if not _param_known(p, stub_variants)]
    return problems


def test_standin_matches_esp32_stubs():
    assert STUBS.is_file(), "micropython-esp32-stubs is not installed (make setup)"
    assert mismatches(STANDIN.read_text(), STUBS.read_text()) == []


@pytest.mark.parametrize("fake, expected", [
    ("class PWM:\n    def duty_percent(self, value): pass\n", "PWM.duty_percent()"),
    ("class ADC:\n    def read_uv(self, fast): pass\n", "ADC.read_uv(fast)"),
    ("class Pin:\n    HIGH_Z = 9\n", "Pin.HIGH_Z"),
    ("class Servo:\n    pass\n", "machine.Servo"),
    ("def reset_cause(detail):\n    pass\n", "machine.reset_cause(detail)"),
])
def test_checker_catches_invented_api(fake, expected):
    problems = mismatches(fake, STUBS.read_text())
    assert any(expected in p for p in problems), problems


SIMHW = STANDIN.parent / "simhw.py"


def _int_value(node, known):
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "const" and node.args:
        return _int_value(node.args[0], known)
    if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "simhw":
        return known.get(node.attr)
    return None


def int_values(source, simhw=None):
    """{name or Class.name: int} of the assignments whose value a reader can tell: a
    literal, const(literal), or one of simhw's constants (`simhw.OUT`)."""
    out = {}
    for node in ast.parse(source).body:
        items = [(node.name + ".", item) for item in node.body] \
            if isinstance(node, ast.ClassDef) else [("", node)]
        for prefix, item in items:
            if isinstance(item, ast.Assign):
                targets, value = item.targets, item.value
            elif isinstance(item, ast.AnnAssign) and item.value is not None:
                targets, value = [item.target], item.value
            else:
                continue
            number = _int_value(value, simhw or {})
            out.update((prefix + t.id, number) for t in targets
                       if isinstance(t, ast.Name) and number is not None)
    return out


def test_standin_constants_have_the_esp32_ports_values():
    # the register file carries them as they are (simhw's G_MODE holds machine.Pin's mode)
    ours = int_values(STANDIN.read_text(), int_values(SIMHW.read_text()))
    theirs = int_values(STUBS.read_text())
    assert {"Pin.IN", "Pin.OUT", "PWRON_RESET", "WDT_RESET"} <= set(ours)
    assert {name: (value, theirs.get(name)) for name, value in ours.items()
            if not name.split(".")[-1].startswith("_") and theirs.get(name) != value} == {}


def test_reset_causes_are_the_protocols_on_both_sides():
    """The firmware names machine.reset_cause() by the protocol's RESET_CAUSES; the VM's
    machine.py and the host's virtual chip number the causes the same way."""
    from penctl.firmware.codes import RESET_CAUSES
    from penctl.sim import chip

    vm = int_values(STANDIN.read_text())
    for constant, name in (("PWRON_RESET", "PWRON"), ("HARD_RESET", "HARD"),
                           ("WDT_RESET", "WATCHDOG"), ("SOFT_RESET", "SOFT")):
        assert RESET_CAUSES[vm[constant]] == name
        assert getattr(chip, constant) == vm[constant]
