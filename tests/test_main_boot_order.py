"""main.py against Ctrl-C at boot. MicroPython turns Ctrl-C on as main.py starts
(shared/runtime/pyexec.c) and the VM raises a pending KeyboardInterrupt at its next branch
(py/vm.c). So main.py's first statement turns Ctrl-C off, and nothing before the try whose
finally resets may branch or run code that does: a KeyboardInterrupt raised there would end
main.py at the REPL. A Ctrl-C flood cannot hit a window of a few bytecodes reliably
(hil_tests/test_lifecycle.py floods it anyway); this holds the window's shape."""

import ast

from penctl.paths import FIRMWARE_DIR

BRANCHING = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.BoolOp, ast.IfExp,
             ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Call, ast.Assert)


def _module():
    return ast.parse((FIRMWARE_DIR / "main.py").read_text()).body


def _before_the_try():
    body = _module()
    first_try = next(i for i, node in enumerate(body) if isinstance(node, ast.Try))
    return body[:first_try], body[first_try]


def test_ctrl_c_is_turned_off_first():
    head, _ = _before_the_try()
    assert ast.unparse(head[0]) == "import micropython"
    assert ast.unparse(head[1]) == "micropython.kbd_intr(-1)"


def test_nothing_branches_before_the_try_whose_finally_resets():
    head, guard = _before_the_try()
    for node in head[2:]:
        if isinstance(node, (ast.Import, ast.FunctionDef)):
            continue  # a def runs nothing; imports of the port's built-in modules branch not
        assert isinstance(node, ast.Assign), ast.unparse(node)
        inner = [n for n in ast.walk(node.value) if isinstance(n, BRANCHING)]
        assert not inner, ast.unparse(node)
    assert guard.finalbody and "machine.reset()" in ast.unparse(guard.finalbody)


def test_the_imports_before_the_try_are_the_ports_built_in_modules():
    head, _ = _before_the_try()
    names = {a.name for node in head if isinstance(node, ast.Import) for a in node.names}
    assert names <= {"micropython", "gc", "os", "sys", "machine"}, names
