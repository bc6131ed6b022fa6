"""Findings → incidents: risk-based, each holding the attacker-side chain and its timeline.

A real company's month is full of findings that are true and harmless: a person on a new
carrier, a trip abroad, a support desk logging in as users. One of them on its own is context;
an attack shows up as several, or as one that only attacks produce. So:

1. **Findings add risk.** Every alert is a finding with a level and a risk score (its rule's
   ``risk:``, else its level's default: low 10, medium 25, high 60, critical 100). A finding
   on networks new to its principal that the organisation already uses (three or more other
   people in 30 days: the country's carrier, a hotel chain's ISP) adds half.
2. **Findings that belong together are linked.** They share a person (user name, case
   folded, or user id, of an event that succeeded), a login session, an attacker-side address,
   an app few people use, or a sprayed account, within ``gap`` of each other.
3. **An incident opens** on a finding at or above ``open_level`` (high), or when the linked
   findings' risk within any ``risk_window`` (24 h) reaches ``risk_threshold`` (60), each rule
   counted once. Below that, findings stay findings. Each incident says what opened it: the
   finding, or every finding of the window that crossed the threshold and what it added.
4. **An incident holds the attacker-side chain.** An event is *own-side* when it comes from
   the company's declared networks, or from a network its principal used on an earlier day in
   30 days, or — for a person — from an ordinary ISP in a country and with a kind of client
   they used before (their first day working from home); *attacker-side* when it comes from
   Tor or a VPN, from a hosting provider for a person, through an app new to its principal
   (outside the company's networks), or from any other network new to it — even an ordinary
   one, when a finding that opens an incident by itself came from it; a session with one
   attacker-side event is the attacker's. The chain starts at the first attacker-side event.
   The victim's own findings and events more than ``lead`` (1 h) before it stay out — the
   morning's work at the office is not the attack — while the minutes before it stay in (the
   vishing call that walks the victim through approving an app); a person's own-side findings
   never link to the attacker side otherwise, so the victim's day bridges nothing. Sessions and
   addresses are followed only from the attacker side, and so are sessions in which an app new
   to its principal was used (the look-alike Data Loader's API calls). The people's later
   exports join only incidents with no attacker side at all (an insider, who works from their
   own desk).

The first malicious event is the first event of the chain: the sign-in or the app
authorisation the findings trace back to, not the first alert. Incidents are rebuilt from all
stored alerts on every run (re-running changes nothing); an incident's id hashes its earliest
finding, so it stays the same as later findings join it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import deque
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from itertools import groupby
from typing import Any

from crmwatch.config import IncidentConfig
from crmwatch.detect.context import ID_KEY, NETWORK, PRINCIPAL_KEY, PRINCIPAL_KIND, prepare
from crmwatch.detect.rules import LEVEL_RISK
from crmwatch.errors import UsageError
from crmwatch.schema import LEVELS, Category, person_sql, principal_sql
from crmwatch.sql import lit, lit_list, num
from crmwatch.sql import ts as ts_lit
from crmwatch.store import Store
from crmwatch.timeutil import iso_z

DATA_ACCESS = (Category.API_QUERY, Category.BULK_EXPORT, Category.REPORT_EXPORT,
               Category.RECORD_VIEW, Category.LIST_VIEW)  # fmt: skip
# Tactics that mean the attacker got in, and tactics that mean data left: an incident with an
# attacker side whose findings of medium level or more show both is a confirmed intrusion with
# data theft.
ENTRY_TACTICS = {"initial-access", "credential-access", "persistence"}
THEFT_TACTICS = {"collection", "exfiltration"}
# An app links findings only when at most this many principals ever used it: a look-alike
# Data Loader or one integration's token, not "Browser" or the mobile app everyone has.
APP_LINK_MAX_USERS = 5
# A network at least this many other people used in the 30 days before is the organisation's
# (a national carrier, a hotel chain's ISP): findings on it add half their risk.
ORG_NETWORK_USERS = 3
FAMILIAR_DAYS = 30
# An incident's people's later exports (reports, bulk jobs, list views) belong to it while they
# follow one another within this long: a slow insider exports once a working day.
EXPORT_FOLLOW = dt.timedelta(days=3)
EXPORTS = (Category.REPORT_EXPORT, Category.BULK_EXPORT, Category.LIST_VIEW)
# A person is tied to an attack by what was done as them: the thirty accounts a password spray
# failed against are targets, not suspects, so failed events name no person.
ACTED = "e.outcome IS DISTINCT FROM 'failure'"
USER_KEY = ID_KEY


@dataclass
class Incident:
    """One incident as ``incidents --json`` prints it (times are UTC, ISO 8601 with Z)."""

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
    # what opened it: {"by": "finding", ...} or {"by": "risk", "score", "threshold",
    # "window_start", "window_end", "findings": [{title, level, risk, why}]}
    opened_by: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Finding:
    """What opening an incident reads of one finding (the rest of a finding stays in the
    store, in ``inc_findings``)."""

    alert_id: str
    level: str
    title: str
    fired_at: dt.datetime
    rule_id: str
    risk: int
    org_network: bool = False  # every address on a network the organisation already uses

    @property
    def score(self) -> int:
        """The risk this finding adds: half on the organisation's own networks."""
        return self.risk // 2 if self.org_network else self.risk


# One row per finding: what links it to others and which side of the attack it is on, read
# from its evidence events. targets: accounts tried but not used (they link attempts, not
# people); ips: its attacker-side addresses; link_apps: apps few people use ("Browser" or the
# mobile app link nothing); new_apps: apps new to their principal; side: attacker | own |
# neutral; attack_from: its first attacker-side event.
FINDINGS = """CREATE OR REPLACE TEMP TABLE inc_findings (
    alert_id VARCHAR, level VARCHAR, title VARCHAR, tags VARCHAR[], first_ts TIMESTAMP,
    last_ts TIMESTAMP, fired_at TIMESTAMP, detected_at TIMESTAMP, people VARCHAR[],
    user_ids VARCHAR[], targets VARCHAR[], login_keys VARCHAR[], attacker_sessions VARCHAR[],
    ips VARCHAR[], all_ips VARCHAR[], apps VARCHAR[], link_apps VARCHAR[], new_apps VARCHAR[],
    rule_id VARCHAR, risk INTEGER, side VARCHAR, attack_from TIMESTAMP, org_network BOOLEAN)"""


