"""``crmwatch eval``: run the whole pipeline on a simulated org and score it against the truth.

For each scenario of ``ground_truth.json``:

- **detected** — some alert's evidence includes one of the scenario's malicious events (the
  simulator names them by their native ids: ELF ``REQUEST_ID``, ``EventIdentifier``, object
  ``Id``, Okta ``uuid``), and **one incident** holds them all — not two, not spread over the
  victim's own incidents;
- **first malicious event** — the incident's, against the scenario's (within 60 s);
- **time to detect** — from the scenario's first malicious event to the first such alert's
  ``fired_at`` (when its condition was met), and the same from the first exfiltration event;
- **scope precision and recall** — the incidents holding the scenario's events are scoped
  against the snapshot; the customers they list (exact, replayed and candidate) and the
  (customer, field) pairs are compared with the customers and fields the simulator computed
  itself.

False positives are incidents that hold no malicious event, per 1,000 user-days of the
simulated staff's activity — overall, by the rule that opened them, and by the noise source
(the ground truth labels every person-day with the noise that shaped it) of their people's
days. ``sweep`` scores the same detections under other risk thresholds, for the trade-off
curve in docs/scenarios.md.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from crmwatch.config import Config, IncidentConfig
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.errors import UsageError
from crmwatch.incidents import Incident, build_incidents
from crmwatch.ingest import ingest
from crmwatch.schema import person_sql
from crmwatch.scope.exposure import scope_incident
from crmwatch.scope.results import stored_scope
from crmwatch.store import Store

# Targets of issues 5 and 12, reported next to the measurements.
TARGET_DETECT_AFTER_EXFIL_S = 3600
TARGET_FP_PER_1000 = 1.0
TARGET_FIRST_MALICIOUS_S = 60
UNLABELLED = "(no noise source)"


@dataclass
class ScenarioScore:
    name: str
    title: str
    detected: bool
    incidents: list[str]
    rules: list[str]
    first_malicious_at: str
    incident_first_malicious_at: str | None
    first_malicious_error_s: float | None
    time_to_detect_s: float | None
    after_first_exfiltration_s: float | None
    expected_customers: int
    listed_customers: int
    precision: float | None
    recall: float | None
    field_precision: float | None
    field_recall: float | None


@dataclass
class RuleScore:
    """One rule on the simulated org: its findings, the incidents it opened (alone, or among
    the findings whose risk crossed the threshold), and how many of those were false."""

    title: str
    level: str
    findings: int
    incidents_opened: int
    false_incidents: int

    @property
    def share_false(self) -> float | None:
        if not self.incidents_opened:
            return None
        return round(self.false_incidents / self.incidents_opened, 3)


@dataclass
class Evaluation:
    directory: str
    user_days: int
    incidents: int
    false_positive_incidents: int
    fp_per_1000_user_days: float
    false_high_or_critical: int = 0
    fp_by_rule: dict[str, int] = field(default_factory=dict)
    fp_per_1000_by_noise: dict[str, float] = field(default_factory=dict)
    false_positives: list[dict[str, Any]] = field(default_factory=list)
    rules: list[RuleScore] = field(default_factory=list)
    scenarios: list[ScenarioScore] = field(default_factory=list)
    targets_met: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for r, score in zip(d["rules"], self.rules, strict=True):
            r["share_false"] = score.share_false
        return d


def evaluate(
    directory: Path,
    db: Path | None = None,
    rules: list[Path] | None = None,
    incidents: IncidentConfig | None = None,
) -> Evaluation:
    """Ingest, detect, group and scope the simulated set in ``directory``; score it."""
    truth = load_truth(directory)
    db = db or directory / "crmwatch.duckdb"
    db.unlink(missing_ok=True)
    with Store(db) as store:
        ingest(store, [directory / "logs"], config=simulated_config(directory))
        detect(store, load_rules(rules))
        build_incidents(store, incidents)
        return score(store, directory, truth)


def _scoped_on(store: Store, incident_id: str, snapshot: Path) -> bool:
    """Whether the incident's stored scope was computed on this snapshot folder's files."""
    scope = stored_scope(store, incident_id)
    if scope is None:
        return False
    used = {Path(meta["path"]).parent.resolve() for meta in (scope.get("snapshot") or {}).values()}
    return used == {snapshot.resolve()}


def load_truth(directory: Path) -> dict:
    path = directory / "ground_truth.json"
    if not path.exists():
        raise UsageError(f"{path} not found: is {directory} a `crmwatch simulate` output?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"{path} is not a ground truth file: {e}") from e


def simulated_config(directory: Path) -> Config:
    """The simulated org's crmwatch.toml (its boutique networks), if it has one."""
    path = directory / "crmwatch.toml"
    return Config.load(path) if path.exists() else Config()


