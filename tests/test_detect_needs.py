"""What a rule needs of an event (its source, source type or category), read from its Sigma
conditions, and ``detect`` not running a rule no stored event can meet: the same alerts and
errors as running every rule, without DuckDB planning queries that cannot select anything
(start-up, docs/design.md)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.detect.rules import load_rule_file, load_rules
from crmwatch.detect.runner import BOUND, detect, detection_needs, run_rule, stored_combinations
from crmwatch.detect.where import may_select, rule_needs, rule_where
from crmwatch.ingest import ingest
from crmwatch.simulate.org import simulate
from crmwatch.store import Store


def needs(detection: str, product: str = "crmwatch") -> dict[str, set[str]]:
    rule = SigmaCollection.from_yaml(
        f"title: t\nlogsource: {{product: {product}}}\ndetection:\n{detection}\n"
    ).rules[0]
    return {c: set(v) for c, v in rule_needs(rule).items()}


NEEDS = [
    # a plain value, compared lower-cased
    ("  sel: {category: BULK_EXPORT}\n  condition: sel", {"category": {"bulk_export"}}),
    # the pipeline's own source condition counts
    ("  sel: {category: mfa_change}\n  condition: sel", {"category": {"mfa_change"}}),
    ("  sel: {category: [bulk_export, report_export]}\n  condition: sel",
     {"category": {"bulk_export", "report_export"}}),
    ("  a: {category: bulk_export}\n  b: {category: list_view, rows|gte: 5}\n"
     "  condition: a or b", {"category": {"bulk_export", "list_view"}}),
    # one side of an OR needs no category: neither does the rule
    ("  a: {category: bulk_export}\n  b: {operation: login_as}\n  condition: a or b", {}),
    ("  a: {category: bulk_export}\n  b: {source: okta}\n  condition: a and b",
     {"category": {"bulk_export"}, "source": {"okta"}}),
    # an AND of two values of one column: no event has both
    ("  a: {category: bulk_export}\n  b: {category: list_view}\n  condition: a and b",
     {"category": set()}),
    ("  sel: {category: bulk_export}\n  condition: not sel", {}),
    ("  a: {category: bulk_export}\n  b: {source: okta}\n  condition: a and not b",
     {"category": {"bulk_export"}}),
    # wildcards, modifiers, |cased, regexes and raw paths are not read: the rule always runs
    ("  sel: {category|contains: export}\n  condition: sel", {}),
    ("  sel: {category: 'bulk_*'}\n  condition: sel", {}),
    ("  sel: {category|cased: bulk_export}\n  condition: sel", {}),
    ("  sel: {category|re: '^bulk_export$'}\n  condition: sel", {}),
    ("  sel: {raw.category: bulk_export}\n  condition: sel", {}),
    ("  sel: {source_type: ELF:BulkApi2}\n  condition: sel", {"source_type": {"elf:bulkapi2"}}),
    # a list of conditions: the rule meets any of them
    ("  a: {category: bulk_export}\n  b: {category: list_view}\n  condition: [a, b]",
     {"category": {"bulk_export", "list_view"}}),
]  # fmt: skip


@pytest.mark.parametrize(("detection", "expected"), NEEDS)
def test_what_a_rule_needs_is_read_from_its_conditions(detection: str, expected: dict):
    assert needs(detection) == expected


def test_an_okta_or_salesforce_rule_needs_its_source():
    assert needs("  sel: {category: mfa_change}\n  condition: sel", "okta") == {
        "source": {"okta"},
        "category": {"mfa_change"},
    }
    assert needs("  sel: {rows|gte: 5}\n  condition: sel", "salesforce") == {
        "source": {"salesforce"}
    }


# source, source_type, category of stored events: mixed case and NULLs, as logs may have them
STORED = [
    ("okta", "okta:system_log", "authentication"),
    ("Okta", None, "MFA_Change"),
    ("salesforce", "elf:BulkApi2", "bulk_export"),
    ("SALESFORCE", "api:ApiEvent", None),
    (None, None, None),
]


def test_a_rule_that_cannot_be_met_selects_nothing_from_the_store(store: Store):
    """Soundness against DuckDB itself: each case's rule, run on events of every stored
    combination, selects nothing whenever ``may_select`` says no event meets its needs."""
    for i, (source, source_type, category) in enumerate(STORED):
        store.execute(
            "INSERT INTO events_base (event_id, ts, source, source_type, category) "
            "VALUES (?, ?, ?, ?, ?)",
            [f"e{i}", dt.datetime(2025, 8, 12, 10, i), source, source_type, category],
        )
    values = ["okta", "Okta", "salesforce", "bulk_export", "mfa_change", "MFA_CHANGE",
              "authentication", "elf:bulkapi2", "ELF:BulkApi2", "api:apievent", "list_view"]  # fmt: skip
    detections = [d for d, _ in NEEDS] + [
        f"  sel: {{{column}: '{value}'}}\n  condition: sel"
        for column in ("source", "source_type", "category")
        for value in values
    ]
    combinations = stored_combinations(store)
    assert ("okta", None, "mfa_change") in combinations
    skipped = 0
    for product in ("crmwatch", "okta", "salesforce"):
        for detection in detections:
            rule = SigmaCollection.from_yaml(
                f"title: t\nlogsource: {{product: {product}}}\ndetection:\n{detection}\n"
            ).rules[0]
            selected = store.scalar(f"SELECT count(*) FROM events WHERE {rule_where(rule)}")
            if not may_select(rule_needs(rule), combinations):
                skipped += 1
                assert selected == 0, (product, detection)
    assert skipped > 10


def test_nothing_is_met_on_a_store_without_events():
    assert not may_select({}, set())
    assert may_select({}, {("okta", None, None)})
    assert not may_select({"category": frozenset({"x"})}, {("okta", None, None)})


def test_a_correlation_needs_what_one_of_its_rules_needs():
    pack = {rf.path.name: rf for rf in load_rules()}
    chain = pack["okta_mfa_change_then_new_network_then_export.yml"].detections[0]
    # its rules' needs, united: an Okta MFA change, an Okta sign-in, a Salesforce export
    assert {c: set(v) for c, v in detection_needs(chain).items()} == {
        "source": {"okta", "salesforce"},
        "category": {"mfa_change", "authentication", "bulk_export", "report_export", "api_query"},
    }
    spraying = pack["password_spraying.yml"].detections[0]
    assert {c: set(v) for c, v in detection_needs(spraying).items()} == {
        "category": {"authentication"}
    }


@pytest.fixture(scope="module")
def half_stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small simulated org's logs ingested whole, and its Okta and Salesforce logs alone."""
    root = tmp_path_factory.mktemp("half")
    simulate(root / "sim", customers=2000, employees=60, days=14, seed=3)
    logs = root / "sim" / "logs"
    stores = {}
    for name, part in (("all", logs), ("okta", logs / "okta"), ("salesforce", logs / "salesforce")):
        stores[name] = root / f"{name}.duckdb"
        with Store(stores[name]) as store:
            ingest(store, [part])
    return stores


