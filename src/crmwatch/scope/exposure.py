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
from enum import IntEnum
from functools import cache
from pathlib import Path
from typing import Any

import pycountry

from crmwatch import soql
from crmwatch.errors import CrmwatchError
from crmwatch.incidents import DATA_ACCESS, get_incident
from crmwatch.scope.fields import category, expand
from crmwatch.scope.replay import SF_TS, Plan, Unreplayable, plan
from crmwatch.scope.snapshot import Snapshot
from crmwatch.sql import lit, lit_list
from crmwatch.store import Store
from crmwatch.timeutil import iso_z, json_default


class Confidence(IntEnum):
    """How sure a listed record is, strongest first. The value is the rank kept per record in
    SQL (``min`` keeps the strongest; ``event_ix * 4 + rank`` packs the first event with it)."""

    EXACT = 0
    REPLAYED = 1
    CANDIDATE = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def sql_label(cls, rank: str) -> str:
        """SQL naming the rank in ``rank``: 'exact', 'replayed' or 'candidate'."""
        whens = " ".join(f"WHEN {c.value} THEN {lit(c.label)}" for c in cls)
        return f"CASE {rank} {whens} END"

    @classmethod
    def sql_rank(cls, label: str) -> str:
        """SQL ranking the label in ``label``."""
        whens = " ".join(f"WHEN {lit(c.label)} THEN {c.value}" for c in cls)
        return f"CASE {label} {whens} END"


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
    # events that exposed records neither listed nor bounded: neither the log nor the
    # snapshot says how many (a bulk job on an empty snapshot file); never read as zero
    unbounded_events: list[str]
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
        WHERE i.incident_id = ? AND e.category IN {lit_list(DATA_ACCESS)}
          AND e.outcome IS DISTINCT FROM 'failure'
        ORDER BY e.ts, e.event_id""",
        [incident.id],
    ).dicts()
    planned = [_classify(ev, snap) for ev in events]
    snap.load()
    _hit_tables(store)
    bits, by_event = _bits(planned)
    store.insert("scope_exact", [(ix, bits[ix], es.object, rid)
                                 for ix, (ev, es, _) in enumerate(planned)
                                 for rid in dict.fromkeys(ev["record_ids"] or ())])  # fmt: skip
    store.insert("scope_events", [(ix, bits[ix], ev["event_id"], ev["ts"], es.fields)
                                  for ix, (ev, es, _) in enumerate(planned)])  # fmt: skip
    passes: dict[int, list[Pass]] = {}
    for ix, (ev, es, p) in enumerate(planned):
        if p is None or p.kind != "records":
            continue
        f = snap.get(p.object)
        assert f is not None
        if not f.rows:
            _nothing_to_replay_on(ev, es, p.object)
            continue
        if by_event and p.limit is None and not p.offset and " JOIN " not in p.tables:
            passes.setdefault(f.ix, []).append(Pass(ix, bits[ix], p, ev, es))
        else:
            _replay(store, ix, bits[ix], ev, es, p, snap)
    for f in snap.files.values():
        if f.ix in passes:
            _count_passes(store, f.table, passes[f.ix])
    # Jobs by their 15-character id: EventLogFile writes JOB_ID in 15 characters,
    # BulkApiResultEventStore its JobId in 18.
    replayed_jobs = {ev["job_id"][:15]: es for ev, es, _ in planned
                     if es.kind in ("replayed", "candidate") and ev["job_id"]}  # fmt: skip
    listed = [(ev, es) for ev, es, _ in planned if es.kind in (*LISTED, "count", "aggregate")]
    job_rows: Counter[str] = Counter()
    for ev, es, _ in planned:
        if es.kind != "bounded":
            continue
        if (job := (ev["job_id"] or "")[:15]) in replayed_jobs:
            es.kind, es.note = "covered", f"bulk job {ev['job_id']} is replayed from its query"
            es.upper_bound = None
            job_rows[job] += ev["rows"] or 0
        elif (twin := _twin(ev, listed)) is not None:
            es.kind, es.upper_bound = "covered", None
            es.note = f"the same {ev['category']} as event {twin} (another log of it)"
        elif es.upper_bound is not None and (base := snap.get(es.object or "")) is not None:
            es.upper_bound = min(es.upper_bound, base.rows or es.upper_bound)
    for job, rows in job_rows.items():
        _bound_by_job_log(replayed_jobs[job], job, rows)
    _resolve_exact_hits(store, snap)
    result = _summarise(store, incident.id, snap, [es for _, es, _ in planned], passes, by_event)
    snap.drop()
    return result


LISTED = ("exact", "replayed", "candidate")
TWIN_SECONDS = 5


def _twin(ev: dict, listed: list[tuple[dict, EventScope]]) -> str | None:
    """An event read from a richer log that is this one seen by another log: an API
    EventLogFile row and its ApiEvent, a ReportExport row and its ReportEvent (same user,
    kind, time within seconds)."""
    for other, es in listed:
        if (
            other["category"] == ev["category"]
            and (other["user_id"] or "")[:15] == (ev["user_id"] or "")[:15]
            and abs((other["ts"] - ev["ts"]).total_seconds()) <= TWIN_SECONDS
            and (ev["object"] is None or es.object is None or ev["object"] == es.object)
        ):
            return other["event_id"]
    return None


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
    if p is None or p.kind != "records":
        return es, set()
    _replay(store, 0, 0, ev, es, p, snap)
    f = snap.get(p.object)
    assert f is not None
    rows = store.execute(
        f'SELECT t0."Id" FROM scope_hits h JOIN {f.table} t0 ON t0.rowid = h.rid WHERE h.snap = ?',
        [f.ix],
    ).rows
    return es, {r[0] for r in rows}


def _hit_tables(store: Store) -> None:
    """Per-run scratch tables. A hit names its record by snapshot table and row id, so
    millions of hits are integers, and record ids, customers and countries are read from the
    snapshot once per exposed record at the end."""
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_hits (event_ix INTEGER, bit INTEGER, "
        "snap SMALLINT, rid BIGINT, conf INTEGER)"
    )
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_exact (event_ix INTEGER, bit INTEGER, "
        "object VARCHAR, record_id VARCHAR)"
    )
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_events (event_ix INTEGER, bit INTEGER, "
        "event_id VARCHAR, ts TIMESTAMP, fields VARCHAR[])"
    )


MASK_BITS = 64


@dataclass
class Pass:
    """A replayed query whose result is a plain filter on one snapshot table: evaluated for
    every record in one scan together with the other such queries, not stored as hits."""

    ix: int
    bit: int
    plan: Plan
    ev: dict
    es: EventScope
    conf: Confidence = Confidence.REPLAYED

    @property
    def predicate(self) -> str:
        return self.plan.where.removeprefix("WHERE ") or "true"


def _count_passes(store: Store, table: str, group: list[Pass]) -> None:
    """One scan counting every pass's records, to compare with the rows each event logged."""
    counts = store.execute(
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE {g.predicate})" for g in group)
        + f" FROM {table} t0"
    ).rows[0]
    for g, n in zip(group, counts, strict=True):
        g.conf = _settle(g.ev, g.es, n)


