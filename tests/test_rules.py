"""Every rule's inline tests, the pack's load, and the benign real samples staying quiet."""

from __future__ import annotations

import pytest

from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
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
    alerts = detect(real_store, PACK)
    assert [a for a in alerts if a.level in ("high", "critical")] == []


def test_detect_is_idempotent(real_store: Store):
    detect(real_store, PACK)
    before = real_store.scalar("SELECT count(*) FROM alerts")
    detect(real_store, PACK)
    assert real_store.scalar("SELECT count(*) FROM alerts") == before


def test_alert_principal_falls_back_to_the_user_id(tmp_path):
    # LoginHistory names the user by id only.
    from crmwatch.ingest import ingest
    from tests.conftest import ROOT

    with Store(tmp_path / "s.duckdb") as s:
        ingest(s, [ROOT / "tests" / "fixtures" / "ingest" / "loginhistory_oauthtoken.json"])
        [a] = [a for a in detect(s, PACK) if "Tor" in a.title]
        assert a.principal == "0055j00000Adv01AAA"
