"""A scope's results: the exposed records stored once per record (``exposures``, with their
field sets and events), and the summary a person reads (:class:`ScopeResult`, in ``scopes``).

A record reached by several events is one exposure with the union of its fields, its first
exposure time and its strongest confidence. A customer is the record for Contact, Lead and
Account, and the case's contact for Case. The store holds record ids, field names and coarse
jurisdiction — never contact details.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from typing import TYPE_CHECKING, Any, overload

import pyarrow as pa
import pycountry

from crmwatch.scope.evidence import LISTED, Confidence, EventScope
from crmwatch.scope.fields import category
from crmwatch.scope.snapshot import Snapshot, no_channel
from crmwatch.sql import lit, lit_list
from crmwatch.store import Store
from crmwatch.timeutil import iso_z, json_default

if TYPE_CHECKING:
    from crmwatch.scope.exposure import Pass


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
    events: Verdicts
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        body = asdict(replace(self, events=Verdicts.none()))
        body["events"] = [asdict(e) for e in self.events]
        return body


class Verdicts(Sequence[EventScope]):
    """Every scoped event's verdict, in the incident's order: the rows of ``scope_judged``
    kept as Arrow columns (about a hundred bytes an event; an insider's two million exports
    as objects were gigabytes), made :class:`EventScope` objects only as they are read."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    @classmethod
    def none(cls) -> Verdicts:
        return cls(pa.table({}))

    def __len__(self) -> int:
        return self.table.num_rows

    @overload
    def __getitem__(self, i: int) -> EventScope: ...
    @overload
    def __getitem__(self, i: slice) -> list[EventScope]: ...
    def __getitem__(self, i: int | slice) -> EventScope | list[EventScope]:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                return [self[k] for k in range(start, stop, step)]
            return list(_verdicts(self.table.slice(start, max(0, stop - start))))
        k = i + len(self) if i < 0 else i
        if not 0 <= k < len(self):
            raise IndexError(i)
        return next(_verdicts(self.table.slice(k, 1)))

    def __iter__(self) -> Iterator[EventScope]:
        return _verdicts(self.table)

    def dicts(self) -> Iterator[dict[str, Any]]:
        """Each verdict as ``asdict`` of it gives it, without making the object."""
        return _rows(self.table)

    def kinds(self, start: int = 0) -> Counter[str]:
        """How many verdicts of each kind, from the ``start``-th on."""
        if start >= len(self):
            return Counter()
        counts = self.table.column("kind").slice(start).value_counts()
        return Counter({c["values"]: c["counts"] for c in counts.to_pylist()})


def _verdicts(table: pa.Table) -> Iterator[EventScope]:
    for row in _rows(table):
        yield EventScope(**row)


def _rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    """The verdicts as ``asdict`` of their EventScope gives them (the columns are its fields,
    in its order)."""
    for batch in table.to_batches(max_chunksize=10_000):
        for row in batch.to_pylist():
            row["ts"] = iso_z(row["ts"]) or ""
            yield row


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


# Countries whose breach laws differ by state or province: their subdivision is kept.
REGION_COUNTRIES = ("US", "CA")


@cache
def region(country: str | None, raw: str | None) -> str | None:
    """The code of a US state or Canadian province (USPS / Canada Post, as in ISO 3166-2),
    given as code or name; None elsewhere. Stored in the exposures' ``us_state`` column."""
    if country not in REGION_COUNTRIES or not raw or not raw.strip():
        return None
    text = raw.strip()
    sub = pycountry.subdivisions.get(code=f"{country}-{text.upper()}")
    if sub is not None:
        return text.upper()
    for s in pycountry.subdivisions.get(country_code=country):
        if s.name.lower() == text.lower():
            return s.code.split("-")[1]
    return None