def _settle(ev: dict, es: EventScope, returned: int) -> Confidence:
    """Record a replay's result on its event; return the confidence of its records: replayed
    when the log's row count agrees or is absent, candidate otherwise. The
    log's own ids stay the event's evidence when it has them; the replay may add to them.
    Rows the log counts beyond those listed (a snapshot missing records) are the event's
    upper bound: a partial snapshot gives a bounded result, never a small exact one."""
    exact = es.kind == "exact"
    es.kind, es.records = ("exact", max(es.records, returned)) if exact else ("replayed", returned)
    if ev["rows"] is None or ev["rows"] == returned:
        return Confidence.REPLAYED
    es.kind = "exact" if exact else "candidate"
    if ev["rows"] > es.records:
        es.upper_bound = ev["rows"] - es.records
        es.note = _join(es.note, f"the log says {ev['rows']} rows, the snapshot gives "
                        f"{es.records}: up to {es.upper_bound} more are not listed")  # fmt: skip
    else:
        es.note = _join(es.note, f"replay found {returned} records, the log says {ev['rows']}: "
                        "sharing rules or changes since the query; an upper bound")  # fmt: skip
    return Confidence.CANDIDATE


def _bound_by_job_log(es: EventScope, job: str, rows: int) -> None:
    """A replayed bulk job whose own log (the EventLogFile BulkApi rows) counts more rows than
    the replay lists: the snapshot lacks records, and the rest is the job's upper bound."""
    if rows > es.records:
        es.upper_bound = rows - es.records
        es.note = _join(
            es.note,
            f"the log of bulk job {job} counts {rows} rows, the snapshot gives {es.records}: "
            f"up to {es.upper_bound} more are not listed",
        )


