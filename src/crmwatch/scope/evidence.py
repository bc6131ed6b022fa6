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
# What the steps across events (scope.exposure) write on a bulk job's events: its bounded
# events covered by its replayed one, whose bound is what the job's own log counts beyond it.
JOB_REPLAYED = "bulk job {job} is replayed from its query"
JOB_LOG = (
    "the log of bulk job {job} counts {rows} rows, the snapshot gives {records}: up to {more} "
    "more are not listed"
)


TWIN_SECONDS = 5


def twins(store: Store, bounded: str, listed: str) -> None:
    """Bounded events that are a listed event seen by another log: an API EventLogFile row and
    its ApiEvent, a ReportExport row and its ReportEvent (same kind, same user, within
    TWIN_SECONDS, the same object where both name one). One to one — each listed event is the
    twin of at most one bounded event, nearest in time first — so two separate exports a
    second apart are never both taken for one. ``bounded``: SQL of ``(ix, category, user_id,
    ts, object)``; ``listed``: the same and ``event_id``, ``ix`` one numbering for both (the
    events' order in the incident). Writes ``scope_twins``: bounded ``ix`` → the twin's
    ``event_id`` as ``other``.

    A range join gives the candidate pairs; rounds of mutual best matches (each the other's
    nearest, ties by number) settle them, the globally nearest pair first."""
    store.execute("CREATE OR REPLACE TEMP TABLE scope_twins (ix BIGINT, other VARCHAR)")
    user = "left(coalesce({}.user_id, ''), 15)"
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE twin_pairs AS
        SELECT b.ix AS b, l.ix AS l, l.event_id AS other,
            abs(epoch_us(l.ts) - epoch_us(b.ts)) AS d
        FROM ({bounded}) b JOIN ({listed}) l ON l.category = b.category
            AND {user.format("l")} = {user.format("b")}
            AND l.ts BETWEEN b.ts - to_seconds({TWIN_SECONDS}) AND b.ts
                + to_seconds({TWIN_SECONDS})
            AND (b.object IS NULL OR l.object IS NULL OR b.object = l.object)"""
    )  # fmt: skip
    while True:
        store.execute(
            """CREATE OR REPLACE TEMP TABLE twin_round AS SELECT b, l, other FROM (SELECT *,
                row_number() OVER (PARTITION BY b ORDER BY d, l) AS rb,
                row_number() OVER (PARTITION BY l ORDER BY d, b) AS rl FROM twin_pairs)
            WHERE rb = 1 AND rl = 1"""
        )
        if not store.scalar("SELECT count(*) FROM twin_round"):
            break
        store.execute("INSERT INTO scope_twins SELECT b, other FROM twin_round")
        store.execute(
            "DELETE FROM twin_pairs WHERE b IN (SELECT b FROM twin_round) "
            "OR l IN (SELECT l FROM twin_round)"
        )
    store.execute("DROP TABLE twin_pairs")
    store.execute("DROP TABLE twin_round")


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


def joined_notes(a: str, b: str) -> str:
    """SQL of :func:`join_notes` of two SQL expressions, ``b`` never empty."""
    return f"(CASE WHEN coalesce({a}, '') = '' THEN {b} ELSE {a} || '; ' || {b} END)"