def summarise(
    store: Store, iid: str, snap: Snapshot, passes: dict[int, list[Pass]], by_event: bool
) -> ScopeResult:
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
                    j.country, j.us_state, {who.channel}, {who.language}
                FROM {f.table} t0 {join} {who.join}
                LEFT JOIN scope_jur j ON j.country_raw IS NOT DISTINCT FROM {who.country}
                    AND j.state_raw IS NOT DISTINCT FROM {who.state}
                WHERE {" OR ".join(keep)}""",
                [iid],
            )
        store.execute(
            f"""INSERT INTO exposures SELECT ?, x.object, x.record_id, x.mask, x.first // 4,
                {conf}, NULL, NULL, NULL, 'unknown', NULL FROM scope_orphans x""",
            [iid],
        )
        _fieldsets(store, iid)
        summary = _summary(store, iid, snap)
        # The verdict of every event in a table of its own, the summary without them: an
        # incident of a million queries would otherwise store (and every reader parse) a
        # 280 MB summary.
        store.execute("DELETE FROM scope_verdicts WHERE incident_id = ?", [iid])
        store.execute(
            "INSERT INTO scope_verdicts SELECT ?, event_id, ts, source_type, object, kind, "
            "records, rows_logged, upper_bound, fields, note FROM scope_judged",
            [iid],
        )
        # converted without its events: asdict copies each one (half of scoping an
        # insider's 500,000 exports went into copies thrown away here)
        body = replace(summary, events=Verdicts.none()).to_dict()
        del body["events"]
        store.execute(
            "INSERT INTO scopes VALUES (?, now()::TIMESTAMP, ?) ON CONFLICT (incident_id) "
            "DO UPDATE SET scoped_at = excluded.scoped_at, summary = excluded.summary",
            [iid, json.dumps({**body, "events_scoped": len(summary.events)},
                             default=json_default)],
        )  # fmt: skip
    return summary


def _fieldsets(store: Store, iid: str) -> None:
    """One row per distinct mask: its fields (the union of its events' fields), its evidence
    events in the incident's order and its first event; only the events that set a bit (the
    others, bounded or counted, are in no field set)."""
    store.execute(
        """INSERT INTO exposure_fieldsets
        SELECT $iid, m.mask, list_sort(list_distinct(flatten(list(e.fields)))),
            list(e.event_id ORDER BY e.event_ix), min(e.event_ix)
        FROM (SELECT DISTINCT fieldset AS mask FROM exposures WHERE incident_id = $iid) m
        JOIN scope_events e ON e.bit >= 0 AND (m.mask >> e.bit) & 1 = 1
        GROUP BY m.mask""",
        {"iid": iid},
    )


def _jurisdictions(store: Store, snap: Snapshot) -> None:
    """``scope_jur``: every raw country / state spelling in the snapshot → ISO codes."""
    raws: set[tuple] = set()
    for f in snap.files.values():
        who = snap.person(f.object, "t0")
        if who.country == "NULL":
            continue
        sql = f"SELECT DISTINCT {who.country}, {who.state} FROM {f.table} t0 {who.join}"
        raws |= set(store.execute(sql).rows)
    jur = [(c, s, country_code(c), region(country_code(c), s)) for c, s in raws]
    store.execute(
        "CREATE OR REPLACE TEMP TABLE scope_jur (country_raw VARCHAR, state_raw VARCHAR, "
        "country VARCHAR, us_state VARCHAR)"
    )
    store.insert("scope_jur", jur)


def _summary(store: Store, iid: str, snap: Snapshot) -> ScopeResult:
    """The summary, from the exposures and every event's verdict (``scope_judged``)."""
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
    # bounded exposures still expose their fields
    all_fields.update(
        f for (f,) in store.execute("SELECT DISTINCT unnest(fields) FROM scope_judged").rows
    )
    by_object = dict(store.execute(
        "SELECT object, count(*) FROM exposures WHERE incident_id = ? GROUP BY 1 "
        "ORDER BY 2 DESC, 1", [iid]).rows)  # fmt: skip
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
    notes = sorted(
        n for (n,) in store.execute("SELECT DISTINCT note FROM scope_judged WHERE note <> ''").rows
    )
    bounded, unbounded = store.execute(
        f"""SELECT coalesce(sum(upper_bound) FILTER (WHERE kind IN
                {lit_list(("bounded", *LISTED))}), 0),
            coalesce(list(event_id ORDER BY ix) FILTER (WHERE kind = 'bounded'
                AND upper_bound IS NULL), [])
        FROM scope_judged"""
    ).rows[0]
    channelless = [f for f in snap.files.values() if no_channel(f, by_object)]
    return ScopeResult(
        incident_id=iid,
        affected_customers=sum(by_conf.values()),
        affected_by_confidence={c.label: by_conf.get(c.value, 0) for c in Confidence},
        bounded_upper_bound=int(bounded),
        fields=sorted(all_fields),
        by_country=dict(countries),
        by_us_state=dict(states),
        by_category=dict(sorted(by_category.items(), key=lambda kv: (-kv[1], kv[0]))),
        categories=sorted({category(f) for f in all_fields if f.lower() != "id"}),
        records_by_object=by_object,
        first_exposure_at=iso_z(first),
        last_exposure_at=iso_z(last),
        unbounded_events=unbounded,
        snapshot={
            f.object: {"path": str(f.path), "records": f.rows}
            | ({"no_channel": True} if f in channelless else {})
            for f in snap.files.values()
        },
        events=Verdicts(
            store.arrow(
                "SELECT event_id, ts, source_type, object, kind, records, rows_logged, "
                "upper_bound, fields, note FROM scope_judged ORDER BY ix"
            )
        ),
        notes=notes
        + [
            f"{f.path.name} has no e-mail or street column: notify lists its customers for "
            "substitute notice"
            for f in channelless
        ],
    )