def _nothing_to_replay_on(ev: dict, es: EventScope, obj: str) -> None:
    """An event whose object's snapshot file has no records: replaying it would list nobody,
    which is not the answer. The log's own ids stay listed; otherwise the event is bounded by
    its logged row count, or by nothing (``unbounded_events``)."""
    note = f"the snapshot's {obj} file has no records to replay on"
    if es.kind == "exact":
        es.note = _join(es.note, note + ": only the records the log names are listed")
        if ev["rows"] is not None and ev["rows"] > es.records:
            es.upper_bound = ev["rows"] - es.records
        return
    es.kind, es.upper_bound, es.note = "bounded", ev["rows"], _join(es.note, note)


def _bits(planned: list) -> tuple[list[int], bool]:
    """The bit each event sets in a record's mask (-1: the event lists no record), and whether
    bits are events. With at most 64 events that can expose records, one bit per such event:
    the mask is the record's exact evidence. Beyond that, one bit per distinct field list (a
    paged export is thousands of events with one field list); the record then keeps its first
    event, and the field set lists every event with its fields."""
    exposing = [ix for ix, (ev, _, p) in enumerate(planned)
                if ev["record_ids"] or (p is not None and p.kind == "records")]  # fmt: skip
    bits = [-1] * len(planned)
    if len(exposing) <= MASK_BITS:
        for bit, ix in enumerate(exposing):
            bits[ix] = bit
        return bits, True
    lists: dict[tuple[str, ...], int] = {}
    for ix in exposing:
        bits[ix] = lists.setdefault(tuple(sorted(planned[ix][1].fields)), len(lists))
    if len(lists) > MASK_BITS:
        raise CrmwatchError(
            f"{len(exposing)} exposing events with {len(lists)} different field lists: more "
            f"than crmwatch can track per record ({MASK_BITS}); scope a narrower incident"
        )
    return bits, False


