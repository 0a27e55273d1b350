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