def _side_tables(store: Store, cfg: IncidentConfig) -> None:
    """Each finding's evidence events with what decides their side: ``inc_ev``.

    ``inc_e`` holds the evidence events and every event of their sessions; ``inc_seen``
    which networks and apps their principals used on which day, and who else used their
    networks, so that "used on an earlier day in 30 days" is a join, not a scan per event.
    Nothing else is read from it (the attempts' targets are evidence principals too): built
    for every principal of the store, it was a scan of every event through the view, the
    largest cost of building a few incidents in a large store."""
    prepare(store, [PRINCIPAL_KIND])  # the people's profiles; no rule's baselines
    # The evidence events: found by id, which reads every id of the store once.
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE inc_evidence AS
        SELECT event_id, ts, login_key, {PRINCIPAL_KEY} AS pkey FROM events_base
        WHERE event_id IN (SELECT u.event_id FROM alerts a, unnest(a.event_ids) AS u(event_id))"""
    )
    lo, hi, untimed = store.execute(
        "SELECT min(ts), max(ts), count(*) FILTER (ts IS NULL) > 0 FROM inc_evidence"
    ).rows[0]
    near = _within(lo, hi, untimed)
    view = f"""SELECT event_id, ts, outcome, user_name, user_id, src_ip, ip_class, as_org,
                client_app, login_key, country, category, object, rows, source_type,
                CASE WHEN user_agent IS NOT NULL THEN ua_class END AS ua_class,
                {PRINCIPAL_KEY} AS pkey FROM events"""
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE inc_e AS
        -- the evidence's sessions (a login key and its principal): only their events can make
        -- an evidence event's session the attacker's (every event of the evidence's login
        -- keys, whoever's, was 8M of the 12M-event benchmark's events; their sessions 2.5M)
        WITH sessions AS (
            SELECT DISTINCT login_key, pkey FROM inc_evidence WHERE login_key IS NOT NULL),
        -- every event of the evidence's login keys (the evidence with one among them), and
        -- the evidence without one, found again by id only in its own time span
        x AS (
            SELECT *, event_id IN (SELECT event_id FROM inc_evidence) AS evidence FROM (
                {view} WHERE login_key IN (SELECT login_key FROM sessions)
                UNION ALL
                {view} WHERE login_key IS NULL AND {near}
                    AND event_id IN (SELECT event_id FROM inc_evidence)))
        -- the evidence events, and every event of their sessions
        SELECT * EXCLUDE (as_org), {NETWORK} AS network, {PRINCIPAL_KIND} AS kind
        FROM x WHERE evidence OR EXISTS (SELECT 1 FROM sessions s
            WHERE s.login_key = x.login_key AND s.pkey IS NOT DISTINCT FROM x.pkey)"""
    )
    # Only the days before the evidence's are read (and before the attempts', which lie in
    # the findings' spans): bounds as literals, so the scan skips the rest of the store.
    lo, hi = store.execute(
        "SELECT least(min(e.ts), (SELECT min(first_ts) FROM alerts) - $lead), "
        "greatest(max(e.ts), (SELECT max(last_ts) FROM alerts)) FROM inc_e e",
        {"lead": cfg.lead},
    ).rows[0]
    days = "false"
    if lo is not None and hi is not None:
        days = f"ts < {ts_lit(dt.datetime.combine(hi.date(), dt.time()))}"
        with suppress(OverflowError):  # within 30 days of year 1: no lower bound
            first = dt.datetime.combine(lo.date() - dt.timedelta(days=FAMILIAR_DAYS), dt.time())
            days = f"ts >= {ts_lit(first)} AND {days}"
    # A principal's day repeats the same few networks and apps thousands of times: distinct
    # combinations first, then one row per kind (unnesting every event was 4 rows per event).
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE inc_seen AS
        -- the evidence's principals, and the accounts its failed sign-ins tried (the
        -- attempts' targets: an 18-character id tried is no principal key of its own, but
        -- may be another event's user name)
        WITH mine AS (SELECT DISTINCT pkey FROM (SELECT pkey FROM inc_e UNION ALL
                SELECT {person_sql()} FROM inc_e WHERE outcome = 'failure')
            WHERE pkey IS NOT NULL),
        nets AS (SELECT DISTINCT network FROM inc_e WHERE network IS NOT NULL)
        SELECT DISTINCT * FROM (
            SELECT pkey, unnest(['net', 'app', 'country', 'client']) AS kind,
                unnest([network, client_app, country, ua_class]) AS value, day
            FROM (SELECT DISTINCT {PRINCIPAL_KEY} AS pkey, {NETWORK} AS network, client_app,
                    country, CASE WHEN user_agent IS NOT NULL THEN ua_class END AS ua_class,
                    ts::DATE AS day
                  FROM events WHERE {days} AND outcome IS DISTINCT FROM 'failure'
                    AND ({PRINCIPAL_KEY} IN (SELECT pkey FROM mine)
                         OR {NETWORK} IN (SELECT network FROM nets))))
        WHERE value IS NOT NULL
            AND (kind = 'net' OR pkey IN (SELECT pkey FROM mine))"""
    )
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE inc_ev AS
        WITH strong AS (  -- evidence of findings that open incidents by themselves
            SELECT DISTINCT u.event_id FROM alerts a, unnest(a.event_ids) AS u(event_id)
            WHERE a.level IN {lit_list(LEVELS[LEVELS.index(cfg.open_level) :])}
                OR a.risk >= {int(cfg.risk_threshold)}),
        e AS (SELECT * FROM inc_e),
        -- What decides a side depends on (principal, network, day) and (principal, day,
        -- app, country, client), not on the event: judged once per distinct combination, so
        -- a network every employee shares (an office NAT pool) costs its days, not its
        -- events times its users; each event then joins its combinations (joined back by
        -- event id instead, two joins of millions of ids took most of the build).
        pnd AS (SELECT DISTINCT pkey, network, ts::DATE AS day FROM e),
        nd_users AS (  -- distinct principals on the network in the days before
            SELECT nd.network, nd.day, count(DISTINCT s.pkey) AS n
            FROM (SELECT DISTINCT network, day FROM pnd) nd JOIN inc_seen s ON s.kind = 'net'
                AND s.value = nd.network
                AND s.day BETWEEN nd.day - {FAMILIAR_DAYS} AND nd.day - 1
            GROUP BY ALL),
        pnd_familiar AS (
            SELECT DISTINCT k.pkey, k.network, k.day FROM pnd k JOIN inc_seen s
                ON s.kind = 'net' AND s.pkey = k.pkey AND s.value = k.network
                AND s.day BETWEEN k.day - {FAMILIAR_DAYS} AND k.day - 1),
        uses AS (SELECT DISTINCT pkey, ts::DATE AS day, client_app, country, ua_class FROM e),
        uses_kinds AS (  -- what else its principal used on an earlier day
            SELECT k.pkey, k.day, k.client_app, k.country, k.ua_class,
                list(DISTINCT s.kind) AS kinds
            FROM uses k JOIN inc_seen s
                ON s.pkey = k.pkey AND s.day BETWEEN k.day - {FAMILIAR_DAYS} AND k.day - 1
                AND ((s.kind = 'app' AND s.value = k.client_app)
                     OR (s.kind = 'country' AND s.value = k.country)
                     OR (s.kind = 'client' AND s.value = k.ua_class))
            GROUP BY ALL),
        judged AS (
            SELECT e.*, f.pkey IS NOT NULL AS familiar,
                coalesce(w.n, 0) - (f.pkey IS NOT NULL)::INTEGER AS org_users,
                coalesce(u.kinds, []) AS kinds
            FROM e LEFT JOIN pnd_familiar f ON f.pkey = e.pkey
                AND f.network IS NOT DISTINCT FROM e.network AND f.day = e.ts::DATE
            LEFT JOIN nd_users w ON w.network = e.network AND w.day = e.ts::DATE
            LEFT JOIN uses_kinds u ON u.pkey = e.pkey AND u.day = e.ts::DATE
                AND u.client_app IS NOT DISTINCT FROM e.client_app
                AND u.country IS NOT DISTINCT FROM e.country
                AND u.ua_class IS NOT DISTINCT FROM e.ua_class),
        sided AS (
        SELECT * EXCLUDE (familiar, kinds),
            client_app IS NOT NULL AND NOT list_contains(kinds, 'app') AS new_app,
            CASE
                WHEN ip_class IN ('corporate', 'private') AND src_ip IS NOT NULL THEN 'own'
                -- a strong finding on a network new to its principal makes its session the
                -- attacker's, however ordinary the network (a residential proxy in the
                -- victim's own country)
                WHEN event_id IN (SELECT event_id FROM strong) AND src_ip IS NOT NULL
                    AND NOT familiar THEN 'attacker'
                WHEN client_app IS NOT NULL AND NOT list_contains(kinds, 'app') THEN 'attacker'
                WHEN src_ip IS NULL THEN 'none'
                WHEN ip_class IN ('tor', 'vpn') THEN 'attacker'
                WHEN ip_class = 'hosting' AND kind = 'person' THEN 'attacker'
                WHEN familiar THEN 'own'
                -- a new ISP in the person's own country, on the kind of client they use:
                -- the first day at home or on a carrier, not somebody else
                WHEN ip_class = 'unknown' AND kind = 'person'
                    AND list_contains(kinds, 'country')
                    AND (ua_class IS NULL OR list_contains(kinds, 'client')) THEN 'own'
                ELSE 'attacker' END AS side
        FROM judged),
        -- a session with an attacker-side event is the attacker's, every event of it (a
        -- join with the attacker's sessions: a window over every session event sorted them)
        taken AS (SELECT DISTINCT login_key, pkey FROM sided
                  WHERE side = 'attacker' AND login_key IS NOT NULL)
        SELECT s.* EXCLUDE (evidence) REPLACE (
            CASE WHEN t.login_key IS NOT NULL THEN 'attacker' ELSE s.side END AS side)
        FROM sided s LEFT JOIN taken t ON t.login_key = s.login_key
            AND t.pkey IS NOT DISTINCT FROM s.pkey
        WHERE s.evidence"""
    )