def _classify(ev: dict, snap: Snapshot) -> tuple[dict, EventScope, Plan | None]:
    obj = ev["object"]
    es = EventScope(ev["event_id"], iso_z(ev["ts"]) or "", ev["source_type"], obj, "none",
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
        if obj is None:
            es.note = reason or "no object in the log"
        else:
            es.note = reason or "the log names the object and a row count only"
        es.upper_bound = ev["rows"]  # clamped to the snapshot's size once it is loaded
    return ev, es, p


# Key prefixes of the standard customer objects (Salesforce "Standard Field Record ID Prefix").
_PREFIXES = {"003": "Contact", "001": "Account", "00Q": "Lead", "500": "Case"}


def _object_of(record_id: str) -> str | None:
    return _PREFIXES.get(record_id[:3])


def _replay(
    store: Store, ix: int, bit: int, ev: dict, es: EventScope, p: Plan, snap: Snapshot
) -> None:
    """Run a compiled query; record its hits, or say why no list can be given."""
    f = snap.get(p.object)
    assert f is not None
    cols = f"{ix}, {bit}, {f.ix}, t0.rowid, 1"
    offset = p.offset or 0
    listed = True
    if p.limit is None and not offset:
        returned = store.scalar(f"INSERT INTO scope_hits SELECT {cols} {p.source}")
    else:
        matched = store.scalar(f"SELECT count(*) {p.source}")
        returned = max(0, min(matched - offset, p.limit if p.limit is not None else matched))
        if not p.order:
            listed = offset == 0 and matched <= (p.limit or 0)
            if listed:
                store.execute(f"INSERT INTO scope_hits SELECT {cols} {p.source}")
            else:
                es.note = _join(es.note, "LIMIT/OFFSET without ORDER BY: Salesforce returns "
                                "no defined subset")  # fmt: skip
        else:
            listed = _ranked_insert(store, cols, p, offset, returned, es)
    if not listed:
        if es.kind != "exact":  # the log's own row count, when it has one, is the bound
            es.kind = "bounded"
            es.upper_bound = ev["rows"] if ev["rows"] is not None else returned
        return
    if _settle(ev, es, returned) == Confidence.CANDIDATE:
        store.execute(
            "UPDATE scope_hits SET conf = ? WHERE event_ix = ? AND conf = ?",
            [Confidence.CANDIDATE, ix, Confidence.REPLAYED],
        )


def _ranked_insert(
    store: Store, cols: str, p: Plan, offset: int, returned: int, es: EventScope
) -> bool:
    """Insert rows offset+1 … offset+returned in SOQL order, unless ties cross the cut."""
    keys = [_sort_key(store, col, p) for col, _, _ in p.order]
    order = ", ".join(
        f"{k} {'DESC' if desc else 'ASC'} NULLS {'FIRST' if nulls else 'LAST'}"
        for k, (_, desc, nulls) in zip(keys, p.order, strict=True)
    )
    lo, hi = offset + 1, offset + returned
    ranked = (f"SELECT {cols}, row_number() OVER (ORDER BY {order}) AS rn, "
              f"rank() OVER (ORDER BY {order}) AS rk {p.source}")  # fmt: skip
    store.execute(f"CREATE OR REPLACE TEMP TABLE scope_ranked AS {ranked}")
    tied = store.scalar(
        f"SELECT count(*) FROM scope_ranked WHERE (rn = {lo} AND rk < {lo}) "
        f"OR (rn = {hi + 1} AND rk <= {hi})"
    )
    if tied and returned:
        es.note = _join(es.note, "ORDER BY ties across the LIMIT/OFFSET cut: the returned "
                        "subset is not defined")  # fmt: skip
        return False
    store.execute(
        f"INSERT INTO scope_hits SELECT * EXCLUDE (rn, rk) FROM scope_ranked "
        f"WHERE rn BETWEEN {lo} AND {hi}"
    )
    return True


def _sort_key(store: Store, col: str, p: Plan) -> str:
    """How SOQL would sort a text column: as numbers or times if every value is one,
    record ids as they are, other text case-insensitively."""
    if col.endswith('Id"'):
        return col
    present = f"nullif({col}, '') IS NOT NULL"
    where = f"{p.where} AND {present}" if p.where else f"WHERE {present}"
    numeric, timely = store.execute(
        f"SELECT coalesce(bool_and(try_cast({col} AS DOUBLE) IS NOT NULL), true), "
        f"coalesce(bool_and(sf_ts({col}) IS NOT NULL), true) {p.tables} {where}"
    ).rows[0]
    if numeric:
        return f"try_cast(nullif({col}, '') AS DOUBLE)"
    if timely:
        return f"sf_ts(nullif({col}, ''))"
    return f"upper(nullif({col}, ''))"


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a and b else a or b


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


def _resolve_exact_hits(store: Store, snap: Snapshot) -> None:
    """Ids from the logs (15- or 18-character) become snapshot rows; ids the snapshot does
    not hold stay in ``scope_exact`` and are exposures without a jurisdiction."""
    for f in snap.files.values():
        store.execute(
            f"""INSERT INTO scope_hits
            SELECT e.event_ix, e.bit, {f.ix}, s.rowid, 0 FROM scope_exact e
            JOIN {f.table} s ON left(s."Id", 15) = left(e.record_id, 15)
            WHERE e.object = ?""",
            [f.object],
        )
        store.execute(
            f"""DELETE FROM scope_exact WHERE object = ? AND left(record_id, 15) IN
                (SELECT left("Id", 15) FROM {f.table})""",
            [f.object],
        )


def _summarise(
    store: Store, iid: str, snap: Snapshot, scoped: list[EventScope],
    passes: dict[int, list[Pass]], by_event: bool,
) -> ScopeResult:  # fmt: skip
    """Store the exposures and build the summary.

    A record's fields are the union of its events' fields, so records reached by the same
    events share one *field set*: 7 million records of a full export are one field set, not
    7 million lists. ``exposure_details`` joins them back for reading."""
    # first: the first event, and the best evidence of that event (the log's own ids and a
    # replay of the same event can both list a record)
    agg = """SELECT {key}, bit_or(1::UBIGINT << bit) AS mask, min(conf) AS conf,
            min(event_ix * 4 + conf) AS first"""
    store.execute(
        f"CREATE OR REPLACE TEMP TABLE scope_agg AS {agg.format(key='snap, rid')} "
        "FROM scope_hits GROUP BY snap, rid"
    )
    store.execute(
        f"CREATE OR REPLACE TEMP TABLE scope_orphans AS {agg.format(key='object, record_id')} "
        f"FROM (SELECT *, {Confidence.EXACT.value} AS conf FROM scope_exact) "
        "GROUP BY object, record_id"
    )
    _jurisdictions(store, snap)
    conf = Confidence.sql_label("x.conf")
    with store.transaction():
        for table in ("exposures", "exposure_fieldsets", "exposure_events"):
            store.execute(f"DELETE FROM {table} WHERE incident_id = ?", [iid])
        store.execute(
            "INSERT INTO exposure_events SELECT ?, event_ix, event_id, ts FROM scope_events",
            [iid],
        )
        for f in snap.files.values():
            group = passes.get(f.ix, [])
            hits = store.scalar("SELECT count(*) FROM scope_agg WHERE snap = ?", [f.ix])
            if not group and not hits:
                continue
            masks = [f"CASE WHEN {g.predicate} THEN {1 << g.bit}::UBIGINT ELSE 0 END"
                     for g in group]  # fmt: skip
            confs = [f"CASE WHEN {g.predicate} THEN {int(g.conf)} END" for g in group]
            keep = [f"({g.predicate})" for g in group]
            join = ""
            if hits:
                masks.append("coalesce(h.mask, 0)")
                confs.append("h.conf")
                keep.append("h.rid IS NOT NULL")
                join = f"LEFT JOIN scope_agg h ON h.snap = {f.ix} AND h.rid = t0.rowid"
            first = "h.first // 4" if hits and not by_event else "NULL::INTEGER"
            who = snap.person(f.object, "t0")
            conf_of = f"least({', '.join(confs)})"
            store.execute(
                f"""INSERT INTO exposures
                SELECT ?, {lit(f.object)}, t0."Id", {" | ".join(masks)}, {first},
                    {conf.replace("x.conf", conf_of)}, nullif({who.customer}, t0."Id"),
                    j.country, j.us_state
                FROM {f.table} t0 {join} {who.join}
                LEFT JOIN scope_jur j ON j.country_raw IS NOT DISTINCT FROM {who.country}
                    AND j.state_raw IS NOT DISTINCT FROM {who.state}
                WHERE {" OR ".join(keep)}""",
                [iid],
            )
        store.execute(
            f"""INSERT INTO exposures SELECT ?, x.object, x.record_id, x.mask, x.first // 4,
                {conf}, NULL, NULL, NULL FROM scope_orphans x""",
            [iid],
        )
        _fieldsets(store, iid)
        summary = _summary(store, iid, snap, scoped)
        store.execute(
            "INSERT INTO scopes VALUES (?, now()::TIMESTAMP, ?) ON CONFLICT (incident_id) "
            "DO UPDATE SET scoped_at = excluded.scoped_at, summary = excluded.summary",
            [iid, json.dumps(summary.to_dict(), default=json_default)],
        )
    return summary


def _fieldsets(store: Store, iid: str) -> None:
    """One row per distinct mask: its fields (the union of its events' fields), its evidence
    events and, when bits are events, its first event."""
    events = store.execute("SELECT event_ix, bit, event_id, ts, fields FROM scope_events").rows
    by_bit: dict[int, list[tuple]] = {}
    for ev in events:
        by_bit.setdefault(ev[1], []).append(ev)
    sets = []
    masks = store.execute(
        "SELECT DISTINCT fieldset FROM exposures WHERE incident_id = ?", [iid]
    ).rows
    for (mask,) in masks:
        members = sorted(ev for b, evs in by_bit.items() if b >= 0 and mask >> b & 1 for ev in evs)
        fields = sorted({f for ev in members for f in ev[4]})
        sets.append((iid, mask, fields, [ev[2] for ev in members], members[0][0]))
    store.insert("exposure_fieldsets", sets)


def _jurisdictions(store: Store, snap: Snapshot) -> None:
    """``scope_jur``: every raw country / state spelling in the snapshot → ISO codes."""
    raws: set[tuple] = set()
    for f in snap.files.values():
        who = snap.person(f.object, "t0")
        if who.country == "NULL":
            continue
        sql = f"SELECT DISTINCT {who.country}, {who.state} FROM {f.table} t0 {who.join}"
        raws |= set(store.execute(sql).rows)
    jur = [(c, s, country_code(c), us_state(s) if country_code(c) == "US" else None)
           for c, s in raws]  # fmt: skip
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_jur (country_raw VARCHAR, state_raw VARCHAR, "
        "country VARCHAR, us_state VARCHAR)"
    )
    store.insert("scope_jur", jur)


def _summary(store: Store, iid: str, snap: Snapshot, scoped: list[EventScope]) -> ScopeResult:
    # One row per customer. Without a linked object (Case → Contact) each record is its own
    # customer and the grouping — a hash aggregate over millions of rows — is skipped.
    linked = store.scalar(
        "SELECT count(*) FROM exposures WHERE incident_id = ? AND customer_id IS NOT NULL",
        [iid],
    )
    conf = Confidence.sql_rank("confidence")
    cust = (
        f"""SELECT coalesce(customer_id, record_id) AS customer, min({conf}) AS conf,
            list_sort(list(DISTINCT fieldset)) AS sets, any_value(country) AS country,
            any_value(us_state) AS us_state
        FROM exposures WHERE incident_id = $iid GROUP BY customer"""
        if linked
        else f"""SELECT record_id AS customer, {conf} AS conf, [fieldset] AS sets, country,
            us_state FROM exposures WHERE incident_id = $iid"""
    )
    # A view when each record is its customer: the summaries below then read the exposures
    # directly instead of copying millions of rows first.
    cust = cust.replace("$iid", lit(iid))
    customers = "scope_customers_table" if linked else "scope_customers_view"
    kind = "TABLE" if linked else "VIEW"
    store.execute(f"CREATE OR REPLACE TEMP {kind} {customers} AS {cust}")
    by_conf = dict(store.execute(f"SELECT conf, count(*) FROM {customers} GROUP BY 1").rows)
    countries = store.execute(
        f"SELECT coalesce(country, 'unknown'), count(*) FROM {customers} GROUP BY 1 "
        "ORDER BY 2 DESC, 1"
    ).rows
    states = store.execute(
        f"SELECT coalesce(us_state, 'unknown'), count(*) FROM {customers} "
        "WHERE country = 'US' GROUP BY 1 ORDER BY 2 DESC, 1"
    ).rows
    set_fields = dict(
        store.execute(
            "SELECT fieldset, fields FROM exposure_fieldsets WHERE incident_id = ?", [iid]
        ).rows
    )
    combos = store.execute(f"SELECT sets, count(*) FROM {customers} GROUP BY sets").rows
    by_category: Counter[str] = Counter()
    all_fields: set[str] = set()
    for sets, n in combos:
        fields = {f for key in sets for f in set_fields[key]}
        all_fields |= fields
        for cat in {category(f) for f in fields if f.lower() != "id"}:
            by_category[cat] += n
    for es in scoped:  # bounded exposures still expose their fields
        all_fields.update(es.fields)
    by_object = dict(store.execute(
        "SELECT object, count(*) FROM exposures WHERE incident_id = ? GROUP BY 1 ORDER BY 2 DESC",
        [iid]).rows)  # fmt: skip
    # A record's first event is its own first_event, or its field set's when that is NULL
    # (each mask bit one event); the last exposure is the latest event of any field set.
    first, last = store.execute(
        """WITH used AS (SELECT DISTINCT fieldset, first_event FROM exposures
                          WHERE incident_id = $iid),
            sets AS (SELECT f.fieldset, f.first_event, f.event_ids FROM exposure_fieldsets f
                     WHERE f.incident_id = $iid AND f.fieldset IN (SELECT fieldset FROM used))
        SELECT
            (SELECT min(e.ts) FROM exposure_events e WHERE e.incident_id = $iid AND e.event_ix IN
                (SELECT coalesce(u.first_event, s.first_event) FROM used u JOIN sets s
                 USING (fieldset))),
            (SELECT max(e.ts) FROM exposure_events e WHERE e.incident_id = $iid AND e.event_id IN
                (SELECT unnest(event_ids) FROM sets))""",
        {"iid": iid},
    ).rows[0]
    notes = sorted({es.note for es in scoped if es.note})
    return ScopeResult(
        incident_id=iid,
        affected_customers=sum(by_conf.values()),
        affected_by_confidence={c.label: by_conf.get(c.value, 0) for c in Confidence},
        bounded_upper_bound=sum(
            es.upper_bound or 0 for es in scoped if es.kind in ("bounded", *LISTED)
        ),
        fields=sorted(all_fields),
        by_country=dict(countries),
        by_us_state=dict(states),
        by_category=dict(sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))),
        categories=sorted({category(f) for f in all_fields if f.lower() != "id"}),
        records_by_object=by_object,
        first_exposure_at=iso_z(first),
        last_exposure_at=iso_z(last),
        unbounded_events=[
            es.event_id for es in scoped if es.kind == "bounded" and es.upper_bound is None
        ],
        snapshot={f.object: {"path": str(f.path), "records": f.rows} for f in snap.files.values()},
        events=scoped,
        notes=notes,
    )


def stored_scope(store: Store, incident_id: str) -> dict[str, Any] | None:
    row = store.execute(
        "SELECT summary FROM scopes WHERE upper(incident_id) = upper(?)", [incident_id]
    ).first()
    return json.loads(row[0]) if row else None
