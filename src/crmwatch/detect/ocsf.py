"""Alerts as OCSF Detection Findings (class 2004), for SIEMs that ingest OCSF.

OCSF 1.4.0 schema (schema.ocsf.io/1.4.0/classes/detection_finding): class_uid 2004 in category
2 (Findings); type_uid = class_uid × 100 + activity_id (1 = Create); time in epoch ms;
severity_id 1 informational … 5 critical; ``is_alert`` (new in 1.4) marks alertable signals.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmwatch import __version__
from crmwatch.detect.runner import Alert

OCSF_VERSION = "1.4.0"
CLASS_UID, CATEGORY_UID, ACTIVITY_CREATE = 2004, 2, 1
SEVERITY = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


def ms(ts: dt.datetime) -> int:
    """A stored (naive UTC) time as OCSF's epoch milliseconds."""
    return int(ts.replace(tzinfo=dt.UTC).timestamp() * 1000)


def finding_head(class_uid: int, class_name: str, ts: dt.datetime, level: str) -> dict[str, Any]:
    """The fields every crmwatch finding starts with, of any Findings class (2003, 2004):
    class, category, activity Create, time and severity."""
    severity_id = SEVERITY.get(level, 0)
    return {
        "class_uid": class_uid,
        "class_name": class_name,
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": class_uid * 100 + ACTIVITY_CREATE,
        "time": ms(ts),
        "severity_id": severity_id,
        "severity": level.capitalize() if severity_id else "Unknown",
    }


def metadata(**extra: object) -> dict[str, Any]:
    """OCSF ``metadata``: the schema version and crmwatch as the product."""
    return {
        "version": OCSF_VERSION,
        "product": {"name": "crmwatch", "vendor_name": "crmwatch", "version": __version__},
        **extra,
    }


def _attacks(tags: list[str]) -> list[dict[str, Any]]:
    """ATT&CK technique tags (attack.t1567, attack.t1090.003) as OCSF attack objects."""
    out = []
    for t in tags:
        if t.startswith("attack.t") and t[8:9].isdigit():
            out.append({"technique": {"uid": t.removeprefix("attack.").upper()}, "version": "v16"})
    return out


def to_ocsf(alert: Alert) -> dict[str, Any]:
    return {
        **finding_head(CLASS_UID, "Detection Finding", alert.last_ts, alert.level),
        "status_id": 1,
        "status": "New",
        "is_alert": True,
        "message": f"{alert.principal or 'unknown principal'}: {alert.title}",
        "metadata": metadata(),
        "finding_info": {
            "uid": alert.alert_id,
            "title": alert.title,
            "first_seen_time": ms(alert.first_ts),
            "last_seen_time": ms(alert.last_ts),
            "analytic": {"uid": alert.rule_id, "name": alert.title, "type_id": 1, "type": "Rule"},
            "related_events": [{"uid": e} for e in alert.event_ids],
        },
        "attacks": _attacks(alert.tags),
        "actor": {"user": {"name": alert.principal}} if alert.principal else None,
        "unmapped": {"key_fields": alert.key_fields, "tags": alert.tags},
    }