def _findings(store: Store, cfg: IncidentConfig) -> None:
    """Each finding's keys and side in ``inc_findings``, aggregated from ``inc_ev`` (its
    evidence events, already read with their sides) per alert id alone: grouped by every
    column of the alert, each distinct list was a hash table of its own (94,000 findings took
    5 s), and read into Python, a list per key per finding took seconds more."""
    _side_tables(store, cfg)
    default_risk = "CASE a.level " + " ".join(
        f"WHEN {lit(lv)} THEN {num(r)}" for lv, r in LEVEL_RISK.items()
    ) + " ELSE 25 END"  # fmt: skip

    def distinct(value: str, where: str) -> str:
        return f"coalesce(list_distinct(list({value}) FILTER ({where})), [])"

    store.execute(FINDINGS)
    store.execute(
        f"""INSERT INTO inc_findings
        WITH ev AS (
            SELECT a.alert_id, u.event_id FROM alerts a, unnest(a.event_ids) AS u(event_id)),
        rare_apps AS (
            SELECT client_app FROM events_base
            WHERE client_app IN (SELECT client_app FROM inc_ev) GROUP BY client_app
            HAVING count(DISTINCT {principal_sql()}) <= {APP_LINK_MAX_USERS}),
        k AS (
            SELECT ev.alert_id,
                {distinct("lower(e.user_name)", f"e.user_name IS NOT NULL AND {ACTED}")}
                    AS people,
                {distinct(USER_KEY.format(c="e.user_id"), f"e.user_id IS NOT NULL AND {ACTED}")}
                    AS user_ids,
                {distinct(person_sql("e."), "e.outcome = 'failure'")} AS targets,
                {distinct("e.login_key", "e.login_key IS NOT NULL")} AS login_keys,
                {distinct("e.login_key", "e.login_key IS NOT NULL AND e.side = 'attacker'")}
                    AS attacker_sessions,
                {distinct("e.src_ip", "e.src_ip IS NOT NULL AND e.side = 'attacker'")} AS ips,
                {distinct("e.src_ip", "e.src_ip IS NOT NULL")} AS all_ips,
                {distinct("e.client_app", "e.client_app IS NOT NULL")} AS apps,
                {distinct("e.client_app", "r.client_app IS NOT NULL")} AS link_apps,
                {distinct("e.client_app", "e.new_app")} AS new_apps,
                CASE WHEN bool_or(e.side = 'attacker') THEN 'attacker'
                     WHEN bool_or(e.side = 'own') THEN 'own' ELSE 'neutral' END AS side,
                min(e.ts) FILTER (e.side = 'attacker') AS attack_from,
                coalesce(bool_and(e.side = 'attacker' AND e.org_users >= {ORG_NETWORK_USERS}
                    AND e.ip_class NOT IN ('tor', 'vpn', 'hosting'))
                    FILTER (e.src_ip IS NOT NULL), false) AS org_network
            FROM ev JOIN inc_ev e USING (event_id)
            LEFT JOIN rare_apps r ON r.client_app = e.client_app
            GROUP BY ev.alert_id)
        SELECT a.alert_id, a.level, a.title, coalesce(a.tags, []) AS tags, a.first_ts,
            a.last_ts, coalesce(a.fired_at, a.first_ts) AS fired_at, a.detected_at,
            k.* EXCLUDE (alert_id, side, attack_from, org_network), a.rule_id,
            coalesce(a.risk, {default_risk}) AS risk, k.side, k.attack_from, k.org_network
        FROM alerts a JOIN k USING (alert_id)"""
    )


