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

from crmwatch.detect.correlation import correlation_sql, rule_where
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


def _time_filter(since: dt.datetime | None, until: dt.datetime | None) -> str:
    parts = []
    if since:
        parts.append(f"ts >= TIMESTAMP '{since.isoformat(sep=' ')}'")
    if until:
        parts.append(f"ts < TIMESTAMP '{until.isoformat(sep=' ')}'")
    return " AND ".join(parts) or "true"


def run_rule(
    store: Store, rf: RuleFile, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[Alert]:
    """The alerts one rule file raises over the store (nothing is written)."""
    main = rf.main
    level = str(main.level.name).lower() if main.level else "medium"
    tags = [str(t) for t in (main.tags or [])]
    window = _time_filter(since, until)
    alerts: list[Alert] = []
    if isinstance(main, SigmaCorrelationRule):
        sql = correlation_sql(main)
        for row in store.execute(f"SELECT * FROM ({sql}) WHERE first_ts IS NOT NULL").dicts():
            if not _in_window(row["last_ts"], since, until):
                continue
            groups = [str(row[k]) for k in row if k.startswith("g") and k[1:].isdigit()]
            principal = "/".join(groups) or None
            alerts.append(
                Alert(
                    _alert_id(rf.rule_id, principal, row["event_ids"][0]),
                    rf.rule_id,
                    main.title,
                    level,
                    tags,
                    principal,
                    row["first_ts"],
                    row["last_ts"],
                    list(row["event_ids"]),
                    {"count": row["n"]},
                )
            )
        return alerts
    where = rule_where(main)
    rows = store.execute(
        "SELECT coalesce(user_name, user_id) AS user_name, login_key, min(ts) AS first_ts, "
        "max(ts) AS last_ts, "
        f"list(event_id ORDER BY ts, event_id) AS event_ids, list(DISTINCT src_ip) AS ips, "
        f"list(DISTINCT object) AS objects, sum(rows) AS rows FROM events "
        f"WHERE ({where}) AND {window} GROUP BY ALL ORDER BY first_ts"
    ).dicts()
    for r in rows:
        fields = {
            "src_ips": [i for i in r["ips"] if i],
            "objects": [o for o in r["objects"] if o],
            "rows": r["rows"],
            "login_key": r["login_key"],
        }
        alerts.append(
            Alert(
                _alert_id(rf.rule_id, r["user_name"], r["event_ids"][0]),
                rf.rule_id,
                main.title,
                level,
                tags,
                r["user_name"],
                r["first_ts"],
                r["last_ts"],
                list(r["event_ids"]),
                fields,
            )
        )
    return alerts


def _in_window(ts: dt.datetime, since: dt.datetime | None, until: dt.datetime | None) -> bool:
    return (since is None or ts >= since) and (until is None or ts < until)


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
