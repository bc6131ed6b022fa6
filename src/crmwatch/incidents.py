"""Alerts → incidents, each with the events that belong to it and a timeline.

An attack shows up as several alerts from several rules: a new-country login, a look-alike
connected app, a bulk export, a job deletion. Responders need them as *one* incident with one
timeline, and the scope stage needs the incident's complete set of data-access events, not only
the ones a rule happened to flag. So building an incident has two steps:

1. **Group alerts.** Two alerts belong together when they share a person (user name, case
   folded, or user id, of an event that succeeded), a login session (``login_key``), a source
   IP that is not corporate or private, a connected app few people use, or a target (an
   account that failed to sign in: three spraying addresses aimed at the same staff are one
   campaign) — and the later one starts within ``gap`` of the earlier one's last event.
   Corporate and private IPs do not link alerts: a whole office shares them.
2. **Collect events.** An incident's events are its alerts' evidence, every event of its login
   sessions, its people's events from its suspicious IPs within ``gap`` of its alerts, and the
   OAuth grants of its apps to its people within ``origin_lookback`` before it: the login or
   app authorisation the alerts trace back to is the *first malicious event*. Sessions are
   followed only from attacker-side addresses (not corporate or private): a victim tricked at
   the office into approving an app keeps their own working day out of the incident. The
   people's later exports (reports, bulk jobs, list views) join while they keep coming.

Incidents are rebuilt from all stored alerts on every run (so re-running changes nothing), and
an incident's id hashes its earliest alert, so it stays the same as later alerts join it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from crmwatch.errors import UsageError
from crmwatch.store import Store

LEVELS = ("informational", "low", "medium", "high", "critical")
DATA_ACCESS = ("api_query", "bulk_export", "report_export", "record_view", "list_view")
# Tactics that mean the attacker got in, and tactics that mean data left: an incident with both
# is a confirmed intrusion with data theft, whatever each alert's own level.
ENTRY_TACTICS = {"initial-access", "credential-access", "persistence"}
THEFT_TACTICS = {"collection", "exfiltration"}
UNLINKED_IP_CLASSES = ("corporate", "private")
# An app links alerts only when at most this many principals ever used it: a look-alike Data
# Loader or one integration's token, not "Browser" or the mobile app everyone has.
APP_LINK_MAX_USERS = 5

DEFAULT_GAP = dt.timedelta(hours=24)
# An incident's people's later exports (reports, bulk jobs, list views) belong to it while they
# follow one another within this long: a slow insider exports once a working day.
EXPORT_FOLLOW = dt.timedelta(days=3)
EXPORTS = ("report_export", "bulk_export", "list_view")
DEFAULT_MIN_LEVEL = "medium"
# A person is tied to an attack by what was done as them: the thirty accounts a password spray
# failed against are targets, not suspects, so failed events name no person.
ACTED = "e.outcome IS DISTINCT FROM 'failure'"
# Salesforce ids come 15- or 18-character (ELF rows and event objects differ): key on 15.
USER_KEY = "CASE WHEN regexp_full_match({c}, '[a-zA-Z0-9]{{18}}') THEN left({c}, 15) ELSE {c} END"
DEFAULT_ORIGIN_LOOKBACK = dt.timedelta(days=7)


@dataclass
class Incident:
    """One incident as ``incidents --json`` prints it (times are UTC ISO 8601)."""

    id: str
    severity: str
    principals: list[str]
    user_ids: list[str]
    source_ips: list[str]
    apps: list[str]
    login_keys: list[str]
    tactics: list[str]
    techniques: list[str]
    rules: list[str]
    alert_ids: list[str]
    first_malicious_at: str
    first_malicious_event: dict[str, Any]
    first_alert_at: str
    detected_at: str | None
    time_to_detect_seconds: float
    last_event_at: str
    events: int
    objects: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _AlertKeys:
    """What links one alert to others, read from its evidence events."""

    alert_id: str
    level: str
    title: str
    tags: list[str]
    first_ts: dt.datetime
    last_ts: dt.datetime
    fired_at: dt.datetime
    detected_at: dt.datetime | None
    people: list[str]
    user_ids: list[str]
    targets: list[str]  # accounts tried but not used: they link attempts, not people
    login_keys: list[str]
    attacker_sessions: list[str]
    ips: list[str]
    all_ips: list[str]
    apps: list[str]
    link_apps: list[str]  # apps few people use: "Browser" or the mobile app link nothing

    @property
    def keys(self) -> list[tuple[str, str]]:
        return (
            [("person", p) for p in self.people]
            + [("user", u) for u in self.user_ids]
            + [("target", t) for t in self.targets]
            + [("session", k) for k in self.login_keys]
            + [("ip", i) for i in self.ips]
            + [("app", a) for a in self.link_apps]
        )


def _alert_keys(store: Store) -> list[_AlertKeys]:
    unlinked = ", ".join(f"'{c}'" for c in UNLINKED_IP_CLASSES)
    rows = store.execute(
        f"""
        WITH ev AS (
            SELECT a.alert_id, u.event_id FROM alerts a, unnest(a.event_ids) AS u(event_id)),
        rare_apps AS (
            SELECT client_app FROM events_base WHERE client_app IS NOT NULL GROUP BY client_app
            HAVING count(DISTINCT coalesce(user_name, user_id)) <= {APP_LINK_MAX_USERS})
        SELECT a.alert_id, a.level, a.title, coalesce(a.tags, []) AS tags, a.first_ts,
            a.last_ts, coalesce(a.fired_at, a.first_ts) AS fired_at, a.detected_at,
            coalesce(list(DISTINCT lower(e.user_name)) FILTER (e.user_name IS NOT NULL
                AND {ACTED}), []) AS people,
            coalesce(list(DISTINCT {USER_KEY.format(c="e.user_id")})
                FILTER (e.user_id IS NOT NULL AND {ACTED}), []) AS user_ids,
            coalesce(list(DISTINCT lower(coalesce(e.user_name, e.user_id)))
                FILTER (e.outcome = 'failure'), []) AS targets,
            coalesce(list(DISTINCT e.login_key) FILTER (e.login_key IS NOT NULL), [])
                AS login_keys,
            coalesce(list(DISTINCT e.login_key) FILTER (e.login_key IS NOT NULL
                AND e.ip_class NOT IN ({unlinked})), []) AS attacker_sessions,
            coalesce(list(DISTINCT e.src_ip) FILTER (e.src_ip IS NOT NULL
                AND e.ip_class NOT IN ({unlinked})), []) AS ips,
            coalesce(list(DISTINCT e.src_ip) FILTER (e.src_ip IS NOT NULL), []) AS all_ips,
            coalesce(list(DISTINCT e.client_app) FILTER (e.client_app IS NOT NULL), []) AS apps,
            coalesce(list(DISTINCT e.client_app) FILTER (e.client_app IN
                (SELECT client_app FROM rare_apps)), []) AS link_apps
        FROM alerts a JOIN ev USING (alert_id)
        JOIN (SELECT event_id, user_name, user_id, login_key, src_ip, ip_class, client_app,
                     outcome FROM events) e USING (event_id)
        GROUP BY ALL ORDER BY fired_at, a.alert_id"""
    ).dicts()
    return [_AlertKeys(**r) for r in rows]


def group_alerts(alerts: list[_AlertKeys], gap: dt.timedelta) -> list[list[_AlertKeys]]:
    """Single-linkage over shared keys, where a link only holds across at most ``gap``."""
    parent = list(range(len(alerts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    ordered = sorted(range(len(alerts)), key=lambda i: (alerts[i].first_ts, alerts[i].alert_id))
    latest: dict[tuple[str, str], tuple[int, dt.datetime]] = {}
    for i in ordered:
        a = alerts[i]
        for key in a.keys:
            seen = latest.get(key)
            if seen is not None and a.first_ts - seen[1] <= gap:
                parent[root(i)] = root(seen[0])
            end = max(a.last_ts, seen[1]) if seen is not None else a.last_ts
            latest[key] = (i, end)
    groups: dict[int, list[_AlertKeys]] = {}
    for i in ordered:
        groups.setdefault(root(i), []).append(alerts[i])
    return list(groups.values())


def _severity(group: list[_AlertKeys], tactics: set[str]) -> str:
    level = max((LEVELS.index(a.level) if a.level in LEVELS else 2) for a in group)
    high = LEVELS.index("high")
    if tactics & ENTRY_TACTICS and tactics & THEFT_TACTICS:
        # Entry plus theft: at least high, and one step up from high.
        level = high if level < high else len(LEVELS) - 1
    return LEVELS[level]


def _incident_id(group: list[_AlertKeys]) -> str:
    first = min(group, key=lambda a: (a.first_ts, a.alert_id))
    return "INC-" + hashlib.sha256(first.alert_id.encode()).hexdigest()[:10].upper()


def _key_tables(store: Store, groups: dict[str, list[_AlertKeys]]) -> None:
    """Each incident's keys as small temporary tables, so that collecting the events of every
    incident is a handful of joins, not a scan of the store per incident."""
    tables = {
        "inc_alerts": ("alert_id VARCHAR", lambda g: {a.alert_id for a in g}),
        "inc_people": ("person VARCHAR", lambda g: {p for a in g for p in a.people}),
        "inc_uids": ("uid VARCHAR", lambda g: {u for a in g for u in a.user_ids}),
        "inc_sessions": (
            "login_key VARCHAR",
            lambda g: {k for a in g for k in a.attacker_sessions},
        ),
        "inc_ips": ("ip VARCHAR", lambda g: {i for a in g for i in a.ips}),
        "inc_apps": ("app VARCHAR", lambda g: {x for a in g for x in a.apps}),
    }
    for name, (column, values) in tables.items():
        store.execute(f"CREATE OR REPLACE TEMP TABLE {name} (iid VARCHAR, {column})")
        store.insert(name, [(iid, v) for iid, g in groups.items() for v in sorted(values(g))])
    store.execute(
        "CREATE OR REPLACE TEMP TABLE inc_span (iid VARCHAR, lo TIMESTAMP, hi TIMESTAMP, "
        "start TIMESTAMP)"
    )
    spans = [(iid, min(a.first_ts for a in g), max(a.last_ts for a in g),
              min(a.fired_at for a in g)) for iid, g in groups.items()]  # fmt: skip
    store.insert("inc_span", spans)


def _collect_events(store: Store, gap: dt.timedelta, lookback: dt.timedelta) -> None:
    """Fill incident_events for every incident (see the module docstring for what belongs);
    an event in several roles keeps the first of evidence, session, attacker ip, origin."""
    uid = USER_KEY.format(c="e.user_id")

    def by_person(role: str, prio: int, join: str, where: str) -> str:
        # the incident's people, by name or by user id
        return " UNION ALL ".join(
            f"SELECT k.iid, e.event_id, '{role}' AS role, {prio} AS prio FROM events_base e "
            f"{join} JOIN inc_span sp ON sp.iid = k.iid {who} WHERE {where}"
            for who in (
                "JOIN inc_people p ON p.iid = k.iid AND p.person = lower(e.user_name)",
                f"JOIN inc_uids u ON u.iid = k.iid AND u.uid = {uid}",
            )
        )

    store.execute(
        f"""
        INSERT INTO incident_events
        SELECT iid, event_id, arg_min(role, prio) FROM (
            SELECT k.iid, u.event_id, 'evidence' AS role, 1 AS prio
            FROM inc_alerts k JOIN alerts a USING (alert_id), unnest(a.event_ids) AS u(event_id)
            UNION ALL
            SELECT k.iid, e.event_id, 'session', 2 FROM events_base e
            JOIN inc_sessions k ON k.login_key = e.login_key
            UNION ALL
            {
            by_person(
                "attacker ip",
                3,
                "JOIN inc_ips k ON k.ip = e.src_ip",
                "e.ts BETWEEN sp.lo - $gap AND sp.hi + $gap",
            )
        }
            UNION ALL
            {
            by_person(
                "origin",
                4,
                "JOIN inc_apps k ON k.app = e.client_app",
                "e.category = 'oauth_grant' AND e.ts BETWEEN sp.lo - $lookback AND sp.hi",
            )
        }
        ) GROUP BY iid, event_id""",
        {"gap": gap, "lookback": lookback},
    )


def _follow_exports(store: Store) -> None:
    """Add each incident's people's exports that follow its alerts within EXPORT_FOLLOW of one
    another (role ``later export``): an insider's second, third … day of exports."""
    cats = ", ".join(f"'{c}'" for c in EXPORTS)
    uid = USER_KEY.format(c="e.user_id")
    rows = store.execute(
        f"""SELECT DISTINCT sp.iid, e.event_id, e.ts, sp.hi FROM events_base e
        JOIN inc_span sp ON e.ts >= sp.start
        LEFT JOIN inc_people p ON p.iid = sp.iid AND p.person = lower(e.user_name)
        LEFT JOIN inc_uids u ON u.iid = sp.iid AND u.uid = {uid}
        WHERE e.category IN ({cats}) AND (p.iid IS NOT NULL OR u.iid IS NOT NULL)
        ORDER BY sp.iid, e.ts"""
    ).rows
    chosen: list[tuple[str, str]] = []
    last: dict[str, dt.datetime] = {}
    broken: set[str] = set()  # the chain broke: nothing later joins
    for iid, event_id, ts, hi in rows:
        end = last.get(iid, hi)
        if iid in broken or ts - end > EXPORT_FOLLOW:
            broken.add(iid)
            continue
        chosen.append((iid, event_id))
        last[iid] = max(end, ts)
    store.execute("CREATE OR REPLACE TEMP TABLE inc_later (iid VARCHAR, event_id VARCHAR)")
    store.insert("inc_later", chosen)
    store.execute(
        "INSERT INTO incident_events SELECT l.iid, l.event_id, 'later export' FROM inc_later l "
        "ANTI JOIN incident_events i ON i.incident_id = l.iid AND i.event_id = l.event_id"
    )


