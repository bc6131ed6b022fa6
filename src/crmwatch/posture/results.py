"""Audits kept in the store: drift between two audits, and the findings on an incident's path.

``posture_audits`` holds each audit's summary, ``posture_findings`` its findings (drift ones
included) and ``posture_subjects`` what it saw (users, apps, the org's settings), so the next
audit can say what changed: a check a subject now fails that it passed before ("MFA turned
off"), a connected app that was not there, a user newly holding a powerful permission.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from crmwatch.detect.rules import load_rules
from crmwatch.incidents import Incident
from crmwatch.posture.audit import Audit, Finding, finding
from crmwatch.posture.checks import Check
from crmwatch.posture.model import POWERFUL
from crmwatch.schema import LEVELS
from crmwatch.store import Store
from crmwatch.timeutil import json_default

DRIFT_APP = "drift-new-connected-app"
DRIFT_POWER = "drift-new-powerful-permission"


def _previous(store: Store, audit: Audit) -> str | None:
    row = store.execute(
        "SELECT audit_id FROM posture_audits WHERE audit_id <> ? AND audited_at <= ? "
        "ORDER BY audited_at DESC LIMIT 1", [audit.audit_id, audit.audited_at],
    ).first()  # fmt: skip
    return row[0] if row else None


def drift(store: Store, audit: Audit, checks: list[Check]) -> list[Finding]:
    """What got worse since the newest earlier audit of other inputs."""
    before = _previous(store, audit)
    if before is None:
        return []
    # Only checks the earlier audit could judge: a check it could not assess (no User
    # export then) is not "newly failing" now that it can.
    judged = {
        check for check, status in json.loads(store.scalar(
            "SELECT summary FROM posture_audits WHERE audit_id = ?", [before]) or "{}"
        ).get("outcomes", {}).items() if status in ("pass", "fail")
    }  # fmt: skip
    failing = {
        (r[0], s) for r in store.execute(
            "SELECT check_id, subjects FROM posture_findings WHERE audit_id = ? "
            "AND drift IS NULL", [before]).rows for s in r[1]
    }  # fmt: skip
    seen: dict[tuple[str, str], dict[str, Any]] = {
        (k, n): json.loads(a) for k, n, a in store.execute(
            "SELECT kind, name, attrs FROM posture_subjects WHERE audit_id = ?", [before]).rows
    }  # fmt: skip
    by_id = {c.id: c for c in checks}
    out: list[Finding] = []
    for f in audit.findings:
        if f.check_id not in judged:
            continue
        new = {s["name"] for s in f.subjects if (f.check_id, s["name"]) not in failing}
        check = by_id.get(f.check_id)
        if new and check is not None:
            subjects = [s for s in audit.model.of(check.subject)
                        if s.name in new and check.judge(s) is True]  # fmt: skip
            out.append(_drift(check, subjects, f"newly failing since audit {before}"))
    apps = [a for a in audit.model.of("connected_app") if ("connected_app", a.name) not in seen]
    if apps and any(k == "connected_app" for k, _ in seen):
        out.append(_inventory(DRIFT_APP, "Connected app added since the previous audit",
                              "medium", apps, before))  # fmt: skip
    gained = []
    for u in audit.model.of("user"):
        old = seen.get(("user", u.name))
        if old is None or old.get("permissions") is None or u.get("permissions") is None:
            continue
        if {p for p in POWERFUL if p in u.get("permissions")} - set(old["permissions"]):
            gained.append(u)
    if gained:
        out.append(_inventory(DRIFT_POWER, "User newly holds a powerful permission", "high",
                              gained, before))  # fmt: skip
    return out


def _drift(check: Check, subjects: list, what: str) -> Finding:
    return finding(check, subjects, drift=what)


def _inventory(check_id: str, title: str, severity: str, subjects: list, before: str) -> Finding:
    check = Check(
        id=check_id, title=title, severity=severity, subject=subjects[0].kind, where=[],
        controls=["monitoring", "access_control"],
        protects_against="a change nobody reviewed: the look-alike app an attacker had a user "
        "authorise, or rights granted to an account about to be used",
        remediation="confirm the change was intended; if not, revoke it and open an incident",
        sources=[{"kind": "regulator", "cite": "PIPC, Standards for Ensuring the Safety of "
                  "Personal Information, access control and access-record review"}],
        path=None,
        show=["label", "permissions"] if subjects[0].kind == "user" else ["label"],
        detections=["connected_app_first_seen"] if check_id == DRIFT_APP else [],
    )  # fmt: skip
    return finding(check, subjects, drift=f"since audit {before}")


def save(store: Store, audit: Audit) -> None:
    """Replace this audit's rows (same inputs, same id) with the new result."""
    rule_ids = _rule_ids()
    with store.transaction():
        for table in ("posture_audits", "posture_findings", "posture_subjects"):
            store.execute(f"DELETE FROM {table} WHERE audit_id = ?", [audit.audit_id])
        store.execute(
            "INSERT INTO posture_audits VALUES (?, ?, ?, ?)",
            [audit.audit_id, audit.audited_at, audit.sources, json.dumps(
                summary(audit), default=json_default)],
        )  # fmt: skip
        rows = []
        for f in audit.findings:
            body = dataclasses.asdict(f)
            body["rule_ids"] = sorted({i for d in f.detections for i in rule_ids.get(d, [])})
            rows.append([
                audit.audit_id, f.check_id, f.severity, f.title, f.subject_kind,
                [s["name"] for s in f.subjects], f.principals, f.apps, body["rule_ids"],
                f.drift, json.dumps(body, default=json_default),
            ])  # fmt: skip
        store.insert("posture_findings", rows)
        store.insert("posture_subjects", [
            [audit.audit_id, s.kind, s.name, json.dumps(s.attrs, default=json_default)]
            for kind in audit.model.subjects for s in audit.model.of(kind)
        ])  # fmt: skip


