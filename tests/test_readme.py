"""The documentation against the code: the protocol tables of docs/protocol.md are the protocol
module's own (regenerate them with `python -m penctl.docs --write` when a code, command or
profile changes), and every link in README.md and docs/*.md leads to a file of this repository,
and to a heading that file has."""

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
