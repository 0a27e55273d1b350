"""The host package's layout, read with `ast` (nothing is imported):

- the virtual board (penctl.sim) does not depend on the client, the deploy tool or the CLI:
  it must run from a package where they are broken or absent, and a change there must not
  reach the board that tests them. Walked through every penctl module sim imports, so a
  shared module that pulls the client in is caught too.
- no file in host/penctl/ is over MAX_LINES lines unless its opening comment or docstring
  has a line starting with MARKER that says why.
"""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "host" / "penctl"
SIM = PACKAGE / "sim"
FORBIDDEN = ("penctl.client", "penctl.deploy", "penctl.cli")
MAX_LINES = 300
MARKER = "Long because:"
# Known long files without a reason: none (the list is kept for the test's own sake)
LONG_WITHOUT_REASON: set[str] = set()


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_file(name):
    """The file of module `name` (dotted, under penctl), or None if it is none of ours."""
    parts = name.split(".")
    if parts[0] != "penctl":
        return None
    base = PACKAGE.parent.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path):
    """The modules a file imports, as absolute dotted names. A name imported from a
    package is the submodule when there is one (`from .. import deploy`). The VM's files
    import their neighbours by bare name (`import simhw`): those are resolved to them."""
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else _module_name(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module
            names = [base + "." + alias.name if _module_file(base + "." + alias.name)
                     else base for alias in node.names]
        else:
            continue
        for name in names:
            if (path.parent / (name + ".py")).is_file() and "." not in name:
                name = _module_name(path.parent / (name + ".py"))
            found.append(name)
    return found


def _forbidden(name):
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_sim_imports_nothing_from_the_client_the_deploy_tool_or_the_cli():
    problems = []
    seen = set()
    todo = [(path, []) for path in sorted(SIM.rglob("*.py"))]
    while todo:
        path, chain = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            via = chain + [_module_name(path)]
            if _forbidden(name):
                problems.append("%s imports %s" % (" -> ".join(via), name))
            elif (target := _module_file(name)) is not None:
                todo.append((target, via))
    assert not problems, "\n".join(sorted(set(problems)))


def _opening_text(path):
    """The module docstring, or the comment lines a file opens with."""
    source = path.read_text()
    doc = ast.get_docstring(ast.parse(source))
    if doc:
        return doc
    lines = []
    for line in source.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return "\n".join(lines)


def test_no_host_file_is_long_without_saying_why():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = str(path.relative_to(PACKAGE))
        lines = len(path.read_text().splitlines())
        if lines <= MAX_LINES or name in LONG_WITHOUT_REASON:
            continue
        if not any(line.strip().startswith(MARKER)
                   for line in _opening_text(path).splitlines()):
            problems.append("%s: %d lines, and its opening comment has no line starting %r"
                            % (name, lines, MARKER))
    assert not problems, "\n".join(problems)


def test_the_walk_sees_a_relative_import_of_the_deploy_tool(tmp_path, monkeypatch):
    """The checks above cannot pass for want of seeing an import: one written the way
    sim/board.py once imported deploy is found."""
    fake = tmp_path / "penctl"
    (fake / "sim").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "deploy.py").write_text("")
    (fake / "sim" / "__init__.py").write_text("")
    (fake / "sim" / "board.py").write_text("from .. import boards, deploy\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert "penctl.deploy" in _imports(fake / "sim" / "board.py")


def test_importing_the_virtual_board_loads_no_client():
    done = subprocess.run([sys.executable, "-c", "import sys, penctl.sim; print(sorted(m for m in "
                           "sys.modules if m.startswith(('penctl.client', 'penctl.deploy', "
                           "'penctl.cli'))))"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
