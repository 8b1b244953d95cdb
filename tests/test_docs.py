"""The documentation cannot drift from the code: configuration fields, links, CLI commands."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from guard_core.cli.app import cli
from guard_core.cli.settings import env_name
from guard_core.models import SecurityConfig

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = (
    "configuration.md",
    "key-layout.md",
    "outages.md",
    "operations.md",
    "architecture.md",
    "migration.md",
)
ROW = re.compile(
    r"^\| `(?P<field>\w+)` \| `(?P<env>\w+)` \| `(?P<type>[^`]+)` \| `(?P<default>[^`]*)` \|"
)


def _documented() -> dict[str, re.Match[str]]:
    rows = {}
    for line in (DOCS / "configuration.md").read_text().splitlines():
        match = ROW.match(line)
        if match:
            assert match["field"] not in rows, f"{match['field']} documented twice"
            rows[match["field"]] = match
    return rows


def _default(field: dataclasses.Field[object]) -> object:
    if field.default is not dataclasses.MISSING:
        return field.default
    assert field.default_factory is not dataclasses.MISSING
    return field.default_factory()


def test_configuration_reference_lists_every_field_once() -> None:
    fields = [f.name for f in dataclasses.fields(SecurityConfig)]
    assert sorted(_documented()) == sorted(fields)


@pytest.mark.parametrize("field", dataclasses.fields(SecurityConfig), ids=lambda f: f.name)
def test_configuration_reference_gives_the_real_default_and_variable(
    field: dataclasses.Field[object],
) -> None:
    row = _documented()[field.name]
    assert row["default"] == repr(_default(field))
    assert row["env"] == env_name(field.name)
    annotation = str(field.type).replace("|", "\\|")
    assert row["type"] == annotation


def test_readme_links_every_page_and_every_link_resolves() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in PAGES:
        assert f"(docs/{page})" in readme, f"README does not link docs/{page}"
    for source in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", source.read_text()):
            assert (source.parent / target).is_file(), f"{source.name} links missing {target}"


def test_operations_guide_covers_every_command() -> None:
    guide = (DOCS / "operations.md").read_text()
    for name, command in cli.commands.items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for sub in subcommands:
                assert f"guard-core {name} {sub}" in guide, f"{name} {sub} undocumented"
        else:
            assert f"guard-core {name}" in guide, f"{name} undocumented"
