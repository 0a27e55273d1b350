"""The README's protocol tables are the protocol module's own: regenerate them with
`python -m penctl.docs --write` when a code, command or profile changes."""

from penctl import docs
from penctl.paths import CHECKOUT as ROOT


def test_readme_protocol_tables_match_the_protocol_module():
    current = docs.readme_block((ROOT / "README.md").read_text())
    assert current is not None, "README.md lost its generated-tables markers"
    assert current == docs.block(), "README.md is out of date: python -m penctl.docs --write"


def test_every_fault_command_and_profile_is_in_the_tables():
    text = docs.tables()
    for name in [f[0] for f in docs.P.FAULTS] + [c[0] for c in docs.P.COMMANDS] + \
            [p[0] for p in docs.P.PROFILES]:
        assert "`%s`" % name in text
