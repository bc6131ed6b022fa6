"""Run rules over the store and write alerts, idempotently.

A correlation raises one alert per firing span and group; a volume baseline one per group and
bucket over threshold. A plain detection rule (new-terms ones included) raises one alert per
principal and login session (``login_key``; per hour for events without one), so a suspicious
session is one alert, not one per API call. ``alert_id`` hashes the rule, the principal and the
first evidence event: re-running ``detect`` over the same events adds nothing. Alerts are built
and stored in SQL.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb

from crmwatch.detect.baseline import (
    Window,
    parse_baseline,
    selected_sql,
    travel_sql,
    volume_sql,
)
from crmwatch.detect.context import prepare
from crmwatch.detect.correlation import correlation_sql
from crmwatch.detect.frozen import is_correlation, is_rule, rule_errors
from crmwatch.detect.rules import LEVEL_RISK, Detection, RuleFile
from crmwatch.detect.where import NEED_COLUMNS, Needs, any_of, may_select, rule_needs, rule_where
from crmwatch.errors import CrmwatchError
from crmwatch.schema import principal_sql
from crmwatch.sql import lit
from crmwatch.store import Store, trace
from crmwatch.timeutil import iso_z


@dataclass
class Alert:
    alert_id: str
    rule_id: str
    title: str
    level: str
    tags: list[str]
    principal: str | None
    first_ts: dt.datetime
    last_ts: dt.datetime
    event_ids: list[str]
    key_fields: dict[str, Any] = field(default_factory=dict)
    # When the rule's condition was first met: the matching event of a detection rule, the
    # event that completed a correlation or took a volume bucket over its threshold. A
    # streaming deployment would have alerted then; time-to-detect is measured to it.
    fired_at: dt.datetime | None = None
    risk: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["first_ts"], d["last_ts"] = iso_z(self.first_ts), iso_z(self.last_ts)
        d["fired_at"] = iso_z(self.fired_at)
        return d

    def __repr__(self) -> str:
        when = f"{self.first_ts:%Y-%m-%d %H:%M}"
        return f"<Alert {self.rule_id} {self.principal} {when} ({len(self.event_ids)} events)>"


ALERT_COLUMNS = (
    "alert_id, rule_id, title, level, tags, principal, first_ts, last_ts, event_ids, key_fields, "
    "fired_at, risk"
)


def alert_sql(rf: Detection, window: Window) -> tuple[str, list]:
    """SQL (and its parameters) giving one row per alert of a detection, in the ``alerts``
    table's columns. Alerts stay in DuckDB: a rule that fires on millions of events costs a
    query, not a million Python objects."""
    main = rf.rule
    correlation = is_correlation(main)
    b = None if correlation else parse_baseline(main)
    if correlation:
        n_groups = len(main.group_by or [])
        base = f"SELECT * FROM ({correlation_sql(main, window)}) WHERE first_ts IS NOT NULL"
        base += f" AND {window.sql('last_ts')}"
        principal = _joined_groups(n_groups)
        fields = "to_json({'count': n})"
    elif b is not None and b.kind == "travel":
        base = travel_sql(rule_where(main), b, window)
        principal = _joined_groups(len(b.group_by))
        fields = "to_json({'from': from_country, 'to': to_country, 'km': km, 'kmh': kmh})"
    elif b is not None and b.kind == "volume":
        base = volume_sql(rule_where(main), b, window)
        principal = _joined_groups(len(b.group_by))
        fields = (
            "to_json({'total': total, 'baseline': baseline, 'threshold': threshold, "
            "'bucket_start': b})"
        )
    else:
        terms = ", list(DISTINCT new_term ORDER BY new_term) AS new_terms" if b is not None else ""
        base = (
            # One alert per principal and session; events without a session (LoginHistory,
            # OauthToken) are grouped by hour, so one alert never spans days.
            f"SELECT {principal_sql()} AS principal, login_key, "
            "CASE WHEN login_key IS NULL THEN time_bucket(INTERVAL 1 HOUR, ts) END AS _hour, "
            "min(ts) AS first_ts, "
            "max(ts) AS last_ts, list(event_id ORDER BY ts, event_id) AS event_ids, "
            "list(DISTINCT src_ip ORDER BY src_ip) FILTER (WHERE src_ip IS NOT NULL) AS src_ips, "
            "list(DISTINCT object ORDER BY object) FILTER (WHERE object IS NOT NULL) AS objects, "
            f"sum(rows) AS rows{terms} FROM ({selected_sql(main, window)}) GROUP BY ALL"
        )
        principal = "principal"
        # the lists sorted: an alert's fields are the same bytes at every run
        fields = (
            "to_json({'src_ips': coalesce(src_ips, []), 'objects': coalesce(objects, []), "
            "'rows': rows, 'login_key': login_key"
            + (", 'new_terms': new_terms" if b is not None else "")
            + "})"
        )
    timed = correlation or (b is not None and b.kind != "new_terms")
    fired = "fired_at" if timed else "first_ts"
    sql = (
        f"SELECT md5(concat(?, '|', coalesce({principal}, 'None'), '|', event_ids[1])) "
        f"AS alert_id, ? AS rule_id, ? AS title, ? AS level, ?::VARCHAR[] AS tags, "
        f"{principal} AS principal, first_ts, last_ts, event_ids, {fields}::JSON AS key_fields, "
        f"{fired} AS fired_at, {int(rf.risk)} AS risk "
        f"FROM ({base})"
    )
    params = [rf.rule_id, rf.rule_id, main.title, rf.level, [str(t) for t in (main.tags or [])]]
    return _with_context_levels(sql, rf), params


def _with_context_levels(sql: str, rf: Detection) -> str:
    """Give each alert the first of the rule's ``levels:`` its evidence events meet (all of
    them, or any), and that level's default risk; alerts meeting none keep the rule's own."""
    levels = rf.context_levels
    if not levels:
        return sql
    tests = ", ".join(
        f"bool_{'and' if c.quantifier == 'all' else 'or'}(coalesce(({c.where}), false)) AS c{i}"
        for i, c in enumerate(levels)
    )
    level = " ".join(f"WHEN _ctx.c{i} THEN {lit(c.level)}" for i, c in enumerate(levels))
    risk = " ".join(f"WHEN _ctx.c{i} THEN {LEVEL_RISK[c.level]}" for i, c in enumerate(levels))
    return f"""SELECT * FROM (
WITH _a AS ({sql}),
_ev AS (SELECT alert_id, unnest(event_ids) AS event_id FROM _a),
_ctx AS (SELECT _ev.alert_id, {tests} FROM _ev JOIN events USING (event_id) GROUP BY ALL)
SELECT _a.* REPLACE (CASE {level} ELSE _a.level END AS level,
    CASE {risk} ELSE _a.risk END AS risk)
FROM _a LEFT JOIN _ctx USING (alert_id))"""


def _joined_groups(n: int) -> str:
    """A correlation's or baseline's group values as one principal string (NULL if none)."""
    if n == 0:
        return "NULL::VARCHAR"
    return "concat_ws('/', " + ", ".join(f"g{i}::VARCHAR" for i in range(n)) + ")"


def _alerts(rows: list[dict]) -> list[Alert]:
    return [_alert(r) for r in rows]


def _alert(row: dict) -> Alert:
    return Alert(**{**row, "key_fields": json.loads(row["key_fields"] or "{}")})


def run_rule(
    store: Store, rf: RuleFile, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> list[Alert]:
    """The alerts one rule file raises over the store (nothing is written), all of its
    detections together."""
    prepare(store)
    alerts: list[Alert] = []
    for d in rf.detections:
        sql, params = alert_sql(d, Window(since, until))
        alerts += _alerts(store.execute(f"{sql} ORDER BY first_ts, alert_id", params).dicts())
    return sorted(alerts, key=lambda a: (a.first_ts, a.alert_id))


def stored_alerts(store: Store, table: str = "alerts") -> list[Alert]:
    """Every alert in the store (or in this run's ``run_alerts``), oldest first."""
    return list(iter_alerts(store, table))


def iter_alerts(store: Store, table: str = "alerts") -> Iterator[Alert]:
    """The same alerts, read a batch at a time: printing or exporting every alert of a big
    run never holds them all (196k alerts naming 10M events in the detect benchmark)."""
    for r in store.stream(f"SELECT {ALERT_COLUMNS} FROM {table} ORDER BY first_ts, alert_id"):
        yield _alert(r)


@dataclass
class RuleRun:
    """What one detection raised in a ``detect`` run, or why it could not run."""

    file: RuleFile
    detection: Detection | None  # None: the file itself could not be loaded
    alerts: int = 0
    error: str | None = None

    @property
    def title(self) -> str:
        return self.detection.title if self.detection else self.file.path.name

    @property
    def level(self) -> str:
        return self.detection.level if self.detection else "-"


def detection_needs(d: Detection) -> Needs:
    """What an event needs for the detection to select it (where.rule_needs): for a
    correlation, what one of the rules it counts needs."""
    main = d.rule
    if is_correlation(main):
        rules = [ref.rule for ref in main.rules]
        if not all(is_rule(r) for r in rules):
            return {}
        return any_of([rule_needs(r) for r in rules])
    return rule_needs(main)


def stored_combinations(store: Store) -> set[tuple[str | None, ...]]:
    """Every combination of NEED_COLUMNS' values the store's events have, lower-cased by
    DuckDB as the rules' conditions compare them (one scan of three columns: 1 ms on an
    empty store, 55 ms over 10M events)."""
    columns = ", ".join(f"lower({c})" for c in NEED_COLUMNS)
    return set(store.execute(f"SELECT DISTINCT {columns} FROM events_base").rows)


def detect(
    store: Store,
    rule_files: list[RuleFile],
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> list[RuleRun]:
    """Run every rule; store its alerts (those already stored are kept as they are). This
    run's alerts, new and old, stay in the temporary table ``run_alerts`` until the next run
    on the same connection.

    One rule never stops the others: a file that could not be loaded or compiled, and a
    detection whose query fails, are returned with their error, and the rest run.

    A detection that needs a source, source type or category no stored event has
    (:func:`detection_needs`) raises nothing, so its query is not run, only bound by DuckDB
    with the others of its kind, so that a rule DuckDB refuses (``rows: lots`` compares a
    number as text) fails as when it ran: if they do not bind, each is run as any other. A
    cached pack's queries were bound when it was cached (:func:`mark_bound`).
    Planning and running a query costs DuckDB some 7 ms however few events it reads
    (start-up, docs/design.md)."""
    window = Window(since, until)
    combinations = stored_combinations(store)
    runs: list[RuleRun] = []
    queries: list[tuple[RuleRun, str, list]] = []
    unmet: list[tuple[RuleRun, str, list]] = []
    for rf in rule_files:
        if rf.errors:
            runs.append(RuleRun(rf, None, error=rf.errors[0]))
            continue
        for d in rf.detections:
            run = RuleRun(rf, d)
            runs.append(run)
            try:
                sql, params = alert_sql(d, window)
            except (CrmwatchError, *rule_errors(), NotImplementedError) as e:
                _failed(run, e)
                continue
            if may_select(detection_needs(d), combinations):
                queries.append((run, sql, params))
            else:
                trace(f"rule {d.rule_id}: no stored event has what it needs, not run")
                unmet.append((run, sql, params))
    unbound = [q for q in unmet if not q[0].detection.rule.__dict__.get(BOUND)]
    prepare(store, [sql for _, sql, _ in queries + unbound])  # what is run or bound reads
    store.execute(
        f"CREATE OR REPLACE TEMP TABLE run_alerts AS SELECT {ALERT_COLUMNS} FROM alerts WHERE false"
    )
    if unbound and not _binds(store, [(sql, params) for _, sql, params in unbound]):
        queries += unbound  # one of them fails: which, each one's own run says
    for run, sql, params in queries:
        try:
            run.alerts = store.scalar(f"INSERT INTO run_alerts {sql}", params)
        except (CrmwatchError, *rule_errors(), NotImplementedError) as e:
            _failed(run, e)
    with store.transaction():
        store.execute(
            f"INSERT INTO alerts BY NAME SELECT DISTINCT ON (alert_id) {ALERT_COLUMNS}, "
            "now()::TIMESTAMP AS detected_at FROM run_alerts ORDER BY alert_id "
            "ON CONFLICT DO NOTHING"
        )
    return runs


def _failed(run: RuleRun, e: Exception) -> None:
    assert run.detection is not None
    trace(f"rule {run.detection.rule_id} failed: {e}")
    run.error = str(e).split("\n", 1)[0]


# Kept on a detection's rule when DuckDB bound its alert query as the compiled-pack cache
# stored it (:func:`mark_bound`): not run, it need not be bound again.
BOUND = "_crmwatch_bound"


def mark_bound(rule_files: list[RuleFile]) -> None:
    """Bind every detection's alert query in an empty store of this layout, its context
    tables made, and mark the rules of those DuckDB binds (:data:`BOUND`): what the
    compiled-pack cache keeps, so that ``detect`` need not bind the queries it does not run
    (70 ms for the pack, start-up). A query binds or not by its text and the catalog, which
    every store at this layout shares (crmwatch.store); a window adds only timestamp
    literals. Runs when a pack is cached, with this DuckDB, whose version is in the pack's
    key."""
    with Store(":memory:") as store:
        prepare(store)
        for rf in rule_files:
            for d in [] if rf.errors else rf.detections:
                try:
                    sql, params = alert_sql(d, Window())
                    store.con.sql(sql, params=params)
                except (duckdb.Error, CrmwatchError, *rule_errors(), NotImplementedError):
                    continue
                d.rule.__dict__[BOUND] = True


def _binds(store: Store, queries: list[tuple[str, list]]) -> bool:
    """Whether DuckDB binds these alert queries: their union, bound with its parameters
    (a relation, not run: 70 ms for the whole pack, where running each takes 160 ms on an
    empty store). ``PREPARE`` would not do: binding stops at the first parameter whose type
    is unknown, and a later query's error is not seen."""
    union = " UNION ALL ".join(f"SELECT * FROM ({sql})" for sql, _ in queries)
    start = time.perf_counter()
    try:
        store.con.sql(union, params=[p for _, params in queries for p in params])
    except duckdb.Error as e:
        trace(f"rules not run: not bound together ({e}), each run on its own")
        return False
    trace(f"{(time.perf_counter() - start) * 1000:.1f} ms  bound {len(queries)} rules not run")
    return True
