"""Scope one incident: every customer record its data-access events exposed, and which fields.

The steps, one module each: ``evidence`` reads each event for the strongest evidence it carries
(exact ids, a replayable query, a bound); this module loads the snapshot and runs the replays —
queries without LIMIT on one file share one pass over it, the others run alone — and records
which snapshot rows each event reached; ``results`` stores one exposure per record (the union
of its fields, its first exposure, its strongest confidence) and the summary. Events that only
name an object and a row count are judged in SQL, however many (:data:`PLAIN`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from crmwatch.errors import CrmwatchError
from crmwatch.incidents import DATA_ACCESS, get_incident
from crmwatch.scope.evidence import (
    COUNT_ONLY,
    LISTED,
    NO_OBJECT,
    TWIN,
    Confidence,
    EventScope,
    Planned,
    bound_by_job_log,
    classify,
    join_notes,
    nothing_to_replay_on,
    settle,
    twins,
)
from crmwatch.scope.replay import SF_TS, Plan
from crmwatch.scope.results import ScopeResult, summarise
from crmwatch.scope.snapshot import CREATED, Snapshot
from crmwatch.sql import formatted, ident, lit, lit_list, num
from crmwatch.store import Store
from crmwatch.timeutil import parse_utc

# A plain event: no query, no record ids, no field list and no bulk job. What classify and
# the steps after it make of one depends on its object, row count and twins alone: bounded by
# its rows (at most the snapshot's), or covered by its twin in another log.
PLAIN = (
    "coalesce(e.query, '') = '' AND coalesce(len(e.record_ids), 0) = 0 "
    "AND coalesce(len(e.fields), 0) = 0 AND coalesce(e.job_id, '') = ''"
)


def scope_incident(
    store: Store, incident_id: str, paths: list[Path], object_override: str | None = None
) -> ScopeResult:
    """Compute, store and return the scope of one incident against a snapshot."""
    incident = get_incident(store, incident_id)
    snap = Snapshot(store, paths, object_override)
    store.execute(SF_TS)
    # Every data-access event of the incident, numbered in time order. The plain ones (an
    # insider's two million report exports) are judged in SQL and never read into Python
    # (:func:`_judged`); the others are read and classified.
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE scope_in AS
        SELECT row_number() OVER (ORDER BY e.ts, e.event_id) - 1 AS ix, e.*, {PLAIN} AS plain
        FROM incident_events i
        JOIN (SELECT event_id, ts, source_type, category, object, rows, record_ids, fields, query,
                     job_id, user_id, outcome FROM events) e USING (event_id)
        WHERE i.incident_id = ? AND e.category IN {lit_list(DATA_ACCESS)}
          AND e.outcome IS DISTINCT FROM 'failure'""",
        [incident.id],
    )
    events = store.execute(
        "SELECT * EXCLUDE (plain) FROM scope_in WHERE NOT plain ORDER BY ix"
    ).dicts()
    ixs = [ev.pop("ix") for ev in events]
    planned = [classify(ev, snap) for ev in events]
    snap.load()
    _hit_tables(store)
    bits, by_event = _bits(planned, ixs)
    numbered = list(zip(ixs, planned, strict=True))
    store.insert("scope_exact", [(ix, bits[ix], es.object, rid) for ix, (ev, es, _) in numbered
                                 for rid in dict.fromkeys(ev["record_ids"] or ())])  # fmt: skip
    store.insert("scope_events", [(ix, bits[ix], ev["event_id"], ev["ts"], es.fields)
                                  for ix, (ev, es, _) in numbered])  # fmt: skip
    store.execute(
        "INSERT INTO scope_events SELECT ix, -1, event_id, ts, []::VARCHAR[] FROM scope_in "
        "WHERE plain"
    )
    passes: dict[int, list[Pass]] = {}
    plain: list[Pass] = []
    for ix, (ev, es, p) in numbered:
        if p is None or p.kind != "records":
            continue
        f = snap.get(p.object)
        assert f is not None
        if not f.rows:
            nothing_to_replay_on(ev, es, p.object)
            continue
        if by_event and p.limit is None and not p.offset and " JOIN " not in p.tables:
            passes.setdefault(f.ix, []).append(Pass(ix, bits[ix], p, ev, es))
        elif p.limit is None and not p.offset:
            plain.append(Pass(ix, bits[ix], p, ev, es))
        else:
            _replay(store, ix, bits[ix], ev, es, p, snap)
    _replay_plain(store, plain, snap)
    for f in snap.files.values():
        if f.ix in passes:
            _count_passes(store, f.table, passes[f.ix])
    # Jobs by their 15-character id: EventLogFile writes JOB_ID in 15 characters,
    # BulkApiResultEventStore its JobId in 18.
    replayed_jobs = {ev["job_id"][:15]: es for ev, es, _ in planned
                     if es.kind in ("replayed", "candidate") and ev["job_id"]}  # fmt: skip
    listed = [(ev, es) for ev, es, _ in planned if es.kind in (*LISTED, "count", "aggregate")]
    job_rows: Counter[str] = Counter()
    rest: list[tuple[int, dict, EventScope]] = []
    for ix, (ev, es, _) in numbered:
        if es.kind != "bounded":
            continue
        if (job := (ev["job_id"] or "")[:15]) in replayed_jobs:
            es.kind, es.note = "covered", f"bulk job {ev['job_id']} is replayed from its query"
            es.upper_bound = None
            job_rows[job] += ev["rows"] or 0
        else:
            rest.append((ix, ev, es))
    in_sql = "SELECT ix, category, user_id, ts, object FROM scope_in WHERE plain"
    covered = twins(store, [ev for _, ev, _ in rest], listed, [ix for ix, _, _ in rest], in_sql)
    for ix, ev, es in rest:
        if (other := covered.pop(ix, None)) is not None:
            es.kind, es.upper_bound = "covered", None
            es.note = TWIN.format(category=ev["category"], other=other)
        elif es.upper_bound is not None and (base := snap.get(es.object or "")) is not None:
            es.upper_bound = min(es.upper_bound, base.rows or es.upper_bound)
    for job, rows in job_rows.items():
        bound_by_job_log(replayed_jobs[job], job, rows)
    _resolve_exact_hits(store, snap)
    _judged(store, snap, [(ix, es) for ix, (_, es, _) in numbered], covered)
    result = summarise(store, incident.id, snap, passes, by_event)
    snap.drop()
    return result