def _all_facts(store: Store) -> dict[str, dict[str, Any]]:
    """Per incident: the first malicious event, the last event, the event count and the
    objects touched, from incident_events (three queries for all incidents)."""
    out: dict[str, dict[str, Any]] = {}
    for r in store.execute(
        """SELECT i.incident_id, arg_min(e.event_id, (e.ts, e.event_id)) AS event_id,
            min(e.ts) AS ts, arg_min(e.source_type, (e.ts, e.event_id)) AS source_type,
            arg_min(e.category, (e.ts, e.event_id)) AS category,
            arg_min(e.src_ip, (e.ts, e.event_id)) AS src_ip,
            arg_min(e.country, (e.ts, e.event_id)) AS country,
            arg_min(e.client_app, (e.ts, e.event_id)) AS client_app,
            max(e.ts) AS last, count(*) AS n
        FROM incident_events i
        JOIN (SELECT event_id, ts, source_type, category, src_ip, country, client_app
              FROM events) e USING (event_id)
        GROUP BY i.incident_id"""
    ).dicts():
        iid, last, n = r.pop("incident_id"), r.pop("last"), r.pop("n")
        r["ts"] = _iso(r["ts"])
        out[iid] = {"first": r, "last": last, "events": n, "objects": []}
    for r in store.execute(
        f"""SELECT i.incident_id, b.object, count(*) AS events, sum(b.rows) AS rows
        FROM incident_events i JOIN events_base b USING (event_id)
        WHERE b.object IS NOT NULL
          AND b.category IN ({", ".join(f"'{c}'" for c in DATA_ACCESS)})
        GROUP BY ALL ORDER BY i.incident_id, rows DESC NULLS LAST, b.object"""
    ).dicts():
        out[r.pop("incident_id")]["objects"].append(r)
    return out


