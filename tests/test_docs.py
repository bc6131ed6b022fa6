"""The docs name every command, normalised column and quarantine reason the code has."""

from __future__ import annotations

import pytest

from crmwatch.cli import app
from crmwatch.schema import EVENT_VIEW_COLUMNS, Reason
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
SOURCES = (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", [c.name for c in app.registered_commands])
def test_every_command_is_in_the_readme(command: str):
    assert f"crmwatch {command}" in README


@pytest.mark.parametrize("column", [c for c in EVENT_VIEW_COLUMNS])
def test_every_event_column_is_documented(column: str):
    assert f"`{column}`" in SOURCES


@pytest.mark.parametrize("reason", [r.value for r in Reason])
def test_every_quarantine_reason_is_documented(reason: str):
    assert f"`{reason}`" in SOURCES


def test_events_view_matches_its_documented_column_list(real_store):
    cols = [r[0] for r in real_store.execute("DESCRIBE events").rows]
    assert tuple(cols) == EVENT_VIEW_COLUMNS


RULES_DOC = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")


def test_every_builtin_rule_is_in_the_pack_table():
    from crmwatch.detect.rules import builtin_rule_dir, load_rules

    for rf in load_rules():
        name = rf.path.relative_to(builtin_rule_dir()).with_suffix("").as_posix()
        assert f"`{name}` | {rf.kind}" in RULES_DOC.replace(" (org)", ""), name


def test_every_virtual_field_is_documented():
    from crmwatch.detect.where import VIRTUAL_FIELDS

    for name in VIRTUAL_FIELDS:
        assert f"| `{name}` |" in RULES_DOC


def test_every_posture_check_and_subject_attribute_is_documented():
    from crmwatch.posture.checks import load_checks

    doc = (ROOT / "docs" / "posture.md").read_text(encoding="utf-8")
    for check in load_checks():
        assert f"`{check.id}` — {check.title} | {check.severity} |" in doc, check.id
        for block in check.where:
            for condition in block:
                assert f"`{condition.attr}`" in doc, (check.id, condition.attr)