def _judged(
    store: Store, snap: Snapshot, scoped: Iterable[tuple[int, EventScope]], twin_of: dict[int, str]
) -> None:
    """Every event's verdict in ``scope_judged``, in the incident's order: those judged in
    Python, and the plain events judged here as :func:`classify` and the steps after it judge
    them: bounded by their logged rows (at most the snapshot file's records), or covered by
    their twin in another log (``twin_of``: their number → the twin's event id)."""
    store.execute(  # scope_verdicts' columns, numbered in the incident's order
        "CREATE OR REPLACE TEMP TABLE scope_judged AS "
        "SELECT 0::BIGINT AS ix, * EXCLUDE (incident_id) FROM scope_verdicts LIMIT 0"
    )
    store.insert("scope_judged", [
        (ix, e.event_id, parse_utc(e.ts), e.source_type, e.object, e.kind, e.records,
         e.rows_logged, e.upper_bound, e.fields, e.note) for ix, e in scoped
    ])  # fmt: skip
    store.execute("CREATE OR REPLACE TEMP TABLE scope_twins (ix BIGINT, other VARCHAR)")
    store.insert("scope_twins", list(twin_of.items()))
    # the records of each plain event object's snapshot file, as Snapshot.get finds it (in
    # any case, by Python's lower-casing: DuckDB's differs for a few letters, such as İ)
    objects = store.execute("SELECT DISTINCT object FROM scope_in WHERE plain").rows
    store.execute("CREATE OR REPLACE TEMP TABLE scope_files (object VARCHAR, n BIGINT)")
    store.insert("scope_files", [
        (o, f.rows or 0) for (o,) in objects if o is not None and (f := snap.get(o)) is not None
    ])  # fmt: skip
    twin = formatted(TWIN, category="p.category", other="t.other")
    store.execute(
        f"""INSERT INTO scope_judged
        SELECT p.ix, p.event_id, p.ts, p.source_type, p.object,
            CASE WHEN t.ix IS NULL THEN 'bounded' ELSE 'covered' END, 0, p.rows,
            CASE WHEN t.ix IS NOT NULL THEN NULL
                WHEN p.rows IS NOT NULL AND f.n > 0 THEN least(p.rows, f.n) ELSE p.rows END,
            []::VARCHAR[],
            CASE WHEN t.ix IS NOT NULL THEN {twin}
                WHEN p.object IS NULL THEN {lit(NO_OBJECT)} ELSE {lit(COUNT_ONLY)} END
        FROM scope_in p LEFT JOIN scope_twins t USING (ix)
        LEFT JOIN scope_files f ON f.object = p.object
        WHERE p.plain"""
    )