def _group(store: Store, cfg: IncidentConfig) -> None:
    """The findings (``inc_findings``) in groups: ``inc_grouped`` (ax, grp), ``ax`` a
    finding's place in time order (``inc_order``).

    Findings are linked in time order (single linkage over shared keys, a link holding across
    at most ``gap``, a person's own-side findings joining an attacker-side one only when they
    end at most ``lead`` before it), then the victim's own findings that end more than
    ``lead`` before the attacker side begins are split off and linked again among themselves:
    they open an incident of their own only if they qualify by themselves."""
    store.execute(
        """CREATE OR REPLACE TEMP TABLE inc_order AS
        SELECT (row_number() OVER (ORDER BY first_ts, alert_id) - 1)::INTEGER AS ax, *
        FROM inc_findings"""
    )
    n = store.scalar("SELECT count(*) FROM inc_order")
    store.execute("CREATE OR REPLACE TEMP TABLE inc_linked (ax INTEGER, grp INTEGER)")
    store.insert("inc_linked", _components(n, _links(store, cfg, split=False)))
    store.execute(
        """CREATE OR REPLACE TEMP TABLE inc_split AS
        SELECT ax, grp, coalesce(side <> 'attacker' AND last_ts < attack - $lead, false) AS split
        FROM (
            SELECT o.ax, coalesce(l.grp, o.ax) AS grp, o.side, o.last_ts,
                min(o.attack_from) OVER (PARTITION BY coalesce(l.grp, o.ax)) AS attack
            FROM inc_order o LEFT JOIN inc_linked l USING (ax))""",
        {"lead": cfg.lead},
    )
    store.execute("DELETE FROM inc_linked")
    store.insert("inc_linked", _components(n, _links(store, cfg, split=True)))
    # a split-off finding's group is named by its own links, the rest keep theirs
    store.execute(
        """CREATE OR REPLACE TEMP TABLE inc_grouped AS
        SELECT s.ax, CASE WHEN s.split THEN 2 * coalesce(l.grp, s.ax) + 1 ELSE 2 * s.grp END
            AS grp
        FROM inc_split s LEFT JOIN inc_linked l USING (ax)"""
    )


def _links(store: Store, cfg: IncidentConfig, split: bool) -> list[tuple[int, int]]:
    """The links (finding, earlier finding) between all findings, or with ``split`` between
    the findings split off each group (inc_split), within that group.

    Per key in time order (gaps and islands): a finding links to the latest earlier one with
    the key when it begins at most ``gap`` after every earlier one with it ended. A person's
    own-side findings link among themselves (an insider, an administrator's job) and the
    attacker side among itself; an attacker-side finding links to the person's latest
    own-side one only when that side's findings ended at most ``lead`` before it (the victim
    approving the app the caller asked for), so the victim's day never bridges into, or
    between, attacks."""
    lists = (("person", "people"), ("user", "user_ids"), ("target", "targets"),
             ("session", "login_keys"), ("ip", "ips"), ("app", "link_apps"))  # fmt: skip
    keys = " UNION ALL ".join(
        f"SELECT part, ax, first_ts, last_ts, {own} AS own, {lit(kind)} AS kind, "
        f"unnest({column}) AS value FROM f"
        for kind, column in lists
        for own in ["side = 'own'" if kind in ("person", "user") else "false"]
    )
    among = (
        "SELECT s.grp AS part, o.* FROM inc_order o JOIN inc_split s USING (ax) WHERE s.split"
        if split
        else "SELECT 0 AS part, * FROM inc_order"
    )
    return store.execute(
        f"""WITH f AS ({among}),
        k AS ({keys}),
        same AS (
            SELECT ax, lag(ax) OVER (PARTITION BY part, kind, own, value ORDER BY ax) AS prev,
                first_ts - max(last_ts) OVER (PARTITION BY part, kind, own, value ORDER BY ax
                    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) <= $gap AS near
            FROM k),
        across AS (
            SELECT ax, own, first_ts,
                max(CASE WHEN own THEN ax END) OVER before AS prev,
                max(CASE WHEN own THEN last_ts END) OVER before AS own_end
            FROM k WHERE kind IN ('person', 'user')
            WINDOW before AS (PARTITION BY part, kind, value ORDER BY ax
                ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
        SELECT ax, prev FROM same WHERE near
        UNION ALL
        SELECT ax, prev FROM across WHERE NOT own AND first_ts - own_end <= $lead""",
        {"gap": cfg.gap, "lead": cfg.lead},
    ).rows