def test_detect_raises_the_alerts_of_every_rule_run(half_stores: dict[str, Path], tmp_path):
    """On each store, ``detect`` (rules no event can meet not run) stores the alerts of
    running each rule file on its own (``run_rule`` runs every detection), and reports the
    same counts."""
    files = load_rules()
    for name, path in half_stores.items():
        copy = tmp_path / f"{name}.duckdb"
        shutil.copy(path, copy)
        with Store(copy) as store:
            every = sorted(a.alert_id for rf in files for a in run_rule(store, rf))
            runs = detect(store, files)
            assert not [r.error for r in runs if r.error]
            stored = [r[0] for r in store.execute("SELECT alert_id FROM alerts ORDER BY 1").rows]
            assert stored == sorted(set(every)), name
            assert sum(r.alerts for r in runs) == len(every), name
            combos = stored_combinations(store)
            unmet = [r for r in runs if not may_select(detection_needs(r.detection), combos)]
            assert all(r.alerts == 0 for r in unmet)
            if name != "all":
                assert unmet, f"the {name} half leaves some rule nothing to read"


BROKEN = """title: text rows
id: 6c0e1c1e-0000-4000-8000-00000000b0e1
logsource: {product: okta}
detection:
  sel: {rows: lots}
  condition: sel
level: high
"""