def replay_query(
    store: Store, snap: Snapshot, query: str, at: dt.datetime, rows: int | None = None,
    user_id: str | None = None,
) -> tuple[EventScope, set[str]]:  # fmt: skip
    """Replay one query as if logged at ``at``: what it exposed, and the record ids listed."""
    store.execute(SF_TS)
    _hit_tables(store)
    ev = {"event_id": "replay", "ts": at, "source_type": "replay", "object": None, "rows": rows,
          "record_ids": None, "fields": None, "query": query, "user_id": user_id}  # fmt: skip
    _, es, p = classify(ev, snap)
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
        g.conf = settle(g.ev, g.es, n)


def _bits(planned: list[Planned], ixs: list[int]) -> tuple[dict[int, int], bool]:
    """The bit each event sets in a record's mask (-1: the event lists no record), and whether
    bits are events. With at most 64 events that can expose records, one bit per such event:
    the mask is the record's exact evidence. Beyond that, one bit per distinct field list (a
    paged export is thousands of events with one field list); the record then keeps its first
    event, and the field set lists every event with its fields."""
    exposing = [(ix, es) for ix, (ev, es, p) in zip(ixs, planned, strict=True)
                if ev["record_ids"] or (p is not None and p.kind == "records")]  # fmt: skip
    bits = dict.fromkeys(ixs, -1)
    if len(exposing) <= MASK_BITS:
        for bit, (ix, _) in enumerate(exposing):
            bits[ix] = bit
        return bits, True
    lists: dict[tuple[str, ...], int] = {}
    for ix, es in exposing:
        bits[ix] = lists.setdefault(tuple(sorted(es.fields)), len(lists))
    if len(lists) > MASK_BITS:
        raise CrmwatchError(
            f"{len(exposing)} exposing events with {len(lists)} different field lists: more "
            f"than crmwatch can track per record ({MASK_BITS}); scope a narrower incident"
        )
    return bits, False


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
                es.note = join_notes(es.note, "LIMIT/OFFSET without ORDER BY: Salesforce returns "
                                "no defined subset")  # fmt: skip
        else:
            listed = _ranked_insert(store, cols, p, offset, returned, es)
    if not listed:
        if es.kind != "exact":  # the log's own row count, when it has one, is the bound
            es.kind = "bounded"
            es.upper_bound = ev["rows"] if ev["rows"] is not None else returned
        return
    if settle(ev, es, returned) == Confidence.CANDIDATE:
        store.execute(
            "UPDATE scope_hits SET conf = ? WHERE event_ix = ? AND conf = ?",
            [Confidence.CANDIDATE, ix, Confidence.REPLAYED],
        )


