"""``crmwatch alerts deliver``: each incident to every configured channel once when it opens
and again when its severity rises, retried with back-off, and written in ``deliveries``.

A channel's delivery is due when the store has no successful delivery of the incident to it,
or only at a lower severity. A failed delivery is written as failed and is due again on the
next run, so nothing is lost when a webhook is down; a channel that did receive a message
whose success could not be recorded (a crash between the two) may receive it twice — at
least once, never silently never.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

from crmwatch.connectors.http import ConnectorError
from crmwatch.errors import CrmwatchError
from crmwatch.incidents import Incident, get_incident
from crmwatch.respond import channels
from crmwatch.respond.channels import Notice
from crmwatch.respond.settings import AlertSettings
from crmwatch.schema import LEVELS
from crmwatch.scope.results import stored_scope
from crmwatch.sql import lit
from crmwatch.store import Store


@dataclass
class Delivery:
    incident_id: str
    channel: str
    severity: str
    activity: str
    attempts: int
    status: str  # delivered | failed
    detail: str


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def due(store: Store, settings: AlertSettings) -> list[tuple[Incident, str, str, str | None]]:
    """(incident, channel, activity, previous severity) for every delivery that is owed, the
    most severe incident first, channels in their settings' order. Found in SQL, so that only
    the incidents owed a delivery are read: watch asks every cycle, and an incident's body
    holds every finding of it."""
    if not settings.channels:
        return []
    whens = " ".join(f"WHEN {lit(level)} THEN {n}" for n, level in enumerate(LEVELS))
    rank = "(CASE {} " + whens + " END)"
    rows = store.execute(
        f"""WITH sent AS (
            SELECT incident_id, channel, max({rank.format("severity")}) AS best
            FROM deliveries WHERE status = 'delivered' GROUP BY ALL),
        channels AS (
            SELECT unnest($channels) AS channel, unnest(range(len($channels))) AS pos)
        SELECT i.id, c.channel, s.best FROM (
            SELECT incident_id AS id, {rank.format("body->>'severity'")} AS level,
                body->>'first_malicious_at' AS began FROM incidents) i
        CROSS JOIN channels c LEFT JOIN sent s ON s.incident_id = i.id AND s.channel = c.channel
        WHERE i.level >= $floor AND (s.best IS NULL OR i.level > s.best)
        ORDER BY i.level DESC, i.began, i.id, c.pos""",
        {"channels": settings.channels, "floor": LEVELS.index(settings.min_severity)},
    ).rows
    incidents: dict[str, Incident] = {}
    out = []
    for incident_id, channel, best in rows:
        if incident_id not in incidents:
            incidents[incident_id] = get_incident(store, incident_id)
        previous = None if best is None else LEVELS[best]
        out.append((incidents[incident_id], channel, "opened" if best is None else "escalated",
                    previous))  # fmt: skip
    return out


def deliver(
    store: Store,
    settings: AlertSettings,
    attempts: int = 4,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send what is owed; return what was tried."""
    senders = _senders(settings, backoff)
    done = []
    for incident, channel, activity, previous in due(store, settings):
        scope = stored_scope(store, incident.id)
        link = (
            f"{settings.console_url.rstrip('/')}/incidents/{incident.id}"
            if settings.console_url
            else None
        )
        notice = Notice(
            incident, activity, previous, scope["affected_customers"] if scope else None, link
        )
        status, detail, tries = "failed", "", 0
        for tries in range(1, attempts + 1):
            try:
                detail = senders[channel](notice)
                status = "delivered"
                break
            except CrmwatchError as e:
                detail = str(e)
                if isinstance(e, ConnectorError) and e.status in (400, 401, 403, 404):
                    break  # the request itself is wrong: retrying cannot help
                if tries < attempts:
                    sleep(backoff * 2 ** (tries - 1))
        d = Delivery(incident.id, channel, incident.severity, activity, tries, status, detail)
        store.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                d.incident_id,
                d.channel,
                d.severity,
                d.activity,
                _now(),
                d.attempts,
                d.status,
                d.detail[:500],
            ],
        )
        done.append(d)
    return done


def _senders(settings: AlertSettings, backoff: float) -> dict[str, Callable[[Notice], str]]:
    out: dict[str, Callable[[Notice], str]] = {}
    for hook in settings.webhooks:
        out[hook.channel] = lambda n, h=hook: channels.webhook(h, n, attempts=1, backoff=backoff)
    if settings.email:
        out[f"email:{','.join(settings.email.to)}"] = lambda n, e=settings.email: channels.email(
            e, n
        )
    if settings.syslog:
        s = settings.syslog
        out[f"syslog:{s.host}:{s.port}"] = lambda n: channels.syslog(s, n)
    if settings.ocsf_path:
        p = settings.ocsf_path
        out[f"ocsf:{p}"] = lambda n: channels.ocsf_file(p, n)
    return out


def delivery_log(store: Store, limit: int = 200) -> list[dict]:
    return store.execute(
        "SELECT incident_id, channel, severity, activity, delivered_at, attempts, status, detail "
        "FROM deliveries ORDER BY delivered_at DESC LIMIT ?",
        [limit],
    ).dicts()