def build_incidents(
    store: Store,
    gap: dt.timedelta = DEFAULT_GAP,
    origin_lookback: dt.timedelta = DEFAULT_ORIGIN_LOOKBACK,
    min_level: str = DEFAULT_MIN_LEVEL,
) -> list[Incident]:
    """Rebuild every incident from the stored alerts; return them, most severe first.

    Alerts below ``min_level`` (default medium: ``low`` and ``informational``) are building
    blocks: they join an incident their keys link them to, but never open one alone — an
    unusual hour or a new home ISP is context, not a case to work."""
    if min_level not in LEVELS:
        raise UsageError(f"unknown level {min_level!r}; one of {', '.join(LEVELS)}")
    floor = LEVELS.index(min_level)
    groups = [
        g
        for g in group_alerts(_alert_keys(store), gap)
        if max(LEVELS.index(a.level) if a.level in LEVELS else 2 for a in g) >= floor
    ]
    by_id = {_incident_id(g): g for g in groups}
    incidents: list[Incident] = []
    with store.transaction():
        for table in ("incidents", "incident_alerts", "incident_events"):
            store.execute(f"DELETE FROM {table}")
        _key_tables(store, by_id)
        _collect_events(store, gap, origin_lookback)
        _follow_exports(store)
        facts = _all_facts(store)
        for iid, group in by_id.items():
            incidents.append(_make(iid, group, facts[iid]))
        store.insert("incident_alerts", [(i.id, a) for i in incidents for a in i.alert_ids])
        store.insert(
            "incidents",
            [(i.id, i.severity, i.first_malicious_at, i.first_alert_at, i.last_event_at,
              json.dumps(i.to_dict())) for i in incidents],
        )  # fmt: skip
    return sorted(incidents, key=_rank)