# Replays per statement: a scripted scraper's incident is tens of thousands of one-record
# queries, and a statement each cost more in planning and round trips than in scanning.
PLAIN_BATCH = 256


def _replay_plain(store: Store, plain: list[Pass], snap: Snapshot) -> None:
    """Replay queries without LIMIT or OFFSET: their hits are their whole result, as
    :func:`_replay` stores them one query at a time. Queries that only name ids are one join
    per snapshot file (:func:`_look_up`); the others run :data:`PLAIN_BATCH` to a statement."""
    lookups = [g for g in plain if g.plan.ids is not None]
    _look_up(store, lookups, snap)
    _settle_all(store, lookups)
    rest = [g for g in plain if g.plan.ids is None]
    for at in range(0, len(rest), PLAIN_BATCH):
        batch = rest[at : at + PLAIN_BATCH]
        selects = []
        for g in batch:
            f = snap.get(g.plan.object)
            assert f is not None
            selects.append(f"SELECT {g.ix}, {g.bit}, {f.ix}, t0.rowid, 1 {g.plan.source}")
        store.execute("INSERT INTO scope_hits " + " UNION ALL ".join(selects))
        _settle_all(store, batch)


def _settle_all(store: Store, replayed: list[Pass]) -> None:
    """:func:`settle` each replayed event with the count of its hits, read back in one
    query; the candidates' hits marked in one."""
    if not replayed:
        return
    counts = dict(
        store.execute(
            "SELECT event_ix, count(*) FROM scope_hits "
            "WHERE event_ix IN (SELECT unnest(?::INTEGER[])) GROUP BY event_ix",
            [[g.ix for g in replayed]],
        ).rows
    )
    candidate = Confidence.CANDIDATE
    candidates = [g.ix for g in replayed if settle(g.ev, g.es, counts.get(g.ix, 0)) == candidate]
    if candidates:
        store.execute(
            "UPDATE scope_hits SET conf = ? WHERE conf = ? "
            "AND event_ix IN (SELECT unnest(?::INTEGER[]))",
            [Confidence.CANDIDATE, Confidence.REPLAYED, candidates],
        )


def _look_up(store: Store, lookups: list[Pass], snap: Snapshot) -> None:
    """The hits of queries that only name ids (``Plan.ids``), as their filters would give
    them: each snapshot row whose 15-character id one of them names, once per query, kept
    only if created by the query's time when the file has a creation date. One join per
    snapshot file: a scraper's 20,000 one-record queries are one statement, not 20,000 scans."""
    if not lookups:
        return
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_lookups (event_ix INTEGER, bit INTEGER, "
        "snap SMALLINT, id15 VARCHAR, ran_at TIMESTAMP)"
    )
    rows = []
    for g in lookups:
        f = snap.get(g.plan.object)
        assert f is not None
        at = g.ev["ts"]
        rows += [(g.ix, g.bit, f.ix, i, at) for i in dict.fromkeys(
            x[:15] for x in g.plan.ids or ())]  # fmt: skip
    store.insert("scope_lookups", rows)
    for f in snap.files.values():
        mine = [g for g in lookups if snap.get(g.plan.object) is f]
        if not mine:
            continue
        key = f.column("Id")  # there: the plan compared it
        assert key is not None
        # every query on a file keeps records by creation time, or none (the file's column)
        when = f" AND coalesce(t0.{CREATED} <= q.ran_at, true)" if mine[0].plan.created else ""
        store.execute(
            f"""INSERT INTO scope_hits SELECT q.event_ix, q.bit, q.snap, t0.rowid, 1
            FROM {f.table} t0 JOIN scope_lookups q ON q.snap = {num(f.ix)}
                AND left(t0.{ident(key)}, 15) = q.id15{when}"""
        )
    store.execute("DROP TABLE scope_lookups")


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
        es.note = join_notes(es.note, "ORDER BY ties across the LIMIT/OFFSET cut: the returned "
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
