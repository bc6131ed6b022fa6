"""``crmwatch eval``: run the whole pipeline on a simulated org and score it against the truth.

For each scenario of ``ground_truth.json``:

- **detected** — some alert's evidence includes one of the scenario's malicious events (the
  simulator names them by their native ids: ELF ``REQUEST_ID``, ``EventIdentifier``, object
  ``Id``, Okta ``uuid``);
- **time to detect** — from the scenario's first malicious event to the first such alert's
  ``fired_at`` (when its condition was met), and the same from the first exfiltration event;
- **scope precision and recall** — the incidents holding the scenario's events are scoped
  against the snapshot; the customers they list (exact, replayed and candidate) and the
  (customer, field) pairs are compared with the customers and fields the simulator computed
  itself.

False positives are incidents that hold no malicious event, per 1,000 user-days of the
simulated staff's activity.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmwatch.config import Config
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.errors import UsageError
from crmwatch.incidents import build_incidents
from crmwatch.ingest import ingest
from crmwatch.scope.exposure import scope_incident
from crmwatch.store import Store

# Targets of issue 5, reported next to the measurements.
TARGET_DETECT_AFTER_EXFIL_S = 3600
TARGET_FP_PER_1000 = 1.0


@dataclass
class ScenarioScore:
    name: str
    title: str
    detected: bool
    incidents: list[str]
    rules: list[str]
    time_to_detect_s: float | None
    after_first_exfiltration_s: float | None
    expected_customers: int
    listed_customers: int
    precision: float | None
    recall: float | None
    field_precision: float | None
    field_recall: float | None


@dataclass
class Evaluation:
    directory: str
    user_days: int
    incidents: int
    false_positive_incidents: int
    fp_per_1000_user_days: float
    scenarios: list[ScenarioScore] = field(default_factory=list)
    targets_met: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(directory: Path, db: Path | None = None, rules: list[Path] | None = None
             ) -> Evaluation:  # fmt: skip
    """Ingest, detect, group and scope the simulated set in ``directory``; score it."""
    truth = load_truth(directory)
    db = db or directory / "crmwatch.duckdb"
    db.unlink(missing_ok=True)
    with Store(db) as store:
        ingest(store, [directory / "logs"], config=simulated_config(directory))
        detect(store, load_rules(rules))
        build_incidents(store)
        return score(store, directory, truth)


def load_truth(directory: Path) -> dict:
    path = directory / "ground_truth.json"
    if not path.exists():
        raise UsageError(f"{path} not found: is {directory} a `crmwatch simulate` output?")
    return json.loads(path.read_text(encoding="utf-8"))


def simulated_config(directory: Path) -> Config:
    """The simulated org's crmwatch.toml (its boutique networks), if it has one."""
    path = directory / "crmwatch.toml"
    return Config.load(path) if path.exists() else Config()


def score(store: Store, directory: Path, truth: dict | None = None) -> Evaluation:
    """Score the incidents already in ``store`` against ``directory``'s ground truth (the
    scenarios' incidents are scoped against its snapshot on the way)."""
    truth = truth or load_truth(directory)
    incidents = store.scalar("SELECT count(*) FROM incidents")
    malicious = _malicious_events(store, truth["scenarios"])
    scores = [_score(store, s, malicious[s["name"]], directory) for s in truth["scenarios"]]
    owned = store.scalar(
        "SELECT count(DISTINCT incident_id) FROM incident_events "
        "WHERE event_id IN (SELECT event_id FROM eval_malicious)"
    )
    fp = incidents - owned
    per_1000 = 1000 * fp / truth["user_days"]
    ev = Evaluation(str(directory), truth["user_days"], incidents, fp, round(per_1000, 3), scores)
    ev.targets_met = {
        "every scenario detected": all(s.detected for s in scores),
        "detected within the hour of the first exfiltration": all(
            s.after_first_exfiltration_s is not None
            and s.after_first_exfiltration_s <= TARGET_DETECT_AFTER_EXFIL_S
            for s in scores
        ),
        "at most 1 false-positive incident per 1,000 user-days": per_1000 <= TARGET_FP_PER_1000,
        "scope precision and recall 1.0": all(
            s.precision == 1.0 and s.recall == 1.0 and s.field_precision in (1.0, None)
            and s.field_recall in (1.0, None)
            for s in scores if s.expected_customers
        ),
    }  # fmt: skip
    return ev