def score(store: Store, directory: Path, truth: dict | None = None) -> Evaluation:
    """Score the incidents already in ``store`` against ``directory``'s ground truth (the
    scenarios' incidents are scoped against its snapshot on the way)."""
    truth = truth or load_truth(directory)
    malicious = _malicious_events(store, truth["scenarios"])
    scores = [_score(store, s, malicious[s["name"]], directory) for s in truth["scenarios"]]
    ev = false_positives(store, truth)
    ev.directory = str(directory)
    ev.scenarios = scores
    one = all(
        s.detected
        and len(s.incidents) == 1
        and s.first_malicious_error_s is not None
        and abs(s.first_malicious_error_s) <= TARGET_FIRST_MALICIOUS_S
        for s in scores
    )
    ev.targets_met = {
        "every scenario detected as one incident starting at its first malicious event (±60 s)":
            one,
        "detected within the hour of the first exfiltration": all(
            s.after_first_exfiltration_s is not None
            and s.after_first_exfiltration_s <= TARGET_DETECT_AFTER_EXFIL_S
            for s in scores
        ),
        "at most 1 false-positive incident per 1,000 user-days, none high or critical":
            ev.fp_per_1000_user_days <= TARGET_FP_PER_1000 and ev.false_high_or_critical == 0,
        "scope precision and recall 1.0": all(
            s.precision == 1.0 and s.recall == 1.0 and s.field_precision in (1.0, None)
            and s.field_recall in (1.0, None)
            for s in scores if s.expected_customers
        ),
    }  # fmt: skip
    _remember(store, ev)
    return ev


def _remember(store: Store, ev: Evaluation) -> None:
    """Keep the evaluation's per-rule shares in the store: the console's rules page shows the
    share of each rule's incidents that were false on the last simulated org scored here."""
    store.set_meta("last_evaluation", json.dumps({
        "scored_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "directory": ev.directory,
        "fp_per_1000_user_days": ev.fp_per_1000_user_days,
        "rules": {r.title: {"incidents_opened": r.incidents_opened,
                            "false_incidents": r.false_incidents,
                            "share_false": r.share_false} for r in ev.rules},
    }))  # fmt: skip


def last_evaluation(store: Store) -> dict[str, Any] | None:
    """What :func:`score` last kept, or None if no simulated org was scored on this store."""
    text = store.meta("last_evaluation")
    return json.loads(text) if text else None


def false_positives(store: Store, truth: dict) -> Evaluation:
    """Count, attribute and list the stored incidents that hold no malicious event (the
    scenarios' events must be in ``eval_malicious``: see :func:`_malicious_events`)."""
    if not _has_table(store, "eval_malicious"):
        _malicious_events(store, truth["scenarios"])
    incidents = [
        Incident(**json.loads(body))
        for (body,) in store.execute("SELECT body FROM incidents ORDER BY incident_id").rows
    ]
    owned = {
        r[0]
        for r in store.execute(
            "SELECT DISTINCT incident_id FROM incident_events "
            "WHERE event_id IN (SELECT event_id FROM eval_malicious)"
        ).rows
    }
    false = [i for i in incidents if i.id not in owned]
    user_days = truth["user_days"]
    per_1000 = round(1000 * len(false) / user_days, 3)
    sources = _noise_sources(store, truth, [i.id for i in false])
    by_source: Counter[str] = Counter()
    listed = []
    for i in false:
        names = sources.get(i.id) or [UNLABELLED]
        by_source.update(names)
        listed.append({
            "id": i.id, "severity": i.severity, "people": i.principals or i.user_ids,
            "first_malicious_at": i.first_malicious_at, "opened_by": _openers(i), "noise": names,
        })  # fmt: skip
    by_rule: Counter[str] = Counter(t for i in false for t in _openers(i))
    return Evaluation(
        "",
        user_days,
        len(incidents),
        len(false),
        per_1000,
        false_high_or_critical=sum(i.severity in ("high", "critical") for i in false),
        fp_by_rule=dict(by_rule.most_common()),
        fp_per_1000_by_noise={
            k: round(1000 * n / user_days, 3) for k, n in sorted(by_source.items())
        },
        false_positives=listed,
        rules=rule_scores(store, {i.id for i in false}),
    )