def _components(n: int, links: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(finding, its group's earliest finding) for each of the ``n`` findings in a group with
    others. Union-find over the links: connected components have no set-based form short of
    repeating a join as many times as the longest chain of links, so this one step walks
    (integer) links in Python."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in links:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [(i, r) for i in range(n) if (r := root(i)) != i]


def _open(store: Store, cfg: IncidentConfig) -> dict[str, tuple[int, dict[str, Any]]]:
    """The groups that are incidents: {incident id: (group, what opened it)}, also kept as
    ``inc_open`` (grp, iid).

    A group with a finding at or above ``open_level`` is opened by its earliest such finding;
    only the groups whose rules' best scores could add up to the threshold are read for the
    risk window (a noisy org's thousands of small groups of low findings never leave the
    database)."""
    floor = LEVELS.index(cfg.open_level)
    rows = store.execute(
        f"""WITH f AS (
            SELECT o.*, g.grp, {_rank_sql("o.level")} AS rank,
                CASE WHEN o.org_network THEN o.risk // 2 ELSE o.risk END AS score
            FROM inc_order o JOIN inc_grouped g USING (ax)),
        groups AS (
            SELECT grp, arg_min(alert_id, ax) AS first_id,
                arg_min(alert_id, (fired_at, alert_id)) FILTER (rank >= {floor}) AS opener
            FROM f GROUP BY grp),
        bounds AS (
            SELECT grp, sum(greatest(best, 0)) AS bound FROM (
                SELECT grp, rule_id, max(score) AS best FROM f GROUP BY grp, rule_id)
            GROUP BY grp)
        SELECT f.grp, g.first_id, f.alert_id, f.level, f.title, f.fired_at, f.rule_id, f.risk,
            f.org_network
        FROM f JOIN groups g USING (grp) JOIN bounds b USING (grp)
        WHERE f.alert_id = g.opener OR (g.opener IS NULL AND b.bound >= $threshold)
        ORDER BY f.grp, f.fired_at, f.alert_id""",
        {"threshold": cfg.risk_threshold},
    ).rows
    opened: dict[str, tuple[int, dict[str, Any]]] = {}
    for (grp, first_id), members in groupby(rows, key=lambda r: (r[0], r[1])):
        why = opened_by([_Finding(*r[2:]) for r in members], cfg)
        if why is not None:
            opened[_incident_id(first_id)] = (grp, why)
    store.execute("CREATE OR REPLACE TEMP TABLE inc_open (grp INTEGER, iid VARCHAR)")
    store.insert("inc_open", [(grp, iid) for iid, (grp, _) in opened.items()])
    return opened


def opened_by(group: list[_Finding], cfg: IncidentConfig) -> dict[str, Any] | None:
    """Why a group of findings is an incident, or None when it is not one."""
    floor = LEVELS.index(cfg.open_level)
    strong = [a for a in group if _rank(a.level) >= floor]
    if strong:
        first = min(strong, key=lambda a: (a.fired_at, a.alert_id))
        return {"by": "finding", "title": first.title, "level": first.level,
                "at": iso_z(first.fired_at), "alert_id": first.alert_id}  # fmt: skip
    ordered = sorted(group, key=lambda a: (a.fired_at, a.alert_id))
    # A sliding window over the findings in time order; each rule counts once, by its
    # highest-scoring finding in the window (the earliest of equals): a deque per rule whose
    # front is that finding keeps the sum current in time linear in the group, however many
    # findings a noisy rule raised.
    fronts: dict[str, deque[int]] = {}
    score = lo = 0
    for i, end in enumerate(ordered):
        while end.fired_at - ordered[lo].fired_at > cfg.risk_window:
            q = fronts[ordered[lo].rule_id]
            if q and q[0] == lo:
                score -= ordered[q.popleft()].score
                score += ordered[q[0]].score if q else 0
            lo += 1
        q = fronts.setdefault(end.rule_id, deque())
        score -= ordered[q[0]].score if q else 0
        while q and ordered[q[-1]].score < end.score:
            q.pop()
        q.append(i)
        score += ordered[q[0]].score
        if score >= cfg.risk_threshold:
            best = {rule: ordered[q[0]] for rule, q in fronts.items() if q}
            return {
                "by": "risk",
                "score": score,
                "threshold": cfg.risk_threshold,
                "window_start": iso_z(min(a.fired_at for a in best.values())),
                "window_end": iso_z(end.fired_at),
                "findings": [_contribution(a) for a in
                             sorted(best.values(), key=lambda a: (a.fired_at, a.alert_id))],
            }  # fmt: skip
    return None


def _contribution(a: _Finding) -> dict[str, Any]:
    why = "on a network the organisation already uses (half risk)" if a.org_network else (
        f"{a.level} finding")  # fmt: skip
    return {"title": a.title, "level": a.level, "risk": a.score, "why": why,
            "alert_id": a.alert_id}  # fmt: skip


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else LEVELS.index("medium")


def _rank_sql(level: str) -> str:
    """SQL: ``_rank`` of the level column ``level``."""
    cases = " ".join(f"WHEN {lit(lv)} THEN {num(i)}" for i, lv in enumerate(LEVELS))
    return f"CASE {level} {cases} ELSE {num(_rank('medium'))} END"


def _severity(level: int, tags: list[str], intrusion: bool) -> str:
    """The incident's level from its findings' highest ``level`` (a rank), the ``tags`` of
    its findings of medium level or more and whether it has an attacker side."""
    # entry and theft, each shown by a finding of medium level or more, with an attacker side:
    # an administrator's first backup from the office is not an intrusion
    tactics = {t.removeprefix("attack.") for t in tags}
    high = LEVELS.index("high")
    if intrusion and tactics & ENTRY_TACTICS and tactics & THEFT_TACTICS:
        # Entry plus theft: at least high, and one step up from high.
        level = high if level < high else len(LEVELS) - 1
    return LEVELS[level]


def _incident_id(first_alert_id: str) -> str:
    """An incident's id: a hash of its earliest finding's, so it stays as later ones join."""
    return "INC-" + hashlib.sha256(first_alert_id.encode()).hexdigest()[:10].upper()


def _key_tables(store: Store) -> None:
    """Each incident's findings (``inc_member``) and keys as small temporary tables, so that
    collecting the events of every incident is a handful of joins, not a scan of the store
    per incident."""
    store.execute(
        """CREATE OR REPLACE TEMP TABLE inc_member AS
        SELECT p.iid, o.* FROM inc_order o JOIN inc_grouped g USING (ax)
        JOIN inc_open p USING (grp)"""
    )
    tables = {
        "inc_alerts": "alert_id FROM inc_member",
        "inc_mixed": "alert_id FROM inc_member WHERE side = 'attacker'",
        "inc_people": "unnest(people) AS person FROM inc_member",
        "inc_uids": "unnest(user_ids) AS uid FROM inc_member",
        "inc_sessions": "unnest(attacker_sessions) AS login_key FROM inc_member",
        "inc_ips": "unnest(ips) AS ip FROM inc_member",
        "inc_apps": "unnest(new_apps) AS app FROM inc_member",
        "inc_targets": "unnest(targets) AS target FROM inc_member",
    }
    for name, select in tables.items():
        store.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT DISTINCT iid, {select}")
    store.execute(
        """CREATE OR REPLACE TEMP TABLE inc_span AS
        SELECT iid, min(first_ts) AS lo, max(last_ts) AS hi, min(fired_at) AS start,
            min(attack_from) AS attack
        FROM inc_member GROUP BY iid"""
    )


# Why an event belongs to an incident, as joins and tests on the event ``e`` and the
# incident's span ``sp``. Each joined table holds a set per incident, so a join adds no row:
# its incident's people by name (``p``) or user id (``u``), its sessions (``ss``), the
# attacker's addresses (``ip``). (As EXISTS subqueries DuckDB joined every event back to the
# distinct values it tested, a second join of millions of rows each.)
PEOPLE = (
    " LEFT JOIN inc_people p ON p.iid = sp.iid AND p.person = lower(e.user_name)"
    f" LEFT JOIN inc_uids u ON u.iid = sp.iid AND u.uid = {USER_KEY.format(c='e.user_id')}"
)
BY_THEM = "(p.iid IS NOT NULL OR u.iid IS NOT NULL)"
SESSION = " LEFT JOIN inc_sess ss ON ss.iid = sp.iid AND ss.login_key = e.login_key"
IN_SESSION = "ss.iid IS NOT NULL"
NEAR = "e.ts BETWEEN sp.lo - $gap AND sp.hi + $gap"
ATTACKER_IP = " LEFT JOIN inc_ips ip ON ip.iid = sp.iid AND ip.ip = e.src_ip"
BY_ATTACKER_IP = f"(ip.iid IS NOT NULL AND {NEAR} AND {BY_THEM})"
# What the incident's facts read of each event. The first event's country is the store
# view's (its address's country, else the record's): an event read from events_base carries
# the two (resolved = false), one read from the view its country.
PAYLOAD = ("ts", "object", "category", "rows", "source_type", "src_ip", "client_app")
BASE_PAYLOAD = ", ".join(f"e.{c}" for c in PAYLOAD) + ", e.src_country, NULL AS country, false"
VIEW_PAYLOAD = ", ".join(f"e.{c}" for c in PAYLOAD) + ", NULL, e.country, true"
# the first malicious event's fields besides its id, time and country, in the order shown
FIRST_FIELDS = ("source_type", "category", "src_ip", "client_app")


def _collect_events(store: Store, cfg: IncidentConfig) -> None:
    """Every incident's events with their role (see the module docstring for what belongs),
    in ``inc_collected`` with what the facts read, and in incident_events.

    An event there for several reasons keeps the first of evidence, session, attacker ip,
    origin, attempt, later export. Each reason adds only events no earlier one holds (a test
    on a few keys), so the reasons' rows are disjoint and only the evidence, joined last, can
    meet them again: grouping every reason's rows by (incident, event id) instead spilled
    25 million rows of the 10M-event benchmark to disk to keep 9.3 million."""
    params = {"gap": cfg.gap, "lookback": cfg.origin_lookback, "lead": cfg.lead}
    # the incident's sessions: the attacker's, and those in which its people used an app new
    # to them (the look-alike Data Loader's API calls)
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE inc_sess AS
        SELECT iid, login_key FROM inc_sessions
        UNION
        SELECT sp.iid, e.login_key FROM events_base e JOIN inc_apps k ON k.app = e.client_app
        JOIN inc_span sp ON sp.iid = k.iid {PEOPLE}
        WHERE e.login_key IS NOT NULL AND {NEAR} AND {BY_THEM}""",
        {"gap": cfg.gap},
    )
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE inc_collected AS
        WITH evidence AS (
            SELECT v.*, {", ".join(f"i.{c}" for c in PAYLOAD)}, i.country, i.side,
                i.event_id IS NOT NULL AS found
            FROM (SELECT DISTINCT k.iid, u.event_id
                FROM inc_alerts k JOIN alerts a USING (alert_id), unnest(a.event_ids) AS u(event_id)
                -- an attacker-side finding's own-side evidence (the victim's sign-in that
                -- makes the attacker's impossible travel) is the victim's, not the attack's
                -- (two independent tests: as one correlated subquery DuckDB planned the cross
                -- product of inc_mixed and inc_ev, billions of rows for a large incident)
                WHERE NOT ((k.iid, k.alert_id) IN (SELECT (iid, alert_id) FROM inc_mixed)
                    AND u.event_id IN (SELECT event_id FROM inc_ev WHERE side = 'own'))) v
            LEFT JOIN inc_ev i USING (event_id)),
        reasons AS (
            SELECT s.iid, e.event_id, 'session' AS role, {BASE_PAYLOAD} AS resolved
            FROM events_base e
            JOIN inc_sess s ON s.login_key = e.login_key
            UNION ALL
            SELECT sp.iid, e.event_id, 'attacker ip', {BASE_PAYLOAD} FROM events_base e
            JOIN inc_ips k ON k.ip = e.src_ip JOIN inc_span sp ON sp.iid = k.iid
            {PEOPLE} {SESSION}
            WHERE {NEAR} AND {BY_THEM} AND NOT {IN_SESSION}
            UNION ALL
            SELECT sp.iid, e.event_id, 'origin', {BASE_PAYLOAD} FROM events_base e
            JOIN inc_apps k ON k.app = e.client_app JOIN inc_span sp ON sp.iid = k.iid
            {PEOPLE} {SESSION} {ATTACKER_IP}
            WHERE e.category = {lit(Category.OAUTH_GRANT)}
              AND e.ts BETWEEN sp.lo - $lookback AND sp.hi AND {BY_THEM}
              AND NOT {IN_SESSION} AND NOT {BY_ATTACKER_IP}
            UNION ALL
            -- the same campaign's other tries at its targets, from addresses new to them
            -- (a spray's quieter addresses never reach a rule's count on their own); failed
            -- sign-ins are no grant, so never an origin
            SELECT sp.iid, e.event_id, 'attempt', {VIEW_PAYLOAD} FROM (
                SELECT event_id, {", ".join(PAYLOAD)}, country, ip_class, login_key,
                    user_name, user_id, {person_sql()} AS who, {NETWORK} AS network
                FROM events WHERE outcome = 'failure'
                    AND category = {lit(Category.AUTHENTICATION)}) e
            JOIN inc_targets t ON t.target = e.who
            JOIN inc_span sp ON sp.iid = t.iid {PEOPLE} {SESSION} {ATTACKER_IP}
            WHERE e.ts BETWEEN sp.lo - $lead AND sp.hi
              AND e.ip_class NOT IN ('corporate', 'private')
              AND NOT EXISTS (SELECT 1 FROM inc_seen s WHERE s.pkey = t.target
                  AND s.kind = 'net' AND s.value = e.network
                  AND s.day BETWEEN e.ts::DATE - {FAMILIAR_DAYS} AND e.ts::DATE - 1)
              AND NOT {IN_SESSION} AND NOT {BY_ATTACKER_IP}
            UNION ALL
            -- exports are no grant and no sign-in; an insider's incident has no attacker
            -- side, so no attacker address: only an app's session can hold them already
            SELECT sp.iid, e.event_id, 'later export', {BASE_PAYLOAD}
            FROM ({_later_exports()}) e JOIN inc_span sp USING (iid) {SESSION}
            WHERE NOT {IN_SESSION})
        SELECT coalesce(v.iid, r.iid) AS iid, coalesce(v.event_id, r.event_id) AS event_id,
            CASE WHEN v.iid IS NOT NULL THEN 'evidence' ELSE r.role END AS role,
            {", ".join(f"coalesce(r.{c}, v.{c}) AS {c}" for c in PAYLOAD)},
            CASE WHEN r.iid IS NULL THEN v.country ELSE r.country END AS country,
            r.src_country, coalesce(r.resolved, true) AS resolved,
            r.iid IS NOT NULL OR v.found AS found
        FROM reasons r FULL JOIN evidence v ON v.iid = r.iid AND v.event_id = r.event_id
        LEFT JOIN inc_span sp ON sp.iid = v.iid
        -- Evidence from the victim's own side before the chain (the earlier sign-in of an
        -- impossible-travel pair, the morning at the office) is not the attack's.
        WHERE NOT coalesce(v.iid IS NOT NULL AND sp.attack IS NOT NULL
            AND v.side <> 'attacker' AND v.ts < sp.attack - $lead, false)""",
        params,
    )
    store.execute("INSERT INTO incident_events SELECT iid, event_id, role FROM inc_collected")


def _within(lo: dt.datetime | None, hi: dt.datetime | None, untimed: bool) -> str:
    """SQL: ``ts`` in [lo, hi] (None: no event with a time), or NULL when ``untimed``. Events
    looked for by id are found within their own times: bounds written as literals let the
    scan skip the store's other row groups, where the id alone reads every id."""
    spans = ([f"ts BETWEEN {ts_lit(lo)} AND {ts_lit(hi)}"] if lo is not None else []) + (
        ["ts IS NULL"] if untimed else []  # a store written by hand may have such events
    )
    return f"({' OR '.join(spans)})" if spans else "false"


def _later_exports() -> str:
    """SQL: the later exports of an insider's incident (one with no attacker side) that
    follow its findings within EXPORT_FOLLOW of one another (role ``later export``): the
    second, third … day of a person's exports. An outside attacker's exports come through
    its sessions and addresses; the victim's own weekly exports are not the attack's.

    Gaps and islands: an export joins when it comes within EXPORT_FOLLOW of the incident's
    last finding or of the export before it; the chain ends at the first longer gap. Only
    (incident, time) is sorted to find it; the exports themselves are then cut at it. Its
    people's exports are found by name, then by user id when the name is not theirs (two
    joins, each row once), never by testing every export against every insider incident."""
    cats = lit_list(EXPORTS)
    follow = num(EXPORT_FOLLOW.total_seconds())
    not_named = "LEFT JOIN inc_people p ON p.iid = sp.iid AND p.person = lower(e.user_name)"
    exports = " UNION ALL ".join(
        f"""SELECT sp.iid, sp.hi, e.event_id, {", ".join(f"e.{c}" for c in PAYLOAD)},
            e.src_country, e.login_key
        FROM events_base e {who} JOIN inc_span sp ON sp.iid = k.iid {join}
        WHERE e.category IN {cats} AND sp.attack IS NULL AND e.ts >= sp.start{test}"""
        for who, join, test in (
            ("JOIN inc_people k ON k.person = lower(e.user_name)", "", ""),
            (f"JOIN inc_uids k ON k.uid = {USER_KEY.format(c='e.user_id')}", not_named,
             " AND p.iid IS NULL"),
        )
    )  # fmt: skip
    return f"""WITH exports AS ({exports}),
        cuts AS (
            SELECT iid, min(ts) FILTER (gap) AS cut FROM (
                SELECT iid, ts, ts - greatest(hi, coalesce(CASE WHEN lag(iid) OVER w = iid
                    THEN lag(ts) OVER w END, hi)) > to_seconds({follow}) AS gap
                -- the three columns alone: over the exports as they are, the window sorted
                -- every column of them (two million exports: 1.5 s instead of 0.2 s); one
                -- sort of them all, the incident its first key (partitioned by incident, an
                -- incident's exports were sorted by one thread)
                FROM (SELECT iid, ts, hi FROM exports)
                WINDOW w AS (ORDER BY iid, ts))
            GROUP BY iid)
        SELECT x.* EXCLUDE (hi) FROM exports x JOIN cuts c USING (iid)
        WHERE c.cut IS NULL OR x.ts < c.cut"""


def _all_facts(store: Store) -> dict[str, dict[str, Any]]:
    """Per incident: the first malicious event, the last event, the event count and the
    objects touched, from what collecting the events kept (inc_collected): no second join of
    the incidents' events with the store.

    Each field of the first event is the earliest one the incident's events have (a field the
    first event lacks comes from the next event that has it), as DuckDB's arg_min, which
    skips NULLs, gave it. The country, the one field the store's view derives, is read
    through the view for the earliest event of each address and record country."""
    firsts: dict[str, dict[str, Any]] = {}
    out: dict[str, dict[str, Any]] = {}
    order = "(ts, event_id)"
    for r in store.execute(
        f"""SELECT iid, arg_min(event_id, {order}) AS event_id, min(ts) AS ts,
            {", ".join(f"arg_min({c}, {order}) AS {c}" for c in FIRST_FIELDS)},
            max(ts) AS last, count(*) AS n
        FROM inc_collected WHERE found GROUP BY iid"""
    ).dicts():
        iid, last, n = r.pop("iid"), r.pop("last"), r.pop("n")
        r["ts"] = iso_z(r["ts"])
        firsts[iid] = r
        out[iid] = {"first": r, "last": last, "events": n, "objects": []}
    countries = _first_countries(store)
    for iid, r in firsts.items():
        client_app = r.pop("client_app")
        r["country"], r["client_app"] = countries.get(iid), client_app
    for r in store.execute(
        f"""SELECT iid, object, count(*) AS events, sum(rows) AS rows FROM inc_collected
        WHERE found AND object IS NOT NULL AND category IN {lit_list(DATA_ACCESS)}
        GROUP BY ALL ORDER BY iid, rows DESC NULLS LAST, object"""
    ).dicts():
        out[r.pop("iid")]["objects"].append(r)
    return out


def _first_countries(store: Store) -> dict[str, str]:
    """Per incident, the country of its earliest event that has one: the events of each
    address and record country share theirs, so only the earliest of each is read."""
    reps = store.execute(
        """SELECT iid, arg_min(event_id, (ts, event_id)) AS event_id, min(ts) AS ts,
            any_value(country) AS country, bool_and(resolved) AS resolved
        FROM inc_collected WHERE found GROUP BY iid, resolved, src_ip, src_country, country"""
    ).rows
    unresolved = [(ts, ev) for _, ev, ts, _, resolved in reps if not resolved]
    looked_up: dict[str, str] = {}
    if unresolved:
        timed = [t for t, _ in unresolved if t is not None]
        near = _within(min(timed, default=None), max(timed, default=None),
                       len(timed) < len(unresolved))  # fmt: skip
        looked_up = dict(
            store.execute(
                f"SELECT event_id, country FROM events WHERE {near} "
                "AND event_id IN (SELECT unnest(?::VARCHAR[]))",
                [[ev for _, ev in unresolved]],
            ).rows
        )
    best: dict[str, tuple[Any, str, str]] = {}
    for iid, ev, ts, country, resolved in reps:
        country = country if resolved else looked_up.get(ev)
        if country is not None and (iid not in best or (ts, ev) < best[iid][:2]):
            best[iid] = (ts, ev, country)
    return {iid: country for iid, (_, _, country) in best.items()}


def build_incidents(store: Store, cfg: IncidentConfig | None = None) -> list[Incident]:
    """Rebuild every incident from the stored alerts; return them, most severe first."""
    cfg = cfg or IncidentConfig()
    if cfg.open_level not in LEVELS:
        raise UsageError(f"unknown level {cfg.open_level!r}; one of {', '.join(LEVELS)}")
    _findings(store, cfg)
    _group(store, cfg)
    opened = _open(store, cfg)
    with store.transaction():
        for table in ("incidents", "incident_alerts", "incident_events"):
            store.execute(f"DELETE FROM {table}")
        _key_tables(store)
        _collect_events(store, cfg)
        facts = _all_facts(store)
        incidents = [
            _make(iid, summary, opened[iid][1], facts[iid]) for iid, summary in _summaries(store)
        ]
        store.execute("INSERT INTO incident_alerts SELECT iid, alert_id FROM inc_member")
        store.insert(
            "incidents",
            [(i.id, i.severity, _naive(i.first_malicious_at), _naive(i.first_alert_at),
              _naive(i.last_event_at), json.dumps(i.to_dict())) for i in incidents],
        )  # fmt: skip
    return sorted(incidents, key=_order)


def _summaries(store: Store) -> list[tuple[str, dict[str, Any]]]:
    """Per incident, what its findings say together (sorted lists as the incident shows them,
    its findings in time order)."""

    def union(column: str) -> str:
        return f"list_sort(list_distinct(flatten(list({column}))))"

    return [
        (r.pop("iid"), r)
        for r in store.execute(
            f"""SELECT iid, {union("people")} AS principals, {union("user_ids")} AS user_ids,
                {union("all_ips")} AS source_ips, {union("apps")} AS apps,
                {union("login_keys")} AS login_keys, list_sort(list_distinct(list(title)))
                AS rules, list(alert_id ORDER BY ax) AS alert_ids,
                list_distinct(flatten(list(tags))) AS tags,
                coalesce(list_distinct(flatten(list(tags) FILTER ({_rank_sql("level")} >= 2))),
                    []) AS strong_tags,
                max({_rank_sql("level")}) AS rank, bool_or(side = 'attacker') AS intrusion,
                min(fired_at) AS first_alert, min(detected_at) AS detected, max(last_ts) AS last
            FROM inc_member GROUP BY iid"""
        ).dicts()
    ]


def _naive(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso.removesuffix("Z"))


def _make(iid: str, s: dict[str, Any], why: dict[str, Any], facts: dict[str, Any]) -> Incident:
    tactics = sorted(
        t.removeprefix("attack.")
        for t in s["tags"]
        if t.startswith("attack.") and not _technique(t)
    )
    techniques = sorted(t.removeprefix("attack.").upper() for t in s["tags"] if _technique(t))
    first_malicious = _naive(facts["first"]["ts"])
    return Incident(
        id=iid,
        severity=_severity(s["rank"], s["strong_tags"], s["intrusion"]),
        principals=s["principals"],
        user_ids=s["user_ids"],
        source_ips=s["source_ips"],
        apps=s["apps"],
        login_keys=s["login_keys"],
        tactics=tactics,
        techniques=techniques,
        rules=s["rules"],
        alert_ids=s["alert_ids"],
        first_malicious_at=facts["first"]["ts"],
        first_malicious_event=facts["first"],
        first_alert_at=iso_z(s["first_alert"]) or "",
        detected_at=iso_z(s["detected"]),
        time_to_detect_seconds=(s["first_alert"] - first_malicious).total_seconds(),
        last_event_at=iso_z(max(facts["last"], s["last"])) or "",
        events=facts["events"],
        objects=facts["objects"],
        opened_by=why,
    )


def _technique(tag: str) -> bool:
    name = tag.removeprefix("attack.")
    return len(name) > 1 and name[0] in "tT" and name[1].isdigit()


def _order(i: Incident) -> tuple:
    return (-LEVELS.index(i.severity), i.first_malicious_at, i.id)


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
    # Gaps and islands: a row whose key differs from the row before starts an island; only
    # the first ``limit`` islands leave the database, whatever the incident's size. The
    # islands are found on the key columns alone and counted only up to the limit; an island
    # reads as its first event, looked up once (every column of every event, aggregated per
    # island, took 11 s for an incident of 1.9M events).
    key = ("role", "source_type", "category", "object", "src_ip")
    changed = " OR ".join(f"{k} IS DISTINCT FROM lag({k}) OVER w" for k in key)
    rows = store.execute(
        f"""WITH ev AS (
            SELECT e.ts, i.role, e.event_id, e.source_type, e.category, e.object, e.src_ip
            FROM incident_events i JOIN events_base e USING (event_id)
            WHERE i.incident_id = $id),
        marked AS (
            SELECT *, CASE WHEN {changed} THEN 1 ELSE 0 END AS starts FROM ev
            WINDOW w AS (ORDER BY ts, event_id)),
        islands AS (
            SELECT island, min(ts) AS ts, max(ts) AS last_ts, count(*) AS n,
                arg_min(event_id, (ts, event_id)) AS event_id,
                arg_min(role, (ts, event_id)) AS role
            FROM (SELECT *, sum(starts) OVER (ORDER BY ts, event_id ROWS UNBOUNDED PRECEDING)
                      AS island FROM marked)
            WHERE island <= $limit GROUP BY island)
        SELECT s.ts, s.last_ts, s.n, s.role, s.event_id, e.category, e.operation, e.object,
            e.src_ip, e.country, e.client_app, e.outcome, {principal_sql("e.")} AS who
        FROM islands s JOIN events e USING (event_id) ORDER BY s.island""",
        {"id": incident.id, "limit": limit},
    ).dicts()
    # only the earliest ``limit`` firings can be among the first ``limit`` entries
    alerts = store.execute(
        """SELECT coalesce(fired_at, first_ts) AS ts, title, level, alert_id FROM alerts
        WHERE alert_id IN (SELECT unnest(?)) ORDER BY ts""",
        [incident.alert_ids],
        first=limit,
    ).dicts()
    entries: list[TimelineEntry] = []
    for r in rows:
        what = " ".join(
            str(x) for x in (r["category"], r["operation"], r["object"]) if x is not None
        )
        where = f"from {r['src_ip']} ({r['country'] or '??'})" if r["src_ip"] else ""
        app = f"via {r['client_app']}" if r["client_app"] else ""
        text = " ".join(x for x in (r["who"] or "?", what, app, where, r["outcome"]) if x)
        entry = TimelineEntry(iso_z(r["ts"]) or "", "event", r["role"], text, r["n"],
                              r["event_id"])  # fmt: skip
        if r["n"] > 1:
            entry.last_ts = iso_z(r["last_ts"]) or ""
        entries.append(entry)
    for a in alerts:
        entries.append(
            TimelineEntry(iso_z(a["ts"]) or "", "alert", a["level"], a["title"], 1, a["alert_id"])
        )
    entries.sort(key=lambda e: (e.ts, e.kind != "event"))
    return entries[:limit]


def stored_incidents(store: Store) -> list[Incident]:
    """The incidents the last build stored, most severe first."""
    rows = store.execute("SELECT body FROM incidents").rows
    return sorted((Incident(**json.loads(body)) for (body,) in rows), key=_order)


EVIDENCE_COLUMNS = ("ts", "role", "source_type", "category", "operation", "object", "who",
                    "src_ip", "country", "client_app", "outcome", "rows", "event_id")  # fmt: skip


def evidence_page(store: Store, incident_id: str, offset: int, limit: int) -> list[dict]:
    """One page of the incident's events in time order (the console pages through a
    million-event incident this way; only the page leaves the database)."""
    return store.execute(
        f"""SELECT e.ts, i.role, e.source_type, e.category, e.operation, e.object,
            {principal_sql("e.")} AS who, e.src_ip, e.country, e.client_app, e.outcome,
            e.rows, e.event_id
        FROM incident_events i JOIN events e USING (event_id)
        WHERE i.incident_id = $id ORDER BY e.ts, e.event_id LIMIT $limit OFFSET $offset""",
        {"id": incident_id, "limit": limit, "offset": offset},
    ).dicts()


def incident_event(store: Store, incident_id: str, event_id: str) -> dict | None:
    """One of the incident's events, whole, with its raw record (None if not the incident's)."""
    row = store.execute(
        "SELECT e.* FROM events e WHERE e.event_id = $ev AND EXISTS (SELECT 1 FROM "
        "incident_events i WHERE i.incident_id = $id AND i.event_id = $ev)",
        {"ev": event_id, "id": incident_id},
    ).dicts()
    return row[0] if row else None


def activity(store: Store, incident: Incident, bins: int = 60) -> list[dict]:
    """The incident's events counted in ``bins`` equal slices of [first malicious event, last
    event], per source (Okta, Salesforce): what the console's timeline plots."""
    start = _naive(incident.first_malicious_at)
    end = max(_naive(incident.last_event_at), start + dt.timedelta(seconds=1))
    width = (end - start).total_seconds() / bins
    return store.execute(
        """SELECT least(CAST(floor(epoch(e.ts - $start) / $width) AS BIGINT), $last) AS bin,
            e.source, count(*) AS events
        FROM incident_events i JOIN events_base e USING (event_id)
        WHERE i.incident_id = $id AND e.ts >= $start
        GROUP BY ALL ORDER BY bin, e.source""",
        {"id": incident.id, "start": start, "width": width, "last": bins - 1},
    ).dicts()
