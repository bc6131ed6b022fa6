"""The field-mapping pipeline on the real Okta samples: rules written against Okta's own field
names (SigmaHQ style, camelCase or lower-case) select the same events as the normalised ones,
and ``logsource.product`` keeps Okta rules off Salesforce events and back."""

from __future__ import annotations

import json

import pytest
from sigma.collection import SigmaCollection

from crmwatch.detect.where import rule_where
from crmwatch.store import Store
from tests.conftest import REAL, ROOT


def selected(store: Store, product: str, detection: str) -> list[tuple]:
    rule = SigmaCollection.from_yaml(
        f"title: t\nlogsource: {{product: {product}}}\ndetection:\n{detection}\n"
    ).rules[0]
    return store.execute(
        f"SELECT source, operation FROM events WHERE {rule_where(rule)} ORDER BY ALL"
    ).rows


def test_lower_case_okta_names_and_raw_paths(real_store: Store):
    got = selected(
        real_store,
        "okta",
        """
  sel:
    eventtype: user.authentication.verify
    debugcontext.debugdata.behaviors|contains: 'New Device=POSITIVE'
  condition: sel""",
    )
    assert got == [("okta", "user.authentication.verify")]


def test_camel_case_names_reach_columns_and_raw(real_store: Store):
    got = selected(
        real_store,
        "okta",
        """
  sel:
    eventType: policy.evaluate_sign_on
    outcome.result: ALLOW
    actor.alternateId|contains: '@'
  condition: sel""",
    )
    by_columns = selected(
        real_store,
        "okta",
        """
  sel:
    operation: policy.evaluate_sign_on
    outcome: success
    user_name|contains: '@'
  condition: sel""",
    )
    assert got == by_columns
    assert len(got) >= 2


def test_a_field_inside_the_target_array_matches_any_element(real_store: Store):
    admin_console = """
  sel:
    eventType: user.session.start
    target.displayName: Okta Admin Console
  condition: sel"""
    assert selected(real_store, "okta", admin_console) == [("okta", "user.session.start")]
    # negation holds for events whose targets all differ, including those with none
    not_console = selected(
        real_store,
        "okta",
        """
  sel:
    eventType: user.session.start
  console:
    target.displayName: Okta Admin Console
  condition: sel and not console""",
    )
    starts = selected(real_store, "okta", "  sel: {eventType: user.session.start}\n"
                                          "  condition: sel")  # fmt: skip
    assert len(not_console) == len(starts) - 1


@pytest.mark.parametrize(("product", "sources"), [
    ("okta", {"okta"}), ("salesforce", {"salesforce"}), ("crmwatch", {"okta", "salesforce"}),
])  # fmt: skip
def test_logsource_product_picks_the_source(real_store: Store, product: str, sources: set):
    got = selected(real_store, product, "  sel: {category: authentication}\n  condition: sel")
    assert {source for source, _ in got} == sources


def test_a_users_sigmahq_style_okta_rule_runs_from_the_cli(tmp_path):
    """A rule folder as a user keeps it: SigmaHQ's layout and field names, no tests."""
    from typer.testing import CliRunner

    from crmwatch.cli import app
    from tests.conftest import REAL

    rules = tmp_path / "okta-rules"
    rules.mkdir()
    (rules / "okta_new_device_verify.yml").write_text(
        "title: Okta verification from a device Okta calls new\n"
        "id: 6f1c0a3e-0000-4000-8000-00000000000a\n"
        "status: test\nlogsource:\n    product: okta\n    service: okta\n"
        "detection:\n    selection:\n        eventtype: user.authentication.verify\n"
        "        debugcontext.debugdata.behaviors|contains: 'New Device=POSITIVE'\n"
        "    condition: selection\nlevel: medium\n"
    )
    db = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(REAL / "okta"), "--db", db]).exit_code == 0
    listed = runner.invoke(app, ["rules", "list", "--rules", str(rules)])
    assert "6f1c0a3e-0000-4000-8000-00000000000a  medium    match" in listed.output
    found = runner.invoke(app, ["detect", "--db", db, "--rules", str(rules), "--json"])
    assert found.exit_code == 0, found.output
    ids = [json.loads(line)["rule_id"] for line in found.output.splitlines()]
    assert ids.count("6f1c0a3e-0000-4000-8000-00000000000a") == 1


SIGMAHQ = ROOT / "tests" / "fixtures" / "sigmahq"


def test_sigmahq_okta_rules_run_and_a_placeholder_rule_stops_nothing(tmp_path):
    """Issue 13: SigmaHQ's placeholder rule raised SigmaPlaceholderError inside detect: a
    traceback, exit 1, no alert from any rule. It is now named when the rules load, and the
    other 21 rules run and store their alerts."""
    from typer.testing import CliRunner

    from crmwatch.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["rules", "list", "--rules", str(SIGMAHQ)])
    assert listed.exit_code == 1
    assert "okta_session_impersonation_granted.yml" in listed.stdout
    assert "legtimate_identifiers" in listed.stdout
    assert len([ln for ln in listed.stdout.splitlines() if "(0 tests)" in ln]) >= 21
    db = str(tmp_path / "s.duckdb")
    assert runner.invoke(app, ["ingest", str(REAL / "okta"), "--db", db]).exit_code == 0
    res = runner.invoke(app, ["detect", "--db", db, "--rules", str(SIGMAHQ), "--json"])
    assert res.exit_code == 1, res.output
    assert "okta_session_impersonation_granted.yml" in res.stderr and "Traceback" not in res.output
    titles = {json.loads(line)["title"] for line in res.stdout.splitlines()}
    assert "Okta Suspicious Activity Reported by End-user" in titles


def test_a_rule_file_that_is_not_utf8_is_named_and_the_others_run(tmp_path):
    """Issue 14: detect, rules list and rules test printed a UnicodeDecodeError traceback."""
    from typer.testing import CliRunner

    from crmwatch.cli import app
    from tests.conftest import REAL

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "latin1.yml").write_bytes("title: Connexion réussie\n".encode("latin-1"))
    runner = CliRunner()
    db = str(tmp_path / "s.duckdb")
    runner.invoke(app, ["ingest", str(REAL / "okta"), "--db", db])
    for args in (["rules", "list"], ["rules", "test"], ["detect", "--db", db]):
        res = runner.invoke(app, [*args, "--rules", str(rules)])
        assert res.exit_code == 1, (args, res.output)
        assert "latin1.yml" in res.output and "utf-8" in res.output, args
        assert res.exception is None or isinstance(res.exception, SystemExit), args
