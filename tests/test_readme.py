"""The documentation against the code: the protocol tables of docs/protocol.md are the protocol
module's own (regenerate them with `python -m penctl.docs --write` when a code, command or
profile changes), every link in README.md and docs/*.md leads to a file of this repository,
and to a heading that file has, the file map of docs/architecture.md is the tree as it is, and
every penctl module the documents name exists."""

import importlib
import re

from penctl import docs
from penctl.paths import CHECKOUT as ROOT

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"``.+?``|`[^`\n]+`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def documents(root=ROOT):
    return [root / "README.md"] + sorted((root / "docs").glob("*.md"))


def prose(text):
    """The text without code blocks and code spans, where `](...)` is not a link."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    for line in FENCE.sub("", path.read_text()).splitlines():
        if line.startswith("#"):
            base = slug(line.lstrip("#"))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else "%s-%d" % (base, n))
    return found


def broken_links(root=ROOT):
    """(document, target, why) for every relative link that does not lead where it says, or
    that leaves the repository (the repository must stand alone), and for every path the
    documents name that climbs out of it with ../, linked or not."""
    root = root.resolve()
    out = []
    for doc in documents(root):
        text = doc.read_text()
        for target in LINK.findall(prose(text)):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            name, _, anchor = target.partition("#")
            path = (doc.parent / name).resolve() if name else doc
            if not path.is_relative_to(root):
                out.append((doc.name, target, "leaves the repository"))
            elif not path.exists():
                out.append((doc.name, target, "no such file"))
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                out.append((doc.name, target, "no such heading in %s" % path.name))
        for named in re.findall(r"(?<![\w.])((?:\.\./)+[\w./-]+)", text):
            if not (doc.parent / named).resolve().is_relative_to(root):
                out.append((doc.name, named, "names a path outside the repository"))
    return out


def test_protocol_doc_tables_match_the_protocol_module():
    current = docs.generated_block((ROOT / docs.DOC).read_text())
    assert current is not None, "%s lost its generated-tables markers" % docs.DOC
    assert current == docs.block(), "%s is out of date: python -m penctl.docs --write" % docs.DOC


def test_the_tables_are_generated_in_one_place_only():
    holding = [d.relative_to(ROOT).as_posix() for d in documents()
               if docs.BEGIN in d.read_text()]
    assert holding == [docs.DOC]


def test_every_fault_command_and_profile_is_in_the_tables():
    text = docs.tables()
    for name in [f[0] for f in docs.P.FAULTS] + [c[0] for c in docs.P.COMMANDS] + \
            [p[0] for p in docs.P.PROFILES]:
        assert "`%s`" % name in text


def test_every_relative_link_leads_to_a_file_of_the_repository():
    assert broken_links() == []


def test_the_link_check_sees_a_broken_link_an_escape_and_a_missing_heading(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A title\n\n## Some `code` here\n")
    (tmp_path / "README.md").write_text(
        "[ok](docs/a.md#some-code-here) [gone](docs/b.md) [out](../x.md) "
        "[head](docs/a.md#nowhere) `[not a link](nowhere.md)` see `../shared/DESIGN.md`\n")
    assert sorted(broken_links(tmp_path)) == [
        ("README.md", "../shared/DESIGN.md", "names a path outside the repository"),
        ("README.md", "../x.md", "leaves the repository"),
        ("README.md", "../x.md", "names a path outside the repository"),
        ("README.md", "docs/a.md#nowhere", "no such heading in a.md"),
        ("README.md", "docs/b.md", "no such file"),
    ]


# ---- docs/architecture.md's file map against the tree ---------------------------------------
ARCHITECTURE = "docs/architecture.md"
# what the map must name, file by file (a package's __init__.py it may leave out)
MAPPED = ("firmware/*.py", "boards/*.json", "host/penctl/*.py", "host/penctl/sim/*.py",
          "host/penctl/sim/vm/*.py")
_ENTRY = re.compile(r"^( {0,6})((?:[\w.-][\w./-]*, )*[\w.-][\w./-]*)(?: |$)")


def mapped_paths(text):
    """The paths the first code block of the map names: an entry is a line indented by at
    most 6 spaces, its names (comma separated) before the description, under the folder
    entries (ending in /) indented less than it."""
    block = FENCE.search(text).group(0).splitlines()[1:-1]
    folders, named = [], []  # folders: (indent, path) of the enclosing folder entries
    for line in block:
        found = _ENTRY.match(line)
        if not found:
            continue  # a description's continuation, indented to its column
        indent = len(found.group(1))
        while folders and folders[-1][0] >= indent:
            folders.pop()
        prefix = folders[-1][1] if folders else ""
        for name in found.group(2).split(", "):
            named.append(prefix + name)
            if name.endswith("/"):
                folders.append((indent, prefix + name))
    return named


def map_mismatches(root=ROOT):
    """(path, why) for every path the map names that is not in the tree, and every file of
    MAPPED that the map does not name."""
    named = mapped_paths((root / ARCHITECTURE).read_text())
    out = [(path, "named, not in the tree") for path in named
           if not (root / path.rstrip("/")).exists()]
    for pattern in MAPPED:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            if path.name != "__init__.py" and rel not in named:
                out.append((rel, "in the tree, not in the map"))
    return out


def test_the_architecture_map_is_the_tree():
    assert map_mismatches() == []


def test_the_map_check_sees_a_missing_and_an_unmapped_file(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "firmware").mkdir()
    for name in ("a.py", "b.py", "c.py"):
        (tmp_path / "firmware" / name).write_text("")
    (tmp_path / ARCHITECTURE).write_text(
        "# Map\n\n```\nfirmware/   the firmware\n  a.py, b.py  two modules\n"
        "              gone.py in a description is no entry\n  gone.py     not there\n```\n")
    assert sorted(map_mismatches(tmp_path)) == [
        ("firmware/c.py", "in the tree, not in the map"),
        ("firmware/gone.py", "named, not in the tree"),
    ]


# ---- penctl modules the documents name --------------------------------------------------------
_MODULE = re.compile(r"(?<![\w.])penctl(?:\.\w+)+")


def missing_names(dotted):
    """'' if penctl.a.b... resolves (modules, then attributes), else its first part that
    does not."""
    module = importlib.import_module("penctl")
    parts = dotted.split(".")
    for i in range(1, len(parts)):
        name = ".".join(parts[: i + 1])
        if hasattr(module, "__path__"):  # a package: a submodule, or one of its names
            try:
                module = importlib.import_module(name)
                continue
            except ModuleNotFoundError as e:
                if e.name != name:
                    raise
        if not hasattr(module, parts[i]):
            return name
        module = getattr(module, parts[i])
    return ""


def test_every_penctl_module_the_documents_name_exists():
    named = {m for doc in documents() for m in _MODULE.findall(doc.read_text())}
    assert named  # the pattern still finds them
    assert sorted(m for m in named if missing_names(m)) == []


def test_the_module_check_sees_a_module_and_a_name_that_are_gone():
    assert missing_names("penctl.firmware.protocol") == ""
    assert missing_names("penctl.deploy.deploy") == ""
    assert missing_names("penctl.protocol") == "penctl.protocol"
    assert missing_names("penctl.paths.NOWHERE") == "penctl.paths.NOWHERE"
