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
from dataclasses import dataclass
from pathlib import Path

from crmwatch.errors import CrmwatchError
from crmwatch.incidents import DATA_ACCESS, get_incident
from crmwatch.scope.evidence import (
    COUNT_ONLY,
    JOB_LOG,
    JOB_REPLAYED,
    LISTED,
    NO_OBJECT,
    TWIN,
    Confidence,
    EventScope,
    Planned,
    classify,
    join_notes,
    joined_notes,
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
# The other events are read into Python this many at a time, each classified and replayed
# (about 2 KB until its verdict is stored): a scraper's million queries are a hundred batches,
# never one list.
EVENTS_PER_BATCH = 10_000


def scope_incident(
    store: Store, incident_id: str, paths: list[Path], object_override: str | None = None
) -> ScopeResult:
    """Compute, store and return the scope of one incident against a snapshot."""
    incident = get_incident(store, incident_id)
    snap = Snapshot(store, paths, object_override)
    store.execute(SF_TS)
    # Every data-access event of the incident, numbered in time order. The plain ones (an
    # insider's two million report exports) are judged in SQL and never read into Python;
    # the others are read a batch at a time, classified and replayed (:class:`_Replays`).
    # Every verdict then goes to ``scope_judged``, where the steps that look across events
    # (bulk jobs, twins) settle them (:func:`_across_events`).
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
    _hit_tables(store)
    replays = _Replays(store, snap)
    snap.stable = store.scalar("SELECT count(*) FROM scope_in WHERE NOT plain") > EVENTS_PER_BATCH
    after = -1
    while events := store.execute(
        "SELECT * EXCLUDE (plain) FROM scope_in WHERE NOT plain AND ix > ? ORDER BY ix LIMIT ?",
        [after, EVENTS_PER_BATCH],
    ).dicts():
        after = events[-1]["ix"]
        replays.batch(events)
    replays.finish()
    _plain_verdicts(store)
    _across_events(store, snap)
    _resolve_exact_hits(store, snap)
    result = summarise(store, incident.id, snap, replays.passes, replays.by_event)
    snap.drop()
    return result


class _Replays:
    """The incident's events that Python reads, a batch at a time: each classified, its
    snapshot columns loaded, its ids and replays stored as hits, its verdict stored.

    The bit an event sets in a record's mask (:data:`MASK_BITS`) depends on every event: with
    at most 64 events that can expose records, one bit per such event (the mask is the
    record's exact evidence); beyond that, one bit per distinct field list (a paged export is
    thousands of events with one field list; the record then keeps its first event, and the
    field set lists every event with its fields). Each exposing event is stored with its
    number among them; once all are read, the numbers become field-list bits when there were
    more than 64. Replays that one scan could count together (``passes``, only with bits that
    are events) wait until then."""

    def __init__(self, store: Store, snap: Snapshot) -> None:
        self.store, self.snap = store, snap
        self.exposing = 0  # events that can expose records, so far
        self.lists: dict[tuple[str, ...], int] = {}  # each distinct field list's bit
        self.waiting: list[Pass] = []  # replays for one scan, while bits may be events
        self.passes: dict[int, list[Pass]] = {}  # per snapshot file, once bits are events
        store.execute("CREATE OR REPLACE TEMP TABLE scope_bitmap (k INTEGER, bit INTEGER)")
        store.execute(  # scope_verdicts' columns, numbered in the incident's order
            "CREATE OR REPLACE TEMP TABLE scope_judged AS "
            "SELECT 0::BIGINT AS ix, * EXCLUDE (incident_id) FROM scope_verdicts LIMIT 0"
        )

    @property
    def by_event(self) -> bool:
        return self.exposing <= MASK_BITS

    def batch(self, events: list[dict]) -> None:
        store, snap = self.store, self.snap
        ixs = [ev.pop("ix") for ev in events]
        planned = [classify(ev, snap) for ev in events]
        snap.load()  # the columns this batch's replays read, if an earlier one did not
        numbered = list(zip(ixs, planned, strict=True))
        bits = self._bits(numbered)
        store.insert("scope_exact", [(ix, bits[ix], es.object, rid) for ix, (ev, es, _) in numbered
                                     for rid in dict.fromkeys(ev["record_ids"] or ())])  # fmt: skip
        store.insert("scope_events", [(ix, bits[ix], ev["event_id"], ev["ts"], es.fields)
                                      for ix, (ev, es, _) in numbered])  # fmt: skip
        held: list[Pass] = []
        if not self.by_event:  # no longer one scan: replayed as the others are
            held, self.waiting = self.waiting, []
        plain = list(held)
        for ix, (ev, es, p) in numbered:
            if p is None or p.kind != "records":
                continue
            f = snap.get(p.object)
            assert f is not None
            if not f.rows:
                nothing_to_replay_on(ev, es, p.object)
            elif self.by_event and p.limit is None and not p.offset and " JOIN " not in p.tables:
                self.waiting.append(Pass(ix, bits[ix], p, ev, es))
            elif p.limit is None and not p.offset:
                plain.append(Pass(ix, bits[ix], p, ev, es))
            else:
                _replay(store, ix, bits[ix], ev, es, p, snap)
        _replay_plain(store, plain, snap)
        waiting = {g.ix for g in self.waiting}
        self._judged([(g.ix, g.es) for g in held]
                     + [(ix, es) for ix, (_, es, _) in numbered if ix not in waiting])  # fmt: skip

    def finish(self) -> None:
        """Once every event is read: the replays counted in one scan per file, and the
        exposing events' numbers made field-list bits when there were more than 64."""
        self.snap.load()  # for the plain events' bounds and the summary, if no batch did
        for g in self.waiting:
            f = self.snap.get(g.plan.object)
            assert f is not None
            self.passes.setdefault(f.ix, []).append(g)
        for f in self.snap.files.values():
            if f.ix in self.passes:
                _count_passes(self.store, f.table, self.passes[f.ix])
        self._judged([(g.ix, g.es) for g in self.waiting])
        self.waiting = []
        if self.by_event:
            return
        for table in ("scope_hits", "scope_exact", "scope_events"):
            self.store.execute(
                f"UPDATE {table} SET bit = m.bit FROM scope_bitmap m WHERE {table}.bit = m.k"
            )

    def _bits(self, numbered: list[tuple[int, Planned]]) -> dict[int, int]:
        """Each event's number among the exposing events (-1: it lists no record), and the
        bit of its field list, kept for :meth:`finish`."""
        bits: dict[int, int] = {}
        mapped = []
        for ix, (ev, es, p) in numbered:
            if not (ev["record_ids"] or (p is not None and p.kind == "records")):
                bits[ix] = -1
                continue
            bits[ix] = self.exposing
            mapped.append((self.exposing, self.lists.setdefault(tuple(sorted(es.fields)),
                                                                len(self.lists))))  # fmt: skip
            self.exposing += 1
            if not self.by_event and len(self.lists) > MASK_BITS:
                raise CrmwatchError(
                    f"more than {MASK_BITS} exposing events with more than {MASK_BITS} "
                    f"different field lists: more than crmwatch can track per record "
                    f"({MASK_BITS}); scope a narrower incident"
                )
        self.store.insert("scope_bitmap", mapped)
        return bits

    def _judged(self, scoped: list[tuple[int, EventScope]]) -> None:
        self.store.insert("scope_judged", [
            (ix, e.event_id, parse_utc(e.ts), e.source_type, e.object, e.kind, e.records,
             e.rows_logged, e.upper_bound, e.fields, e.note) for ix, e in scoped
        ])  # fmt: skip


def _plain_verdicts(store: Store) -> None:
    """The plain events, stored as events that set no bit, and their verdicts as
    :func:`classify` gives them: bounded by their logged rows; the bound clamped and twins
    found with the others' (:func:`_across_events`)."""
    store.execute(
        "INSERT INTO scope_events SELECT ix, -1, event_id, ts, []::VARCHAR[] FROM scope_in "
        "WHERE plain"
    )
    store.execute(
        f"""INSERT INTO scope_judged
        SELECT ix, event_id, ts, source_type, object, 'bounded', 0, rows, rows, []::VARCHAR[],
            CASE WHEN object IS NULL THEN {lit(NO_OBJECT)} ELSE {lit(COUNT_ONLY)} END
        FROM scope_in WHERE plain"""
    )


def _across_events(store: Store, snap: Snapshot) -> None:
    """What each verdict owes to the others, settled in ``scope_judged``:

    - a bounded event of a bulk job replayed from its query (the job's last replayed event)
      is covered by it, and the rows the job's own log counts beyond what the replay listed
      are the replayed event's upper bound;
    - another bounded event is covered by its twin in another log (:func:`twins`);
    - the bound of the others is at most the records of the object's snapshot file."""
    store.execute(
        """CREATE OR REPLACE TEMP TABLE scope_jobs AS
        SELECT left(i.job_id, 15) AS job, max(j.ix) AS ix FROM scope_judged j JOIN scope_in i
            USING (ix)
        WHERE j.kind IN ('replayed', 'candidate') AND coalesce(i.job_id, '') <> ''
        GROUP BY ALL"""
    )
    store.execute(  # the bounded events of those jobs, and the rows each logged
        """CREATE OR REPLACE TEMP TABLE scope_job_events AS
        SELECT j.ix, b.job, b.ix AS by_ix, coalesce(i.rows, 0) AS rows
        FROM scope_judged j JOIN scope_in i USING (ix) JOIN scope_jobs b
            ON b.job = left(i.job_id, 15)
        WHERE j.kind = 'bounded'"""
    )
    covered = formatted(JOB_REPLAYED, job="i.job_id")
    store.execute(
        f"""UPDATE scope_judged SET kind = 'covered', upper_bound = NULL, note = {covered}
        FROM scope_job_events c JOIN scope_in i USING (ix) WHERE scope_judged.ix = c.ix"""
    )
    logged = formatted(
        JOB_LOG, job="r.job", rows="CAST(r.rows AS VARCHAR)",
        records="CAST(scope_judged.records AS VARCHAR)",
        more="CAST(r.rows - scope_judged.records AS VARCHAR)",
    )  # fmt: skip
    store.execute(
        f"""UPDATE scope_judged SET upper_bound = r.rows - scope_judged.records,
            note = {joined_notes("scope_judged.note", logged)}
        FROM (SELECT job, by_ix, sum(rows) AS rows FROM scope_job_events GROUP BY ALL) r
        WHERE scope_judged.ix = r.by_ix AND r.rows > scope_judged.records"""
    )
    bounded = (
        "SELECT j.ix, i.category, i.user_id, i.ts, i.object FROM scope_judged j "
        "JOIN scope_in i USING (ix) WHERE j.kind = 'bounded'"
    )
    listed = (
        "SELECT j.ix, i.category, i.user_id, i.ts, j.object, j.event_id FROM scope_judged j "
        f"JOIN scope_in i USING (ix) WHERE j.kind IN {lit_list((*LISTED, 'count', 'aggregate'))}"
    )
    twins(store, bounded, listed)  # → scope_twins (ix, other)
    twin = formatted(TWIN, category="i.category", other="t.other")
    store.execute(
        f"""UPDATE scope_judged SET kind = 'covered', upper_bound = NULL, note = {twin}
        FROM scope_twins t, scope_in i WHERE scope_judged.ix = t.ix AND i.ix = t.ix"""
    )
    # the records of each bounded object's snapshot file, as Snapshot.get finds it (in any
    # case, by Python's lower-casing: DuckDB's differs for a few letters, such as İ)
    objects = store.execute(
        "SELECT DISTINCT object FROM scope_judged WHERE kind = 'bounded' AND object IS NOT NULL "
        "AND upper_bound IS NOT NULL"
    ).rows
    store.execute("CREATE OR REPLACE TEMP TABLE scope_files (object VARCHAR, n BIGINT)")
    store.insert("scope_files", [
        (o, f.rows) for (o,) in objects if (f := snap.get(o)) is not None and f.rows
    ])  # fmt: skip
    store.execute(
        """UPDATE scope_judged SET upper_bound = least(upper_bound, f.n) FROM scope_files f
        WHERE scope_judged.kind = 'bounded' AND scope_judged.object = f.object
            AND scope_judged.upper_bound IS NOT NULL"""
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


def _replay(
    store: Store, ix: int, bit: int, ev: dict, es: EventScope, p: Plan, snap: Snapshot
) -> None:
    """Run a compiled query; record its hits, or say why no list can be given."""
    f = snap.get(p.object)
    assert f is not None
    hit = f"{ix}, {bit}, {f.ix}"
    cols = f"{hit}, t0.rowid, 1"
    offset = p.offset or 0
    listed = True
    if p.limit is None and not offset:
        returned = store.scalar(f"INSERT INTO scope_hits SELECT {cols} {p.source}")
    else:
        # Matches past offset + limit + 1 change nothing: neither counted nor ranked (a
        # scraper paging by id matches most of the file on every page).
        cap = "" if p.limit is None else f" LIMIT {offset + p.limit + 1}"
        if p.order:
            matched = _ranked(store, p, cap)
        else:
            matched = store.scalar(f"SELECT count(*) FROM (SELECT 1 {p.source}{cap})")
        returned = max(0, min(matched - offset, p.limit if p.limit is not None else matched))
        if not p.order:
            listed = offset == 0 and matched <= (p.limit or 0)
            if listed:
                store.execute(f"INSERT INTO scope_hits SELECT {cols} {p.source}")
            else:
                es.note = join_notes(es.note, "LIMIT/OFFSET without ORDER BY: Salesforce returns "
                                "no defined subset")  # fmt: skip
        else:
            listed = _ranked_insert(store, hit, offset, returned, es)
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


def _ranked(store: Store, p: Plan, cap: str) -> int:
    """``scope_ranked``: the query's matches in SOQL order (``cap``: only the first ones, a
    top-N rather than a sort of every match), each with its row number and rank; how many.
    The ranks are those in the whole result: every match before one of them is among them."""
    keys = [_sort_key(store, col, p) for col, _, _ in p.order]
    order = ", ".join(
        f"_k{i} {'DESC' if desc else 'ASC'} NULLS {'FIRST' if nulls else 'LAST'}"
        for i, (_, desc, nulls) in enumerate(p.order)
    )
    named = ", ".join(f"{k} AS _k{i}" for i, k in enumerate(keys))
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE scope_ranked AS
        SELECT _rid, row_number() OVER w AS rn, rank() OVER w AS rk
        FROM (SELECT t0.rowid AS _rid, {named} {p.source} ORDER BY {order}{cap})
        WINDOW w AS (ORDER BY {order})"""
    )
    return store.scalar("SELECT count(*) FROM scope_ranked")


def _ranked_insert(store: Store, hit: str, offset: int, returned: int, es: EventScope) -> bool:
    """Insert rows offset+1 … offset+returned of ``scope_ranked``, unless ties cross the cut.
    ``hit``: the columns of a hit before the row id."""
    lo, hi = offset + 1, offset + returned
    tied = store.scalar(
        f"SELECT count(*) FROM scope_ranked WHERE (rn = {lo} AND rk < {lo}) "
        f"OR (rn = {hi + 1} AND rk <= {hi})"
    )
    if tied and returned:
        es.note = join_notes(es.note, "ORDER BY ties across the LIMIT/OFFSET cut: the returned "
                        "subset is not defined")  # fmt: skip
        return False
    store.execute(
        f"INSERT INTO scope_hits SELECT {hit}, _rid, 1 FROM scope_ranked "
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
