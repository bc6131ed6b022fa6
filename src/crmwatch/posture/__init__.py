"""Posture: audit the org's configuration against the controls that would have stopped the 2025
CRM data thefts, and tie each gap to the detections and incidents it concerns.

``read_org`` (audit.py) reads metadata, exports and Okta objects into subjects; checks
(checks.py, ``checks/*.yaml``) judge them; ``results`` keeps audits in the store, finds drift
and the findings on an incident's path; ``report`` writes OCSF and HTML.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from crmwatch.posture.audit import Audit, audit_id, judge, now, read_org
from crmwatch.posture.checks import Check, load_checks
from crmwatch.posture.results import drift, save
from crmwatch.store import Store


def posture(
    store: Store,
    paths: list[Path],
    checks: list[Check] | None = None,
    as_of: dt.datetime | None = None,
) -> Audit:
    """Audit the configuration under ``paths``, keep it in ``store``, and return it (with
    drift against the previous audit among its findings)."""
    checks = load_checks() if checks is None else checks
    model = read_org(paths, as_of)
    outcomes, findings = judge(model, checks)
    result = Audit(
        audit_id=audit_id(model.files) if model.files else "PA-EMPTY",
        audited_at=now(),
        as_of=model.as_of or now(),
        sources=[str(p) for p in paths],
        files=model.files,
        problems=model.problems,
        outcomes=outcomes,
        findings=findings,
        model=model,
    )
    if model.files:  # an audit that read nothing is no state of the org to compare with
        result.findings += drift(store, result, checks)
        save(store, result)
    return result


__all__ = ["Audit", "Check", "load_checks", "posture"]