def stored_scope(store: Store, incident_id: str) -> dict[str, Any] | None:
    """The summary of the incident's last scope, without its events' verdicts (those are
    :func:`verdict_page`'s)."""
    row = store.execute(
        "SELECT summary FROM scopes WHERE upper(incident_id) = upper(?)", [incident_id]
    ).first()
    if row is None:
        return None
    summary = json.loads(row[0])
    # a store of layout 4 kept them in the summary
    old = summary.pop("events", None)
    if old is not None:
        summary["events_scoped"] = len(old)
    return summary


def verdict_page(store: Store, incident_id: str, offset: int, limit: int) -> list[dict]:
    """A page of what each scoped event exposed (:class:`EventScope`), in time order."""
    rows = store.execute(
        "SELECT event_id, ts, source_type, object, kind, records, rows_logged, upper_bound, "
        "fields, note FROM scope_verdicts WHERE incident_id = $id "
        "ORDER BY ts, event_id LIMIT $limit OFFSET $offset",
        {"id": incident_id, "limit": limit, "offset": offset},
    ).dicts()
    if rows or offset:
        return rows
    # a store of layout 4: the verdicts are in the summary (parsed once more, here only)
    row = store.execute("SELECT summary FROM scopes WHERE incident_id = ?", [incident_id]).first()
    return (json.loads(row[0]).get("events") or [])[:limit] if row else []


def exposed_page(store: Store, incident_id: str, key: str, offset: int, limit: int
                 ) -> list[dict[str, Any]]:  # fmt: skip
    """One page of the incident's exposed records, first exposed first. Each carries ``ref``,
    a keyed hash of its record id: a page can name a record to reveal without the id itself
    being in the page (``key`` is the console's secret; see :func:`exposed_by_ref`)."""
    return store.execute(
        """SELECT object, record_id, customer_id, confidence, country, us_state, fields,
            first_exposed_at, sha256($key || object || ':' || record_id) AS ref
        FROM exposure_details WHERE incident_id = $id
        ORDER BY first_exposed_at, object, record_id LIMIT $limit OFFSET $offset""",
        {"id": incident_id, "key": key, "limit": limit, "offset": offset},
    ).dicts()


def exposed_by_ref(store: Store, incident_id: str, key: str, ref: str) -> dict[str, Any] | None:
    """The exposed record whose ``ref`` (from :func:`exposed_page`) is ``ref``."""
    rows = store.execute(
        """SELECT object, record_id, customer_id, confidence, country, us_state, fields,
            first_exposed_at
        FROM exposure_details WHERE incident_id = $id
            AND sha256($key || object || ':' || record_id) = $ref""",
        {"id": incident_id, "key": key, "ref": ref},
    ).dicts()
    return rows[0] if rows else None