def _openers(i: Incident) -> list[str]:
    """The titles of the findings that opened an incident."""
    why = i.opened_by or {}
    if why.get("by") == "finding":
        return [why["title"]]
    return [f["title"] for f in why.get("findings", [])]


def rule_scores(store: Store, false: set[str] | None = None) -> list[RuleScore]:
    """Per rule title: findings, incidents opened and, given the false incidents' ids, how
    many of those were false (0 without them)."""
    findings = dict(store.execute("SELECT title, count(*) FROM alerts GROUP BY title").rows)
    levels = dict(store.execute("SELECT title, max(level) FROM alerts GROUP BY title").rows)
    opened: Counter[str] = Counter()
    wrong: Counter[str] = Counter()
    for iid, body in store.execute("SELECT incident_id, body FROM incidents").rows:
        for title in set(_openers(Incident(**json.loads(body)))):
            opened[title] += 1
            if false and iid in false:
                wrong[title] += 1
    return [
        RuleScore(t, levels.get(t, ""), findings.get(t, 0), opened[t], wrong[t])
        for t in sorted(set(findings) | set(opened), key=lambda t: (-findings.get(t, 0), t))
    ]


def _noise_sources(store: Store, truth: dict, ids: list[str]) -> dict[str, list[str]]:
    """Incident id → the noise sources labelled on its people's days (its evidence events'
    principal and UTC date)."""
    days = truth.get("noise_days") or []
    if not ids or not days:
        return {}
    store.execute("CREATE OR REPLACE TEMP TABLE eval_noise (who VARCHAR, day DATE, source VARCHAR)")
    store.insert(
        "eval_noise",
        [(d["user"].lower(), dt.date.fromisoformat(d["date"]), s) for d in days
         for s in d["sources"]],
    )  # fmt: skip
    rows = store.execute(
        f"""SELECT i.incident_id, list(DISTINCT n.source ORDER BY n.source)
        FROM incident_events i JOIN events e ON e.event_id = i.event_id
        JOIN eval_noise n ON n.who = {person_sql("e.")}
            AND n.day = e.ts::DATE
        WHERE i.role = 'evidence' AND i.incident_id IN (SELECT unnest(?))
        GROUP BY i.incident_id""",
        [ids],
    ).rows
    return dict(rows)


def _has_table(store: Store, name: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]))


def sweep(store: Store, truth: dict, thresholds: list[int]) -> list[dict[str, Any]]:
    """The trade-off as the risk threshold moves, on the detections already in ``store``:
    per threshold, false-positive incidents per 1,000 user-days (high or critical among them)
    and the scenarios no incident holds. Leaves the store's incidents at the default."""
    _malicious_events(store, truth["scenarios"])
    out = []
    for t in thresholds:
        build_incidents(store, dataclasses.replace(IncidentConfig(), risk_threshold=t))
        ev = false_positives(store, truth)
        held = {
            r[0]
            for r in store.execute(
                "SELECT DISTINCT m.scenario FROM eval_malicious m "
                "JOIN incident_events i USING (event_id)"
            ).rows
        }
        out.append(
            {"threshold": t, "fp_per_1000_user_days": ev.fp_per_1000_user_days,
             "false_positives": ev.false_positive_incidents,
             "false_high_or_critical": ev.false_high_or_critical,
             "missed": sorted(s["name"] for s in truth["scenarios"] if s["name"] not in held)}
        )  # fmt: skip
    build_incidents(store)
    return out


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
    found = store.execute(
        "SELECT min(first_malicious_at) FROM incidents WHERE incident_id IN (SELECT unnest(?))",
        [incidents],
    ).first()[0]
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
        if not _scoped_on(store, iid, directory / "snapshot"):  # the demo scoped it already
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
        s["first_malicious_at"] + "Z", found.isoformat() + "Z" if found else None,
        (found - first).total_seconds() if found else None,
        ttd, after, len(expected), len(listed), precision, recall, fprec, frec,
    )  # fmt: skip


def _pr(got: set, want: set) -> tuple[float | None, float | None]:
    if not got and not want:
        return None, None
    hit = len(got & want)
    precision = round(hit / len(got), 4) if got else 0.0
    recall = round(hit / len(want), 4) if want else None
    return precision, recall