def _malicious_events(store: Store, scenarios: list[dict]) -> dict[str, set[str]]:
    """Scenario → the event ids crmwatch gave its malicious records."""
    rows = [(s["name"], m["source"], m["key"], m["value"]) for s in scenarios
            for m in s["malicious_events"]]  # fmt: skip
    store.execute(
        "CREATE OR REPLACE TEMP TABLE eval_refs (scenario VARCHAR, source VARCHAR, "
        "key VARCHAR, value VARCHAR)"
    )
    store.insert("eval_refs", rows)
    # One native id per event (the key the simulator names), then an equi-join.
    store.execute(
        """CREATE OR REPLACE TEMP TABLE eval_malicious AS
        WITH native AS (
            SELECT event_id, ts,
                CASE WHEN source_type LIKE 'elf:%' THEN 'elf' WHEN source = 'okta' THEN 'okta'
                     ELSE source_type END AS src,
                CASE WHEN source_type LIKE 'elf:%' THEN json_extract_string(raw, '$.REQUEST_ID')
                     WHEN source = 'okta' THEN json_extract_string(raw, '$.uuid')
                     ELSE coalesce(json_extract_string(raw, '$.EventIdentifier'),
                                   json_extract_string(raw, '$.Id')) END AS native_id
            FROM events)
        SELECT r.scenario, n.event_id, n.ts FROM eval_refs r
        JOIN native n ON n.src = r.source AND n.native_id = r.value"""
    )
    out: dict[str, set[str]] = {s["name"]: set() for s in scenarios}
    for name, event_id in store.execute("SELECT scenario, event_id FROM eval_malicious").rows:
        out[name].add(event_id)
    return out


def _score(store: Store, s: dict, events: set[str], directory: Path) -> ScenarioScore:
    ids = sorted(events)
    alerts = store.execute(
        """SELECT title, coalesce(fired_at, first_ts) AS fired FROM alerts
        WHERE len(list_intersect(event_ids, ?::VARCHAR[])) > 0 ORDER BY fired""",
        [ids],
    ).rows
    incidents = [r[0] for r in store.execute(
        "SELECT DISTINCT incident_id FROM incident_events WHERE event_id IN (SELECT unnest(?)) "
        "ORDER BY 1", [ids]).rows]  # fmt: skip
    first = dt.datetime.fromisoformat(s["first_malicious_at"])
    exfil = s["first_exfiltration_at"]
    ttd = after = None
    if alerts:
        fired = alerts[0][1]
        ttd = (fired - first).total_seconds()
        if exfil:
            after = (fired - dt.datetime.fromisoformat(exfil)).total_seconds()
    expected: dict[str, set[str]] = {}
    for group in s["affected"]:
        for cid in group["customers"]:
            expected.setdefault(cid, set()).update(group["fields"])
    listed: dict[str, set[str]] = {}
    for iid in incidents:
        scope_incident(store, iid, [directory / "snapshot"])
        for cid, fields in store.execute(
            "SELECT customer_id, list_distinct(flatten(list(fields))) FROM exposure_details "
            "WHERE incident_id = ? GROUP BY customer_id", [iid]).rows:  # fmt: skip
            listed.setdefault(cid, set()).update(fields)
    precision, recall = _pr(set(listed), set(expected))
    pairs_listed = {(c, f) for c, fs in listed.items() for f in fs}
    pairs_expected = {(c, f) for c, fs in expected.items() for f in fs}
    fprec, frec = _pr(pairs_listed, pairs_expected) if pairs_expected else (None, None)
    return ScenarioScore(
        s["name"], s["title"], bool(alerts), incidents, sorted({a[0] for a in alerts}),
        ttd, after, len(expected), len(listed), precision, recall, fprec, frec,
    )  # fmt: skip


def _pr(got: set, want: set) -> tuple[float | None, float | None]:
    if not got and not want:
        return None, None
    hit = len(got & want)
    precision = round(hit / len(got), 4) if got else 0.0
    recall = round(hit / len(want), 4) if want else None
    return precision, recall