def _rule_ids() -> dict[str, list[str]]:
    """Built-in rule file name → the ids of the rules in it that raise alerts."""
    out: dict[str, list[str]] = {}
    for rf in load_rules():
        out[rf.path.stem] = [str(r.id) for r in rf.rules if getattr(r, "id", None)]
    return out


def summary(audit: Audit) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for f in audit.findings:
        if f.drift is None:
            counts[f.severity] = counts.get(f.severity, 0) + 1
    status: dict[str, int] = {}
    for o in audit.outcomes:
        status[o.status] = status.get(o.status, 0) + 1
    return {
        "audit_id": audit.audit_id,
        "audited_at": audit.audited_at,
        "as_of": audit.as_of,
        "sources": audit.sources,
        "files": len(audit.files),
        "problems": [str(p) for p in audit.problems],
        "checks": status,
        "outcomes": {o.check_id: o.status for o in audit.outcomes},
        "findings_by_severity": counts,
        "drift_findings": sum(1 for f in audit.findings if f.drift),
        "skipped_files": audit.model.skipped,
    }


def latest_audit(store: Store) -> str | None:
    row = store.execute(
        "SELECT audit_id FROM posture_audits ORDER BY audited_at DESC LIMIT 1"
    ).first()
    return row[0] if row else None


def on_path(store: Store, incident: Incident) -> list[dict[str, Any]]:
    """The newest audit's findings that lay on the incident's path: about its people or apps,
    or org-wide settings whose detections raised one of its alerts."""
    audit = latest_audit(store)
    if audit is None:
        return []
    people = sorted({p.lower() for p in [*incident.principals, *incident.user_ids]})
    apps = sorted({a.lower() for a in incident.apps})
    rules = [r[0] for r in store.execute(
        "SELECT DISTINCT rule_id FROM alerts WHERE list_contains(?::VARCHAR[], alert_id)",
        [incident.alert_ids]).rows]  # fmt: skip
    rows = store.execute(
        "SELECT body, who, via FROM (SELECT body, subject_kind, rule_ids, severity, check_id, "
        "list_filter(principals, lambda p: list_contains($people, lower(p))) AS who, "
        "list_filter(apps, lambda a: list_contains($apps, lower(a))) AS via "
        "FROM posture_findings WHERE audit_id = $audit) WHERE len(who) > 0 OR len(via) > 0 "
        "OR (subject_kind IN ('salesforce_org', 'okta_org') "
        "    AND len(list_intersect(rule_ids, $rules)) > 0) "
        "ORDER BY list_position($levels, severity) DESC, check_id",
        {"people": people, "apps": apps, "audit": audit, "rules": rules,
         "levels": list(LEVELS)},
    ).rows  # fmt: skip
    out = []
    for body, who, via in rows:
        f = json.loads(body)
        # only what concerns this incident: its people's and its apps' entries
        if who or via:
            mine = {x.lower() for x in [*who, *via]}
            f["subjects"] = [s for s in f["subjects"]
                             if s["name"].lower() in mine or str(s.get("label", "")).lower()
                             in mine or mine & {h.lower() for h in s.get("holders") or []}
                             ] or f["subjects"]  # fmt: skip
            f["principals"], f["apps"] = who, via
        f["on_path_because"] = (
            f"about {', '.join(who)}"
            if who
            else f"via {', '.join(via)}"
            if via
            else "an org-wide setting behind one of its alerts"
        )
        out.append(f)
    return out


def stored_findings(store: Store, audit_id: str | None = None) -> list[dict[str, Any]]:
    audit = audit_id or latest_audit(store)
    if audit is None:
        return []
    return [
        json.loads(r[0])
        for r in store.execute(
            "SELECT body FROM posture_findings WHERE audit_id = ? ORDER BY check_id", [audit]
        ).rows
    ]