def test_a_rule_duckdb_refuses_fails_though_no_event_can_meet_it(tmp_path: Path):
    """``rows: lots`` compiles (to ``lower(rows) = 'lots'``) and DuckDB refuses it: rows is a
    number. On a store with no Okta event the rule is not run, and still fails, as when it
    ran; the other rules raise nothing and report no error."""
    (tmp_path / "broken.yml").write_text(BROKEN)
    broken = load_rule_file(tmp_path / "broken.yml", collect_errors=True)
    assert not broken.errors
    files = [*load_rules(), broken]
    with Store(tmp_path / "s.duckdb") as store:
        for combos in (set(), None):
            if combos is None:  # and with events, none of them Okta's
                store.execute(
                    "INSERT INTO events_base (event_id, ts, source, category) "
                    "VALUES ('e1', TIMESTAMP '2025-08-12 10:00:00', 'salesforce', 'other')"
                )
            runs = detect(store, files)
            failed = [r for r in runs if r.error]
            assert [r.detection.title for r in failed] == ["text rows"]
            assert "Binder Error" in failed[0].error
    res = CliRunner().invoke(
        app, ["detect", "--db", str(tmp_path / "s.duckdb"), "--rules", str(tmp_path / "broken.yml")]
    )
    assert res.exit_code == 1 and "text rows" in res.stderr


def test_on_an_empty_store_no_rule_query_runs(tmp_path: Path, monkeypatch, capsys):
    """With no event, no rule can raise an alert: the pack's queries are bound, not run."""
    monkeypatch.setenv("CRMWATCH_TRACE", "1")
    files = load_rules()
    with Store(tmp_path / "s.duckdb") as store:
        capsys.readouterr()
        runs = detect(store, files)
    trace = capsys.readouterr().err
    assert len(runs) == sum(len(rf.detections) for rf in files) > 20
    assert trace.count("has what it needs, not run") == len(runs)
    assert "INSERT INTO run_alerts" not in trace and f"bound {len(runs)} rules not run" in trace


def test_a_cached_pack_binds_only_the_queries_duckdb_did_not_bind_when_cached(
    tmp_path: Path, monkeypatch, capsys
):
    """The compiled-pack cache marks the queries DuckDB binds (runner.mark_bound): on an
    empty store the cached pack's are neither run nor bound again, and a rule DuckDB refuses,
    never marked, still fails."""
    monkeypatch.setenv("CRMWATCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CRMWATCH_TRACE", "1")
    (tmp_path / "broken.yml").write_text(BROKEN)
    load_rules([tmp_path / "broken.yml"], collect_errors=True, cached=True)  # fills the cache
    files = load_rules([tmp_path / "broken.yml"], collect_errors=True, cached=True)
    assert "rule files from" in capsys.readouterr().err
    assert (
        sum(bool(d.rule.__dict__.get(BOUND)) for rf in files for d in rf.detections)
        == len([d for rf in files for d in rf.detections]) - 1
    )
    with Store(tmp_path / "s.duckdb") as store:
        runs = detect(store, files)
    trace = capsys.readouterr().err
    assert [r.detection.title for r in runs if r.error] == ["text rows"]
    assert "bound 1 rules not run" not in trace, "the broken one alone is bound: it fails"
    assert "not bound together" in trace and "INSERT INTO run_alerts" in trace
    assert trace.count("INSERT INTO run_alerts") == 1
