"""Every rule's inline tests, the pack's load, and the benign real samples staying quiet."""

from __future__ import annotations

import pytest

from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect, stored_alerts
from crmwatch.detect.testing import run_test
from crmwatch.store import Store

PACK = load_rules()
CASES = [(rf, t) for rf in PACK for t in rf.tests]


def test_pack_loads_and_every_rule_has_a_positive_and_a_negative_test():
    assert PACK
    for rf in PACK:
        assert not rf.errors
        assert {t.expected for t in rf.tests} == {True, False}, rf.path.name
        assert rf.main.falsepositives, f"{rf.path.name}: false-positive notes missing"


@pytest.mark.parametrize(
    ("rf", "test"), CASES, ids=[f"{rf.path.stem}: {t.name}" for rf, t in CASES]
)
def test_rule(rf, test):
    result = run_test(rf, test)
    assert result.passed, (
        f"expected {'match' if test.expected else 'no match'}, got {result.alerts} alerts"
    )


def test_benign_real_samples_raise_no_high_or_critical_alert(real_store: Store):
    detect(real_store, PACK)
    alerts = stored_alerts(real_store, "run_alerts")
    assert [a for a in alerts if a.level in ("high", "critical")] == []


def test_detect_is_idempotent(real_store: Store):
    detect(real_store, PACK)
    before = real_store.scalar("SELECT count(*) FROM alerts")
    assert before > 0  # the samples raise medium and low alerts
    detect(real_store, PACK)
    assert real_store.scalar("SELECT count(*) FROM alerts") == before


def test_alert_principal_falls_back_to_the_user_id(tmp_path):
    # LoginHistory names the user by id only.
    from crmwatch.ingest import ingest
    from tests.conftest import ROOT

    with Store(tmp_path / "s.duckdb") as s:
        ingest(s, [ROOT / "tests" / "fixtures" / "ingest" / "loginhistory_oauthtoken.json"])
        detect(s, PACK)
        [a] = [a for a in stored_alerts(s) if "Tor" in a.title]
        assert a.principal == "0055j00000Adv01AAA"


def test_ocsf_export_is_a_detection_finding_per_alert(tmp_path):
    import json

    from typer.testing import CliRunner

    from crmwatch.cli import app
    from tests.conftest import ROOT

    db = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(ROOT / "tests" / "fixtures" / "ingest"), "--db", db])
    alerts = [
        json.loads(x)
        for x in runner.invoke(app, ["detect", "--db", db, "--json"]).output.splitlines()
    ]
    r = runner.invoke(app, ["alerts", "export", "--ocsf", str(tmp_path / "f.json"), "--db", db])
    assert r.exit_code == 0, r.output
    text = (tmp_path / "f.json").read_text()
    findings = json.loads(text)
    assert len(findings) == len(alerts) > 0
    # written a finding at a time, the same bytes as one json.dumps of the whole list
    assert text == json.dumps(findings, indent=2)
    assert not list(tmp_path.glob(".*.part"))
    by_uid = {f["finding_info"]["uid"]: f for f in findings}
    for a in alerts:
        f = by_uid[a["alert_id"]]
        assert (f["class_uid"], f["category_uid"], f["type_uid"], f["activity_id"]) == (
            2004,
            2,
            200401,
            1,
        )
        # OCSF severity_id: 1 Informational, 2 Low, 3 Medium, 4 High, 5 Critical
        assert f["severity_id"] == {"low": 2, "medium": 3, "high": 4}[a["level"]]
        assert [e["uid"] for e in f["finding_info"]["related_events"]] == a["event_ids"]
        assert f["finding_info"]["analytic"]["uid"] == a["rule_id"]
        assert (
            f["finding_info"]["first_seen_time"] <= f["finding_info"]["last_seen_time"] == f["time"]
        )
    techniques = {t["technique"]["uid"] for f in findings for t in f["attacks"]}
    assert "T1567" in techniques
