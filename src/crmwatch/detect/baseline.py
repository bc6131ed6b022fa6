"""Baselines: what a rule's detection selects, compared with the principal's own history.

A Sigma rule may carry a ``baseline:`` block (kept by pySigma as a custom attribute). Two kinds:

``new_terms`` — the event is the first in ``lookback`` whose ``fields`` values (one term, or a
tuple) occur for its ``group-by`` values; history is what the rule's detection selects, as in
Elastic's new-terms rules. ``learning`` mutes groups first seen (in any activity event of the
store) less than that long ago: on the day logs start, every term is new, and that is not
news. Snapshot records whose time is a creation date rather than something seen happening
(an OauthToken's ``CreatedDate``, often years old) do not count as activity: the day logs
start is the first day the group was seen doing something.
``candidates`` (a Sigma detection item) narrows which new events alert without narrowing
the history: "first login without MFA" learns from every login, alerts on ``mfa: false``::

    baseline:
      type: new_terms
      fields: [mfa]
      group-by: [principal]
      lookback: 30d
      learning: 7d
      candidates: {mfa: false}

``candidates`` may also be a detection block of its own, with named selections and a
``condition`` (``{api: {ua_class: browser}, anon: {ip_class: [tor, vpn]}, condition: anon and
not api}``).

``travel`` — two consecutive selected events of a group (successful sign-ins of a person) in
countries further apart than ``speed`` km/h allows in the time between them: impossible
travel. Distances are the shortest between the two countries' towns (detect/context.py), so a
border crossing is never impossible; ``lookback`` bounds how far back the previous sign-in is
looked for::

    baseline: {type: travel, group-by: [person], speed: 1000, lookback: 1d}

``volume`` — per group and ``bucket``, the sum of ``value`` over the selected events exceeds
``max(factor × the group's highest bucket in the lookback, floor)``. The highest bucket, not
the mean: a nightly sync that exports 200k rows at 02:00 is its own normal, so only an order of
magnitude more stands out; ``floor`` keeps small principals from alerting on small numbers.
``learning`` works as for new terms: a principal is judged once it has some history::

    baseline: {type: volume, value: rows, group-by: [principal], bucket: 1h, lookback: 30d,
               learning: 7d, factor: 10, floor: 50000}
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crmwatch.detect.context import CELL_SLACK_KM, SNAPSHOT_TYPES, distance_km
from crmwatch.detect.where import derived, field_sql, rule_where
from crmwatch.errors import RuleError
from crmwatch.sql import ident, lit_list, ts

if TYPE_CHECKING:  # read when a rule is loaded; detect on a cached pack imports no pySigma
    from sigma.rule import SigmaRule

KINDS = ("new_terms", "volume", "travel")
# Learning joins on the first-seen tables detect/context.py builds, for these groupings.
FIRST_SEEN = {("principal",): "first_seen_principal", ("person",): "first_seen_person"}


@dataclass(frozen=True)
class Window:
    """The candidate time range of a run: ``[lo, hi)``, either end open when None."""

    lo: dt.datetime | None = None
    hi: dt.datetime | None = None

    def widened(self, seconds: int) -> Window:
        """The same window starting ``seconds`` earlier, for history and correlation spans."""
        return Window(self.lo - dt.timedelta(seconds=seconds) if self.lo else None, self.hi)

    def sql(self, column: str = "ts") -> str:
        parts = []
        if self.lo:
            parts.append(f"{column} >= {ts(self.lo)}")
        if self.hi:
            parts.append(f"{column} < {ts(self.hi)}")
        return " AND ".join(parts) or "true"


@dataclass(frozen=True)
class Baseline:
    kind: str
    group_by: tuple[str, ...]
    lookback: int  # seconds
    fields: tuple[str, ...] = ()
    learning: int = 0
    candidates: str | None = None  # WHERE clause
    value: str = "rows"
    bucket: int = 3600
    factor: float = 10.0
    floor: float = 0.0
    speed: float = 1000.0  # km/h, travel


def _seconds(spec: dict, key: str, default: str | None, where: str) -> int:
    from sigma.correlations import SigmaCorrelationTimespan
    from sigma.exceptions import SigmaError

    raw = spec.get(key, default)
    if raw is None:
        raise RuleError(f"{where}: baseline needs {key!r}")
    try:
        return SigmaCorrelationTimespan(str(raw)).seconds
    except SigmaError as e:
        raise RuleError(f"{where}: baseline {key} {raw!r}: {e}") from e


def _list(spec: dict, key: str, default: list[str]) -> tuple[str, ...]:
    value = spec.get(key, default)
    return tuple([value] if isinstance(value, str) else value)


def parse_baseline(rule: SigmaRule) -> Baseline | None:
    """The rule's ``baseline`` block, validated; None when it has none. Parsed once per rule
    (its ``candidates`` are a conversion of their own)."""
    return derived(rule, "baseline", lambda: _parse_baseline(rule))


def _parse_baseline(rule: SigmaRule) -> Baseline | None:
    spec = (rule.custom_attributes or {}).get("baseline")
    if spec is None:
        return None
    where = f"rule {rule.title!r}"
    if not isinstance(spec, dict) or spec.get("type") not in KINDS:
        raise RuleError(f"{where}: baseline type must be one of {', '.join(KINDS)}")
    unknown = set(spec) - {
        "type",
        "fields",
        "group-by",
        "lookback",
        "learning",
        "candidates",
        "value",
        "bucket",
        "factor",
        "floor",
        "speed",
    }
    if unknown:
        raise RuleError(f"{where}: unknown baseline keys {sorted(unknown)}")
    group_by = _list(spec, "group-by", ["principal"])
    lookback = _seconds(spec, "lookback", None, where)
    learning = _seconds(spec, "learning", None, where) if spec.get("learning") else 0
    if spec["type"] == "new_terms":
        fields = _list(spec, "fields", [])
        if not fields:
            raise RuleError(f"{where}: new_terms baseline needs fields")
        candidates = None
        if spec.get("candidates") is not None:
            candidates = _candidates_where(rule, spec["candidates"])
        return Baseline(
            "new_terms",
            group_by,
            lookback,
            fields=fields,
            learning=learning,
            candidates=candidates,
        )
    if spec["type"] == "travel":
        try:
            speed = float(spec.get("speed", 1000))
        except (TypeError, ValueError) as e:
            raise RuleError(f"{where}: baseline speed must be a number (km/h)") from e
        if speed <= 0:
            raise RuleError(f"{where}: baseline speed must be positive (km/h)")
        return Baseline("travel", group_by, lookback, speed=speed)
    try:
        factor, floor = float(spec.get("factor", 10)), float(spec.get("floor", 0))
    except (TypeError, ValueError) as e:
        raise RuleError(f"{where}: baseline factor and floor must be numbers") from e
    return Baseline(
        "volume",
        group_by,
        lookback,
        value=str(spec.get("value", "rows")),
        bucket=_seconds(spec, "bucket", "1h", where),
        learning=learning,
        factor=factor,
        floor=floor,
    )


def _candidates_where(rule: SigmaRule, item: dict) -> str:
    return detection_where(rule, item, "candidates")


def detection_where(rule: SigmaRule, item: object, what: str) -> str:
    """A WHERE clause for a detection written inside a rule's crmwatch keys: one selection
    (a mapping or a list of mappings), or named selections with a ``condition``."""
    from sigma.exceptions import SigmaError
    from sigma.rule import SigmaRule

    where = f"rule {rule.title!r}: {what}"
    if isinstance(item, dict) and "condition" in item:
        detection = dict(item)
    elif isinstance(item, dict | list):
        detection = {"sel": item, "condition": "sel"}
    else:
        raise RuleError(f"{where} must be a selection or a detection with a condition")
    try:
        probe = SigmaRule.from_dict(
            {
                "title": f"{rule.title} ({what})",
                "logsource": {"product": "crmwatch"},
                "detection": detection,
            }
        )
    except SigmaError as e:
        raise RuleError(f"{where}: {e}") from e
    return rule_where(probe)


def selected_sql(rule: SigmaRule, window: Window) -> str:
    """The ``events`` rows a rule selects within ``window``: its detection, and for a
    ``new_terms`` rule only the new ones (with a ``new_term`` column)."""
    where = rule_where(rule)
    b = parse_baseline(rule)
    if b is None:
        return f"SELECT * FROM events WHERE ({where}) AND {window.sql()}"
    if b.kind == "new_terms":
        return new_terms_sql(where, b, window)
    raise RuleError(f"rule {rule.title!r}: a {b.kind} baseline raises alerts, it selects no events")


def _learnt(b: Baseline, g: list[str], gk: list[str], alias: str, window: Window) -> str:
    """A join keeping rows whose group was first seen, in any activity event, at least
    ``learning`` before the row's ``_at``. (A join, not a correlated EXISTS: DuckDB plans it
    once.)"""
    if not b.learning:
        return ""
    interval = f"INTERVAL '{b.learning} seconds'"
    if b.group_by in FIRST_SEEN:
        table = FIRST_SEEN[b.group_by]
        return (f"JOIN {table} f ON f.g IS NOT DISTINCT FROM {alias}.{gk[0]} "
                f"AND {alias}._at - f._first >= {interval}")  # fmt: skip
    if not b.group_by:
        return (f"JOIN (SELECT min(_first) AS _first FROM first_seen_principal) f "
                f"ON {alias}._at - f._first >= {interval}")  # fmt: skip
    first = (
        f"SELECT {''.join(x + ', ' for x in g)}min(ts) AS _first FROM events "
        f"WHERE {Window(None, window.hi).sql()} AND coalesce(source_type, '') NOT IN "
        f"{lit_list(SNAPSHOT_TYPES)}"
        f"{' GROUP BY ALL' if g else ''}"
    )
    same = "".join(f"f.{k} IS NOT DISTINCT FROM {alias}.{k} AND " for k in gk)
    return f"JOIN ({first}) f ON {same}{alias}._at - f._first >= INTERVAL '{b.learning} seconds'"


def new_terms_sql(where: str, b: Baseline, window: Window) -> str:
    """The events the rule selects whose term is new for their group: ``events`` rows plus
    ``new_term`` (the term's values as a struct).

    Exact, without sorting every event: cut time into buckets one ``lookback`` long. Only the
    first event of a (group, term, bucket) can be new (any later one has a predecessor less
    than a lookback before it), and its predecessor is the last event of the nearest earlier
    bucket of that group and term. So a hash aggregate per bucket and a window over the
    (far fewer) buckets decide; the new events are then read back whole."""
    g = [f"{field_sql(f)} AS _g{i}" for i, f in enumerate(b.group_by)]
    t = [f"{field_sql(f)} AS _t{i}" for i, f in enumerate(b.fields)]
    gk = [f"_g{i}" for i in range(len(b.group_by))]
    tk = [f"_t{i}" for i in range(len(b.fields))]
    keys = ", ".join(gk + tk)
    span = f"INTERVAL '{b.lookback} seconds'"
    history = window.widened(b.lookback)
    term = "struct_pack(" + ", ".join(f"{ident(f)} := _t{i}" for i, f in enumerate(b.fields)) + ")"
    not_null = " AND ".join(f"{k} IS NOT NULL" for k in gk + tk)
    return f"""
WITH sel AS (
    SELECT event_id, ts, {", ".join(g + t)} FROM events
    WHERE ({where}) AND {history.sql()}),
buckets AS (
    SELECT {keys}, min(struct_pack(ts := ts, id := event_id)) AS _first, max(ts) AS _last
    FROM sel WHERE {not_null} GROUP BY {keys}, time_bucket({span}, ts)),
fresh AS (
    SELECT *, _first.ts AS _at, _first.id AS event_id, {term} AS new_term FROM (
        SELECT *, lag(_last) OVER (PARTITION BY {keys} ORDER BY _first) AS _prev FROM buckets)
    WHERE (_prev IS NULL OR _first.ts - _prev > {span}) AND {window.sql("_first.ts")}),
learnt AS (SELECT n.event_id, n.new_term FROM fresh n {_learnt(b, g, gk, "n", window)})
SELECT e.*, learnt.new_term FROM events e JOIN learnt USING (event_id)
WHERE ({where}) AND {window.sql("e.ts")} AND ({b.candidates or "true"})"""


def volume_sql(where: str, b: Baseline, window: Window) -> str:
    """One row per group and bucket above threshold: ``g0…``, ``first_ts``, ``last_ts``,
    ``fired_at`` (the event that took the bucket over the threshold),
    ``event_ids``, ``total``, ``baseline`` (the history's highest bucket) and ``threshold``."""
    g = [f"{field_sql(f)} AS g{i}" for i, f in enumerate(b.group_by)]
    gk = [f"g{i}" for i in range(len(b.group_by))]
    bucket = f"INTERVAL '{b.bucket} seconds'"
    history = window.widened(b.lookback)
    part = f"PARTITION BY {', '.join(gk)} " if gk else ""
    part_b = f"PARTITION BY {', '.join([*gk, 'b'])} "
    present = " AND ".join([f"{k} IS NOT NULL" for k in gk] + ["true"])
    gsel, gcols = "".join(x + ", " for x in g), "".join(x + ", " for x in gk)
    value = f"try_cast({field_sql(b.value)} AS DOUBLE)"
    threshold = f"greatest({b.factor} * coalesce(baseline, 0), {b.floor})"
    same = "".join(f"e.{k} IS NOT DISTINCT FROM s.{k} AND " for k in gk)
    return f"""
WITH sel AS (
    SELECT event_id, ts, time_bucket({bucket}, ts) AS b, {gsel}{value} AS v
    FROM events WHERE ({where}) AND {history.sql()}),
buckets AS (
    SELECT {gcols}b, sum(v) AS total, min(ts) AS _at, max(ts) AS last_ts
    FROM sel WHERE {present} GROUP BY ALL),
running AS (
    SELECT {gcols}b, ts, sum(v) OVER ({part_b}ORDER BY ts, event_id
        ROWS UNBOUNDED PRECEDING) AS upto
    FROM sel WHERE {present}),
scored AS (
    SELECT *, max(total) OVER ({part}ORDER BY b RANGE BETWEEN
        INTERVAL '{b.lookback} seconds' PRECEDING AND {bucket} PRECEDING) AS baseline
    FROM buckets),
firing AS (
    SELECT s.*, {threshold} AS threshold FROM scored s {_learnt(b, g, gk, "s", window)}
    WHERE total > {threshold} AND {window.sql("s.last_ts")}),
fired AS (
    SELECT {"".join(f"r.{k}, " for k in gk)}r.b, min(r.ts) AS fired_at
    FROM running r JOIN firing s ON {same.replace("e.", "r.")}r.b = s.b
    WHERE r.upto > s.threshold GROUP BY ALL)
SELECT s.* EXCLUDE (_at), s._at AS first_ts, f.fired_at,
    list(e.event_id ORDER BY e.ts, e.event_id) AS event_ids
FROM firing s JOIN fired f ON {same.replace("e.", "f.")}f.b = s.b
JOIN sel e ON {same}e.b = s.b
GROUP BY ALL ORDER BY first_ts"""


def travel_sql(where: str, b: Baseline, window: Window) -> str:
    """One row per group and hour with impossible moves: ``g0…``, ``first_ts`` (the earlier
    sign-in of the first move), ``last_ts``, ``fired_at`` (the later sign-in of the first
    move), ``event_ids`` (both sign-ins of every move), and the first move's ``from_country``,
    ``to_country``, ``km`` (the shortest distance between the countries' towns) and ``kmh``
    (the speed it needs). Reads ``country_cells`` (detect/context.py)."""
    g = [f"{field_sql(f)} AS g{i}" for i, f in enumerate(b.group_by)]
    gk = [f"g{i}" for i in range(len(b.group_by))]
    part = f"PARTITION BY {', '.join(gk)} " if gk else ""
    history = window.widened(b.lookback)
    present = " AND ".join([f"{k} IS NOT NULL" for k in gk] + ["country IS NOT NULL"])
    hours = "greatest(epoch(m.ts - m.prev_ts) / 3600, 1.0 / 60)"
    return f"""
WITH sel AS (
    SELECT event_id, ts, country, {"".join(x + ", " for x in g)}1 AS _one FROM events
    WHERE ({where}) AND {history.sql()}),
seq AS (
    SELECT *, lag(country) OVER w AS prev_country, lag(ts) OVER w AS prev_ts,
        lag(event_id) OVER w AS prev_id
    FROM sel WHERE {present} WINDOW w AS ({part}ORDER BY ts, event_id)),
moves AS (
    SELECT * FROM seq WHERE prev_country IS NOT NULL AND country <> prev_country
      AND ts - prev_ts <= INTERVAL '{b.lookback} seconds' AND {window.sql("ts")}),
pairs AS (SELECT DISTINCT prev_country AS a, country AS b FROM moves),
dist AS (
    SELECT p.a, p.b, greatest(min({distance_km("ca", "cb")}) - {CELL_SLACK_KM}, 0) AS km
    FROM pairs p JOIN country_cells ca ON ca.country = p.a
    JOIN country_cells cb ON cb.country = p.b GROUP BY ALL),
impossible AS (
    SELECT m.*, d.km, d.km / {hours} AS kmh FROM moves m
    JOIN dist d ON d.a = m.prev_country AND d.b = m.country WHERE d.km / {hours} > {b.speed})
-- one alert per group and hour: an account hopping countries all day is one finding an hour
SELECT {"".join(f"{k}, " for k in gk)}min(prev_ts) AS first_ts, max(ts) AS last_ts,
    min(ts) AS fired_at,
    list_transform(list_sort(list_distinct(flatten(list([{{'t': prev_ts, 'id': prev_id}},
        {{'t': ts, 'id': event_id}}])))), lambda x: x.id) AS event_ids,
    arg_min(prev_country, ts) AS from_country, arg_min(country, ts) AS to_country,
    round(arg_min(km, ts)) AS km, round(arg_min(kmh, ts)) AS kmh
FROM impossible GROUP BY {"".join(f"{k}, " for k in gk)}time_bucket(INTERVAL 1 HOUR, ts)"""