def _make(iid: str, group: list[_AlertKeys], facts: dict[str, Any]) -> Incident:
    tags = {t for a in group for t in a.tags}
    tactics = sorted(
        t.removeprefix("attack.") for t in tags if t.startswith("attack.") and not _technique(t)
    )
    techniques = sorted(t.removeprefix("attack.").upper() for t in tags if _technique(t))
    first_alert = min(a.fired_at for a in group)
    first_malicious = dt.datetime.fromisoformat(facts["first"]["ts"])
    detected = [a.detected_at for a in group if a.detected_at is not None]
    return Incident(
        id=iid,
        severity=_severity(group, set(tactics)),
        principals=sorted({p for a in group for p in a.people}),
        user_ids=sorted({u for a in group for u in a.user_ids}),
        source_ips=sorted({i for a in group for i in a.all_ips}),
        apps=sorted({x for a in group for x in a.apps}),
        login_keys=sorted({k for a in group for k in a.login_keys}),
        tactics=tactics,
        techniques=techniques,
        rules=sorted({a.title for a in group}),
        alert_ids=[a.alert_id for a in group],
        first_malicious_at=facts["first"]["ts"],
        first_malicious_event=facts["first"],
        first_alert_at=_iso(first_alert),
        detected_at=_iso(min(detected)) if detected else None,
        time_to_detect_seconds=(first_alert - first_malicious).total_seconds(),
        last_event_at=_iso(max(facts["last"], max(a.last_ts for a in group))),
        events=facts["events"],
        objects=facts["objects"],
    )


