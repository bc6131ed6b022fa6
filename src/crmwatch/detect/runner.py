"""Run rules over the store and write alerts, idempotently.

A correlation raises one alert per firing span and group. A plain detection rule raises one
alert per principal and login session (``login_key``), so a suspicious session is one alert,
not one per API call. ``alert_id`` hashes the rule, the principal and the first evidence event:
re-running ``detect`` over the same events adds nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import SigmaCorrelationRule

from crmwatch.detect.backend import rule_where
from crmwatch.detect.baseline import Baseline, Window, parse_baseline, selected_sql, volume_sql
from crmwatch.detect.correlation import correlation_sql
from crmwatch.detect.rules import RuleFile
from crmwatch.errors import RuleError
from crmwatch.store import Store


@dataclass
class Alert:
    alert_id: str
    rule_id: str
    title: str
    level: str
    tags: list[str]
    principal: str | None
    first_ts: dt.datetime
    last_ts: dt.datetime
    event_ids: list[str]
    key_fields: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["first_ts"], d["last_ts"] = self.first_ts.isoformat(), self.last_ts.isoformat()
        return d

    def __repr__(self) -> str:
        when = f"{self.first_ts:%Y-%m-%d %H:%M}"
        return f"<Alert {self.rule_id} {self.principal} {when} ({len(self.event_ids)} events)>"


def _alert_id(rule_id: str, principal: str | None, first_event: str) -> str:
    return hashlib.md5(f"{rule_id}|{principal}|{first_event}".encode()).hexdigest()


def run_rule(
    store: Store, rf: RuleFile, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[Alert]:
    """The alerts one rule file raises over the store (nothing is written)."""
    main = rf.main
    window = Window(since, until)
    if isinstance(main, SigmaCorrelationRule):
        return _correlation_alerts(store, rf, window)
    baseline = parse_baseline(main)
    if baseline is not None and baseline.kind == "volume":
        return _volume_alerts(store, rf, baseline, window)
    return _session_alerts(store, rf, window)


def _alert(rf: RuleFile, principal: str | None, first_ts, last_ts, ids, fields) -> Alert:
    main = rf.main
    return Alert(
        _alert_id(rf.rule_id, principal, ids[0]),
        rf.rule_id,
        main.title,
        str(main.level.name).lower() if main.level else "medium",
        [str(t) for t in (main.tags or [])],
        principal,
        first_ts,
        last_ts,
        list(ids),
        fields,
    )


def _correlation_alerts(store: Store, rf: RuleFile, window: Window) -> list[Alert]:
    sql = correlation_sql(rf.main, window)
    alerts = []
    for row in store.execute(f"SELECT * FROM ({sql}) WHERE first_ts IS NOT NULL").dicts():
        if not _in_window(row["last_ts"], window):
            continue
        groups = [str(row[k]) for k in row if k.startswith("g") and k[1:].isdigit()]
        principal = "/".join(groups) or None
        alerts.append(
            _alert(
                rf,
                principal,
                row["first_ts"],
                row["last_ts"],
                row["event_ids"],
                {"count": row["n"]},
            )
        )
    return alerts


def _volume_alerts(store: Store, rf: RuleFile, b: Baseline, window: Window) -> list[Alert]:
    alerts = []
    for row in store.execute(volume_sql(rule_where(rf.main), b, window)).dicts():
        principal = "/".join(str(row[f"g{i}"]) for i in range(len(b.group_by)))
        fields = {
            "total": row["total"],
            "baseline": row["baseline"],
            "threshold": row["threshold"],
            "bucket_start": row["b"],
        }
        alerts.append(
            _alert(rf, principal, row["first_ts"], row["last_ts"], row["event_ids"], fields)
        )
    return alerts


def _session_alerts(store: Store, rf: RuleFile, window: Window) -> list[Alert]:
    """One alert per principal and login session of the selected events."""
    selected = selected_sql(rf.main, window)
    has_terms = parse_baseline(rf.main) is not None
    terms = ", list(DISTINCT new_term) AS new_terms" if has_terms else ""
    rows = store.execute(
        "SELECT coalesce(user_name, user_id) AS principal, login_key, min(ts) AS first_ts, "
        "max(ts) AS last_ts, list(event_id ORDER BY ts, event_id) AS event_ids, "
        "list(DISTINCT src_ip) AS ips, list(DISTINCT object) AS objects, sum(rows) AS rows"
        f"{terms} FROM ({selected}) GROUP BY ALL ORDER BY first_ts"
    ).dicts()
    alerts = []
    for r in rows:
        fields = {
            "src_ips": [i for i in r["ips"] if i],
            "objects": [o for o in r["objects"] if o],
            "rows": r["rows"],
            "login_key": r["login_key"],
        }
        if has_terms:
            fields["new_terms"] = r["new_terms"]
        alerts.append(
            _alert(rf, r["principal"], r["first_ts"], r["last_ts"], r["event_ids"], fields)
        )
    return alerts


def _in_window(ts: dt.datetime, window: Window) -> bool:
    return (window.lo is None or ts >= window.lo) and (window.hi is None or ts < window.hi)


def stored_alerts(store: Store) -> list[Alert]:
    """Every alert in the store, oldest first."""
    rows = store.execute(
        "SELECT alert_id, rule_id, title, level, tags, principal, first_ts, last_ts, event_ids, "
        "key_fields FROM alerts ORDER BY first_ts, alert_id"
    ).dicts()
    return [Alert(**{**r, "key_fields": json.loads(r["key_fields"] or "{}")}) for r in rows]


def detect(
    store: Store,
    rule_files: list[RuleFile],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[Alert]:
    """Run every rule and store its alerts; returns the alerts (new and already stored)."""
    out: list[Alert] = []
    for rf in rule_files:
        if rf.errors:
            raise RuleError(f"{rf.path.name}: {rf.errors[0]}")
        out.extend(run_rule(store, rf, since, until))
    with store.transaction():
        for a in out:
            store.execute(
                "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP) "
                "ON CONFLICT DO NOTHING",
                [
                    a.alert_id,
                    a.rule_id,
                    a.title,
                    a.level,
                    a.tags,
                    a.principal,
                    a.first_ts,
                    a.last_ts,
                    a.event_ids,
                    json.dumps(a.key_fields, default=str),
                ],
            )
    return out
