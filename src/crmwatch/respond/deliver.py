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
from crmwatch.incidents import Incident, stored_incidents
from crmwatch.respond import channels
from crmwatch.respond.channels import Notice
from crmwatch.respond.settings import AlertSettings
from crmwatch.schema import LEVELS
from crmwatch.scope.results import stored_scope
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


def _sent(store: Store) -> dict[tuple[str, str], str]:
    """(incident, channel) → the highest severity delivered."""
    rows = store.execute(
        "SELECT incident_id, channel, list(severity) FROM deliveries "
        "WHERE status = 'delivered' GROUP BY ALL"
    ).rows
    return {(i, c): max(levels, key=LEVELS.index) for i, c, levels in rows}


def due(store: Store, settings: AlertSettings) -> list[tuple[Incident, str, str, str | None]]:
    """(incident, channel, activity, previous severity) for every delivery that is owed."""
    sent = _sent(store)
    floor = LEVELS.index(settings.min_severity)
    out = []
    for i in stored_incidents(store):
        if LEVELS.index(i.severity) < floor:
            continue
        for channel in settings.channels:
            before = sent.get((i.id, channel))
            if before is None:
                out.append((i, channel, "opened", None))
            elif LEVELS.index(i.severity) > LEVELS.index(before):
                out.append((i, channel, "escalated", before))
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
