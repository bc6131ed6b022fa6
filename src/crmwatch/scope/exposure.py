"""Scope one incident: every customer record its data-access events exposed, and which fields.

Each data-access event of the incident is read for the strongest evidence it carries:

- **exact** — record ids in the event itself (``Records`` of ApiEvent, ReportEvent,
  ListViewEvent; the record a page view showed);
- **replayed** — its SOQL replayed on the snapshot (``replay``), when the log's own row count
  agrees with the replay (or the log has none);
- **candidate** — replayed, but the log's row count differs (sharing rules hid records from the
  user, or the snapshot changed since): listed, and flagged as an upper bound;
- **bounded** — only an object, maybe fields, and a row count are known (report exports, ELF
  bulk rows without a query, a query that cannot be replayed): the upper bound is reported and
  no record is listed.

A record reached by several events is one exposure with the union of its fields, its first
exposure time and its strongest confidence. A customer is the record for Contact, Lead and
Account, and the case's contact for Case. Results go to the ``exposures`` table (record ids,
field names, coarse jurisdiction — never contact details) and the ``scopes`` table (summary).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pycountry

from crmwatch import soql
from crmwatch.incidents import DATA_ACCESS, get_incident
from crmwatch.scope.fields import category, expand
from crmwatch.scope.replay import SF_TS, Plan, Unreplayable, plan
from crmwatch.scope.snapshot import COUNTRY_COLUMNS, PERSON_LINK, STATE_COLUMNS, Snapshot
from crmwatch.store import Store

CONFIDENCE = ("exact", "replayed", "candidate")
CUSTOMER_OBJECTS = ("Contact", "Lead", "Account", "Case")


@dataclass
class EventScope:
    """What one data-access event exposed, and how sure that is."""

    event_id: str
    ts: str
    source_type: str
    object: str | None
    kind: str  # exact | replayed | candidate | bounded | count | aggregate | covered | none
    records: int = 0
    rows_logged: int | None = None
    upper_bound: int | None = None
    fields: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class ScopeResult:
    incident_id: str
    affected_customers: int
    affected_by_confidence: dict[str, int]
    bounded_upper_bound: int
    fields: list[str]
    by_country: dict[str, int]
    by_us_state: dict[str, int]
    by_category: dict[str, int]
    categories: list[str]  # every category exposed, by listed or by bounded events
    records_by_object: dict[str, int]
    first_exposure_at: str | None
    last_exposure_at: str | None
    snapshot: dict[str, Any]
    events: list[EventScope]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scope_incident(
    store: Store, incident_id: str, paths: list[Path], object_override: str | None = None
) -> ScopeResult:
    """Compute, store and return the scope of one incident against a snapshot."""
    incident = get_incident(store, incident_id)
    snap = Snapshot(store, paths, object_override)
    store.execute(SF_TS)
    events = store.execute(
        f"""SELECT e.event_id, e.ts, e.source_type, e.category, e.object, e.rows, e.record_ids,
            e.fields, e.query, e.job_id, e.user_id, e.outcome
        FROM incident_events i
        JOIN (SELECT event_id, ts, source_type, category, object, rows, record_ids, fields, query,
                     job_id, user_id, outcome FROM events) e USING (event_id)
        WHERE i.incident_id = ? AND e.category IN ({", ".join(f"'{c}'" for c in DATA_ACCESS)})
          AND e.outcome IS DISTINCT FROM 'failure'
        ORDER BY e.ts, e.event_id""",
        [incident.id],
    ).dicts()
    planned: list[tuple[dict, EventScope, Plan | None]] = []
    for ev in events:
        planned.append(_classify(ev, snap))
    snap.load()
    _hit_tables(store)
    replayed_jobs = set()
    for ev, es, p in planned:
        if p is not None and p.kind == "records":
            _replay(store, ev, es, p)
            if es.kind in ("replayed", "candidate") and ev["job_id"]:
                replayed_jobs.add(ev["job_id"])
        if ev["record_ids"]:
            store.execute(
                "INSERT INTO scope_hits SELECT ?, ?, unnest(?::VARCHAR[]), 0",
                [ev["event_id"], es.object, ev["record_ids"]],
            )
        store.execute("INSERT INTO scope_events VALUES (?, ?, ?)", [ev["event_id"], ev["ts"],
                      es.fields])  # fmt: skip
    for ev, es, _ in planned:
        if es.kind == "bounded" and ev["job_id"] in replayed_jobs:
            es.kind, es.note = "covered", f"bulk job {ev['job_id']} is replayed from its query"
            es.upper_bound = None
    result = _summarise(store, incident.id, snap, [es for _, es, _ in planned])
    snap.drop()
    return result


def replay_query(
    store: Store, snap: Snapshot, query: str, at: dt.datetime, rows: int | None = None,
    user_id: str | None = None,
) -> tuple[EventScope, set[str]]:  # fmt: skip
    """Replay one query as if logged at ``at``: what it exposed, and the record ids listed."""
    store.execute(SF_TS)
    _hit_tables(store)
    ev = {"event_id": "replay", "ts": at, "source_type": "replay", "object": None, "rows": rows,
          "record_ids": None, "fields": None, "query": query, "user_id": user_id}  # fmt: skip
    _, es, p = _classify(ev, snap)
    snap.load()
    if p is not None and p.kind == "records":
        _replay(store, ev, es, p)
    ids = {r[0] for r in store.execute("SELECT record_id FROM scope_hits").rows}
    return es, ids


def _hit_tables(store: Store) -> None:
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_hits (event_id VARCHAR, object VARCHAR, "
        "record_id VARCHAR, conf INTEGER)"
    )
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_events (event_id VARCHAR, ts TIMESTAMP, "
        "fields VARCHAR[])"
    )


def _classify(ev: dict, snap: Snapshot) -> tuple[dict, EventScope, Plan | None]:
    obj = ev["object"]
    es = EventScope(ev["event_id"], ev["ts"].isoformat(), ev["source_type"], obj, "none",
                    rows_logged=ev["rows"])  # fmt: skip
    logged_fields = [f for name in (ev["fields"] or []) for f in
                     expand(obj or "", name, snap.get(obj) if obj else None)]  # fmt: skip
    es.fields = logged_fields
    p: Plan | None = None
    reason = ""
    if ev["query"]:
        try:
            q = soql.parse_full(ev["query"])
            p = plan(q, snap, ev["ts"], ev["user_id"])
            es.object = obj = p.object if p.kind == "records" else q.object
            es.fields = p.fields
            es.note = "; ".join(p.notes)
        except (soql.SoqlError, Unreplayable) as e:
            reason = f"not replayable: {e}"
            p = None
        if p is not None and p.kind in ("count", "aggregate"):
            es.kind = p.kind
            what = "a count" if p.kind == "count" else "aggregate results"
            es.note = _join(f"{what}, no records", es.note)
            es.fields = [] if p.kind == "count" else es.fields
            return ev, es, None
    if ev["record_ids"]:
        es.kind, es.records = "exact", len(ev["record_ids"])
        es.object = es.object or _object_of(ev["record_ids"][0])
        if not es.fields:
            es.note = "record page view: the fields shown are not logged"
    elif p is None:
        es.kind = "bounded"
        base = snap.get(obj) if obj else None
        if obj is None:
            es.note = reason or "no object in the log"
        else:
            es.note = reason or "the log names the object and a row count only"
        if ev["rows"] is not None:
            es.upper_bound = ev["rows"]
            if base is not None and base.rows is not None:
                es.upper_bound = min(ev["rows"], base.rows)
    return ev, es, p


# Key prefixes of the standard customer objects (Salesforce "Standard Field Record ID Prefix").
_PREFIXES = {"003": "Contact", "001": "Account", "00Q": "Lead", "500": "Case"}


def _object_of(record_id: str) -> str | None:
    return _PREFIXES.get(record_id[:3])


def _replay(store: Store, ev: dict, es: EventScope, p: Plan) -> None:
    """Run a compiled query; record its hits, or say why no list can be given."""
    matched = store.scalar(f"SELECT count(*) {p.source}")
    offset = p.offset or 0
    returned = max(0, min(matched - offset, p.limit if p.limit is not None else matched))
    select = None
    if p.limit is None and not offset:
        select = f'SELECT t0."Id" {p.source}'
    elif not p.order:
        if offset == 0 and matched <= (p.limit or 0):
            select = f'SELECT t0."Id" {p.source}'
        else:
            es.note = _join(es.note, "LIMIT/OFFSET without ORDER BY: Salesforce returns no "
                            "defined subset")  # fmt: skip
    else:
        keys = [_sort_key(store, col, p) for col, _, _ in p.order]
        order = ", ".join(
            f"{k} {'DESC' if desc else 'ASC'} NULLS {'FIRST' if nulls else 'LAST'}"
            for k, (_, desc, nulls) in zip(keys, p.order, strict=True)
        )
        lo, hi = offset + 1, offset + returned
        ranked = (f'SELECT t0."Id" AS id, row_number() OVER (ORDER BY {order}) AS rn, '
                  f"rank() OVER (ORDER BY {order}) AS rk {p.source}")  # fmt: skip
        tied = store.scalar(
            f"SELECT count(*) FROM ({ranked}) WHERE (rn = {lo} AND rk < {lo}) "
            f"OR (rn = {hi + 1} AND rk <= {hi})"
        )
        if tied and returned:
            es.note = _join(es.note, "ORDER BY ties across the LIMIT/OFFSET cut: the returned "
                            "subset is not defined")  # fmt: skip
        else:
            select = f"SELECT id FROM ({ranked}) WHERE rn BETWEEN {lo} AND {hi}"
    if select is None:
        if es.kind != "exact":
            es.kind, es.upper_bound = "bounded", returned
        return
    conf = 1
    exact = es.kind == "exact"  # the log's ids stay the evidence; the replay may add to them
    es.kind, es.records = ("exact", max(es.records, returned)) if exact else ("replayed", returned)
    if ev["rows"] is not None and ev["rows"] != returned:
        conf = 2
        es.kind = "exact" if exact else "candidate"
        es.note = _join(es.note, f"replay found {returned} records, the log says {ev['rows']}: "
                        "sharing rules or changes since the query; an upper bound")  # fmt: skip
    store.execute(f"INSERT INTO scope_hits SELECT ?, ?, *, {conf} FROM ({select})",
                  [ev["event_id"], p.object])  # fmt: skip


def _sort_key(store: Store, col: str, p: Plan) -> str:
    """How SOQL would sort a text column: as numbers or times if every value is one,
    record ids as they are, other text case-insensitively."""
    if col.endswith('"Id"') or col.endswith('Id"'):
        return col
    numeric, timely = store.execute(
        f"SELECT coalesce(bool_and(try_cast({col} AS DOUBLE) IS NOT NULL), true), "
        f"coalesce(bool_and(sf_ts({col}) IS NOT NULL), true) "
        f"{p.source}{' AND' if ' WHERE ' in p.source else ' WHERE'} nullif({col}, '') IS NOT NULL"
    ).rows[0]
    if numeric:
        return f"try_cast(nullif({col}, '') AS DOUBLE)"
    if timely:
        return f"sf_ts(nullif({col}, ''))"
    return f"upper(nullif({col}, ''))"


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


@cache
def country_code(raw: str | None) -> str | None:
    """ISO 3166-1 alpha-2 for a country code or name as a CRM holds it."""
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    aliases = {"UK": "GB", "SOUTH KOREA": "KR", "KOREA": "KR", "USA": "US", "U.S.": "US",
               "U.S.A.": "US", "RUSSIA": "RU", "TAIWAN": "TW", "VIETNAM": "VN"}  # fmt: skip
    if text.upper() in aliases:
        return aliases[text.upper()]
    try:
        return pycountry.countries.lookup(text).alpha_2
    except LookupError:
        return None


@cache
def us_state(raw: str | None) -> str | None:
    """USPS code of a US state given as code or name."""
    if not raw or not raw.strip():
        return None
    text = raw.strip()
    sub = pycountry.subdivisions.get(code=f"US-{text.upper()}")
    if sub is not None:
        return text.upper()
    for s in pycountry.subdivisions.get(country_code="US"):
        if s.name.lower() == text.lower():
            return s.code.split("-")[1]
    return None


def _customers_sql(snap: Snapshot) -> str:
    """Per exposure: the customer id and the raw country / state text, from the snapshot."""
    parts, handled = [], []
    for obj in CUSTOMER_OBJECTS:
        f = snap.get(obj)
        link = PERSON_LINK.get(obj)
        if f is None or f.object not in snap.loaded:
            continue
        holder, key = f, "x.record_id"
        join = f'LEFT JOIN {f.table} s ON left(s."Id", 15) = left(x.record_id, 15)'
        if link is not None:
            person = snap.get(link[1])
            lcol = f.column(link[0])
            if lcol is None:
                continue
            key = f'coalesce(s."{lcol}", x.record_id)'
            if person is not None and person.object in snap.loaded:
                join += (f' LEFT JOIN {person.table} p ON left(p."Id", 15) = '
                         f'left(s."{lcol}", 15)')  # fmt: skip
                holder = person
        alias = "p" if holder is not f else "s"
        cc = [f'{alias}."{c}"' for c in COUNTRY_COLUMNS.get(holder.object, ()) if holder.column(c)]
        st = [f'{alias}."{c}"' for c in STATE_COLUMNS.get(holder.object, ()) if holder.column(c)]
        handled.append(f"'{obj}'")
        parts.append(
            f"SELECT x.object, x.record_id, {key} AS customer_id, "
            f"{'coalesce(' + ', '.join(cc) + ')' if cc else 'NULL'} AS country_raw, "
            f"{'coalesce(' + ', '.join(st) + ')' if st else 'NULL'} AS state_raw "
            f"FROM scope_exposed x {join} WHERE x.object = '{obj}'"
        )
    # Objects without a snapshot (or without a person link): the record is the customer.
    parts.append(
        "SELECT object, record_id, record_id, NULL, NULL FROM scope_exposed "
        f"WHERE object NOT IN ({', '.join(handled) or 'NULL'}) OR object IS NULL"
    )
    return " UNION ALL ".join(parts)


def _summarise(store: Store, iid: str, snap: Snapshot, scoped: list[EventScope]) -> ScopeResult:
    store.execute(
        """CREATE OR REPLACE TEMP TABLE scope_exposed AS
        SELECT h.object, h.record_id, list_sort(list_distinct(flatten(list(e.fields))))
            AS fields, min(e.ts) AS first_ts, list_sort(list(DISTINCT h.event_id)) AS event_ids,
            min(h.conf) AS conf
        FROM scope_hits h JOIN scope_events e USING (event_id)
        WHERE h.record_id IS NOT NULL GROUP BY h.object, h.record_id"""
    )
    store.execute(f"CREATE OR REPLACE TEMP TABLE scope_cust AS {_customers_sql(snap)}")
    raws = store.execute("SELECT DISTINCT country_raw, state_raw FROM scope_cust").rows
    jur = [(c, s, country_code(c), us_state(s) if country_code(c) == "US" else None)
           for c, s in raws]  # fmt: skip
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_jur (country_raw VARCHAR, state_raw VARCHAR, "
        "country VARCHAR, us_state VARCHAR)"
    )
    if jur:
        store.con.executemany("INSERT INTO scope_jur VALUES (?, ?, ?, ?)", jur)
    conf_name = "CASE min(x.conf) WHEN 0 THEN 'exact' WHEN 1 THEN 'replayed' ELSE 'candidate' END"
    with store.transaction():
        store.execute("DELETE FROM exposures WHERE incident_id = ?", [iid])
        store.execute(
            f"""INSERT INTO exposures
            SELECT ?, x.object, x.record_id, any_value(x.fields), any_value(x.first_ts),
                any_value(x.event_ids), {conf_name}, any_value(c.customer_id),
                any_value(j.country), any_value(j.us_state)
            FROM scope_exposed x
            JOIN scope_cust c USING (object, record_id)
            LEFT JOIN scope_jur j ON j.country_raw IS NOT DISTINCT FROM c.country_raw
                AND j.state_raw IS NOT DISTINCT FROM c.state_raw
            GROUP BY x.object, x.record_id""",
            [iid],
        )
        summary = _summary(store, iid, snap, scoped)
        store.execute(
            "INSERT INTO scopes VALUES (?, now()::TIMESTAMP, ?) ON CONFLICT (incident_id) "
            "DO UPDATE SET scoped_at = excluded.scoped_at, summary = excluded.summary",
            [iid, json.dumps(summary.to_dict(), default=str)],
        )
    return summary


def _summary(store: Store, iid: str, snap: Snapshot, scoped: list[EventScope]) -> ScopeResult:
    cust = """SELECT customer_id, min(CASE confidence WHEN 'exact' THEN 0 WHEN 'replayed' THEN 1
                  ELSE 2 END) AS conf, list_sort(list_distinct(flatten(list(fields)))) AS fields,
                  any_value(country) AS country, any_value(us_state) AS us_state
              FROM exposures WHERE incident_id = ? GROUP BY customer_id"""
    by_conf = dict(store.execute(f"SELECT conf, count(*) FROM ({cust}) GROUP BY conf", [iid]).rows)
    countries = store.execute(
        f"SELECT coalesce(country, 'unknown'), count(*) FROM ({cust}) GROUP BY 1 ORDER BY 2 DESC",
        [iid],
    ).rows
    states = store.execute(
        f"SELECT us_state, count(*) FROM ({cust}) WHERE country = 'US' GROUP BY 1 ORDER BY 2 DESC",
        [iid],
    ).rows
    fieldsets = store.execute(f"SELECT fields, count(*) FROM ({cust}) GROUP BY fields", [iid]).rows
    by_category: Counter[str] = Counter()
    all_fields: set[str] = set()
    for fields, n in fieldsets:
        all_fields.update(fields)
        for cat in {category(f) for f in fields if f.lower() != "id"}:
            by_category[cat] += n
    for es in scoped:  # bounded exposures still expose their fields' categories
        all_fields.update(es.fields)
    by_object = dict(store.execute(
        "SELECT object, count(*) FROM exposures WHERE incident_id = ? GROUP BY 1 ORDER BY 2 DESC",
        [iid]).rows)  # fmt: skip
    first, last = store.execute(
        "SELECT min(first_exposed_at), max(first_exposed_at) FROM exposures WHERE incident_id = ?",
        [iid],
    ).rows[0]
    total = sum(by_conf.values())
    notes = sorted({es.note for es in scoped if es.note})
    return ScopeResult(
        incident_id=iid,
        affected_customers=total,
        affected_by_confidence={name: by_conf.get(i, 0) for i, name in enumerate(CONFIDENCE)},
        bounded_upper_bound=sum(es.upper_bound or 0 for es in scoped if es.kind == "bounded"),
        fields=sorted(all_fields),
        by_country={k: v for k, v in countries},
        by_us_state={(k or "unknown"): v for k, v in states},
        by_category=dict(by_category.most_common()),
        categories=sorted({category(f) for f in all_fields if f.lower() != "id"}),
        records_by_object=by_object,
        first_exposure_at=first.isoformat() if first else None,
        last_exposure_at=last.isoformat() if last else None,
        snapshot={f.object: {"path": str(f.path), "records": f.rows} for f in snap.files.values()},
        events=scoped,
        notes=notes,
    )


def stored_scope(store: Store, incident_id: str) -> dict[str, Any] | None:
    row = store.execute(
        "SELECT summary FROM scopes WHERE upper(incident_id) = upper(?)", [incident_id]
    ).first()
    return json.loads(row[0]) if row else None
