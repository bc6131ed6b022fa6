"""What each data-access event of an incident shows, and how sure that is.

An event is read for the strongest evidence it carries (:class:`Confidence`): record ids in
the event itself (**exact**); its SOQL replayed on the snapshot (**replayed**, or
**candidate** when the log's row count disagrees); only an object and a row count
(**bounded**: an upper bound, no record listed); a count or aggregate that exposes numbers, not
records; an event another log already describes (**covered**). ``exposure`` runs the replays
this module plans; ``results`` stores and sums what they found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

import pyarrow as pa

from crmwatch import soql
from crmwatch.scope.fields import expand
from crmwatch.scope.replay import Plan, Unreplayable, plan
from crmwatch.scope.snapshot import Snapshot
from crmwatch.sql import lit
from crmwatch.store import Store
from crmwatch.timeutil import iso_z


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


@dataclass(slots=True)
class EventScope:
    """What one data-access event exposed, and how sure that is. (Slots: an incident can
    hold millions of them, and a per-instance dict was about 0.5 KB of each.)"""

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


LISTED = ("exact", "replayed", "candidate")

# What a bounded event's verdict says: written here and, for the plain events
# scope.exposure judges in SQL, there.
NO_OBJECT = "no object in the log"
COUNT_ONLY = "the log names the object and a row count only"
TWIN = "the same {category} as event {other} (another log of it)"


TWIN_SECONDS = 5


def twins(
    store: Store,
    bounded: list[dict],
    listed: list[tuple[dict, EventScope]],
    keys: list[int] | None = None,
    more: str | None = None,
) -> dict[int, str]:
    """Bounded events that are a listed event seen by another log: an API EventLogFile row and
    its ApiEvent, a ReportExport row and its ReportEvent (same kind, same user, within
    TWIN_SECONDS, the same object where both name one). One to one — each listed event is the
    twin of at most one bounded event, nearest in time first — so two separate exports a
    second apart are never both taken for one. Returns bounded key → twin's event id: each
    event's index in ``bounded``, or its entry in ``keys``. ``more``: SQL of bounded events
    judged in SQL, ``(ix, category, user_id, ts, object)``, keyed by ``ix`` (keys and ``ix``
    are one numbering: the events' order in the incident).

    A range join gives the candidate pairs; rounds of mutual best matches (each the other's
    nearest, ties by key) settle them, the globally nearest pair first."""
    if not (bounded or more) or not listed:
        return {}

    def table(rows: list[tuple[int, dict, str | None]]) -> pa.Table:
        return pa.table({
            "ix": pa.array([i for i, _, _ in rows], pa.int64()),
            "category": pa.array([e["category"] for _, e, _ in rows], pa.string()),
            "user15": pa.array([(e["user_id"] or "")[:15] for _, e, _ in rows], pa.string()),
            "ts": pa.array([e["ts"] for _, e, _ in rows], pa.timestamp("us")),
            "object": pa.array([o for _, _, o in rows], pa.string()),
        })  # fmt: skip

    numbers = keys if keys is not None else range(len(bounded))
    b = table([(k, ev, ev["object"]) for k, ev in zip(numbers, bounded, strict=True)])
    l_ = table([(i, ev, es.object) for i, (ev, es) in enumerate(listed)])
    rows = "SELECT * FROM twin_b" + (
        ""
        if more is None
        else " UNION ALL SELECT ix, category, "
        f"left(coalesce(user_id, ''), 15), ts, object FROM ({more})"
    )
    with store.registered("twin_b", b), store.registered("twin_l", l_):
        store.execute(
            f"""CREATE OR REPLACE TEMP TABLE twin_pairs AS
            SELECT b.ix AS b, l.ix AS l, abs(epoch_us(l.ts) - epoch_us(b.ts)) AS d
            FROM ({rows}) b JOIN twin_l l ON l.category = b.category AND l.user15 = b.user15
                AND l.ts BETWEEN b.ts - to_seconds({TWIN_SECONDS}) AND b.ts
                    + to_seconds({TWIN_SECONDS})
                AND (b.object IS NULL OR l.object IS NULL OR b.object = l.object)"""
        )  # fmt: skip
    matched: dict[int, str] = {}
    while True:
        rounds = store.execute(
            """SELECT b, l FROM (SELECT b, l,
                row_number() OVER (PARTITION BY b ORDER BY d, l) AS rb,
                row_number() OVER (PARTITION BY l ORDER BY d, b) AS rl FROM twin_pairs)
            WHERE rb = 1 AND rl = 1"""
        ).rows
        if not rounds:
            break
        for bi, li in rounds:
            matched[bi] = listed[li][0]["event_id"]
        store.execute(
            "DELETE FROM twin_pairs WHERE list_contains(?::BIGINT[], b) "
            "OR list_contains(?::BIGINT[], l)",
            [[bi for bi, _ in rounds], [li for _, li in rounds]],
        )
    store.execute("DROP TABLE twin_pairs")
    return matched


def settle(ev: dict, es: EventScope, returned: int) -> Confidence:
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
        es.note = join_notes(
            es.note,
            f"the log says {ev['rows']} rows, the snapshot gives {es.records}: up to "
            f"{es.upper_bound} more are not listed",
        )
    else:
        es.note = join_notes(
            es.note,
            f"replay found {returned} records, the log says {ev['rows']}: sharing rules or "
            "changes since the query; an upper bound",
        )
    return Confidence.CANDIDATE


def bound_by_job_log(es: EventScope, job: str, rows: int) -> None:
    """A replayed bulk job whose own log (the EventLogFile BulkApi rows) counts more rows than
    the replay lists: the snapshot lacks records, and the rest is the job's upper bound."""
    if rows > es.records:
        es.upper_bound = rows - es.records
        es.note = join_notes(
            es.note,
            f"the log of bulk job {job} counts {rows} rows, the snapshot gives {es.records}: "
            f"up to {es.upper_bound} more are not listed",
        )


def nothing_to_replay_on(ev: dict, es: EventScope, obj: str) -> None:
    """An event whose object's snapshot file has no records: replaying it would list nobody,
    which is not the answer. The log's own ids stay listed; otherwise the event is bounded by
    its logged row count, or by nothing (``unbounded_events``)."""
    note = f"the snapshot's {obj} file has no records to replay on"
    if es.kind == "exact":
        es.note = join_notes(es.note, note + ": only the records the log names are listed")
        if ev["rows"] is not None and ev["rows"] > es.records:
            es.upper_bound = ev["rows"] - es.records
        return
    es.kind, es.upper_bound, es.note = "bounded", ev["rows"], join_notes(es.note, note)


class Planned(NamedTuple):
    """An event of the incident, what it exposed so far, and the replay that will tell more
    (None: nothing to replay)."""

    event: dict
    scope: EventScope
    plan: Plan | None


def classify(ev: dict, snap: Snapshot) -> Planned:
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
            es.note = join_notes(f"{what}, no records", es.note)
            es.fields = [] if p.kind == "count" else es.fields
            return Planned(ev, es, None)
    if ev["record_ids"]:
        es.kind, es.records = "exact", len(ev["record_ids"])
        es.object = es.object or _object_of(ev["record_ids"][0])
        if not es.fields:
            es.note = "record page view: the fields shown are not logged"
    elif p is None:
        es.kind = "bounded"
        if obj is None:
            es.note = reason or NO_OBJECT
        else:
            es.note = reason or COUNT_ONLY
        es.upper_bound = ev["rows"]  # clamped to the snapshot's size once it is loaded
    return Planned(ev, es, p)


# Key prefixes of the standard customer objects (Salesforce "Standard Field Record ID Prefix").
_PREFIXES = {"003": "Contact", "001": "Account", "00Q": "Lead", "500": "Case"}


def _object_of(record_id: str) -> str | None:
    return _PREFIXES.get(record_id[:3])


def join_notes(a: str, b: str) -> str:
    return f"{a}; {b}" if a and b else a or b