def _technique(tag: str) -> bool:
    name = tag.removeprefix("attack.")
    return len(name) > 1 and name[0] in "tT" and name[1].isdigit()


def _rank(i: Incident) -> tuple:
    return (-LEVELS.index(i.severity), i.first_malicious_at, i.id)


def _iso(ts: dt.datetime) -> str:
    return ts.isoformat()


def get_incident(store: Store, incident_id: str) -> Incident:
    row = store.execute(
        "SELECT body FROM incidents WHERE upper(incident_id) = upper(?)", [incident_id]
    ).first()
    if row is None:
        known = store.scalar("SELECT count(*) FROM incidents")
        hint = "run `crmwatch incidents` first" if not known else "see `crmwatch incidents`"
        raise UsageError(f"no incident {incident_id!r} in the store ({hint})")
    return Incident(**json.loads(row[0]))


@dataclass
class TimelineEntry:
    ts: str
    kind: str  # event | alert
    role: str
    text: str
    count: int = 1
    ref: str = ""
    last_ts: str = ""  # of a collapsed run of events


def timeline(store: Store, incident: Incident, limit: int = 200) -> list[TimelineEntry]:
    """The incident's events and alert firings in time order. Consecutive events of the same
    kind, object and IP collapse into one line with a count, so a 5,000-call export reads as
    one step of the attack, not 5,000 lines."""
    rows = store.execute(
        """SELECT e.ts, i.role, e.event_id, e.source_type, e.category, e.operation, e.object,
            e.rows, e.src_ip, e.country, e.client_app, e.outcome, coalesce(e.user_name, e.user_id)
            AS who
        FROM incident_events i
        JOIN (SELECT event_id, ts, source_type, category, operation, object, rows, src_ip,
                country, client_app, outcome, user_name, user_id FROM events) e USING (event_id)
        WHERE i.incident_id = ? ORDER BY e.ts, e.event_id""",
        [incident.id],
    ).dicts()
    alerts = store.execute(
        """SELECT coalesce(fired_at, first_ts) AS ts, title, level, alert_id FROM alerts
        WHERE alert_id IN (SELECT unnest(?)) ORDER BY ts""",
        [incident.alert_ids],
    ).dicts()
    entries: list[TimelineEntry] = []
    key_prev = None
    for r in rows:
        what = " ".join(
            str(x) for x in (r["category"], r["operation"], r["object"]) if x is not None
        )
        where = f"from {r['src_ip']} ({r['country'] or '??'})" if r["src_ip"] else ""
        app = f"via {r['client_app']}" if r["client_app"] else ""
        text = " ".join(x for x in (r["who"] or "?", what, app, where, r["outcome"]) if x)
        key = (r["role"], r["source_type"], r["category"], r["object"], r["src_ip"])
        if key == key_prev and entries:
            entries[-1].count += 1
            entries[-1].last_ts = _iso(r["ts"])
            continue
        key_prev = key
        entries.append(TimelineEntry(_iso(r["ts"]), "event", r["role"], text, 1, r["event_id"]))
    for a in alerts:
        entries.append(
            TimelineEntry(_iso(a["ts"]), "alert", a["level"], a["title"], 1, a["alert_id"])
        )
    entries.sort(key=lambda e: (e.ts, e.kind != "event"))
    return entries[:limit]
