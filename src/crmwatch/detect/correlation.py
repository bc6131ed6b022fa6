"""Sigma v2 correlation rules as DuckDB SQL with true sliding time windows.

Sigma correlation specification (github.com/SigmaHQ/sigma-specification,
sigma-correlation-rules-specification.md): ``event_count``, ``value_count``, ``temporal`` and
``temporal_ordered`` over the events matched by the referenced rules, per ``group-by`` values
(with ``aliases`` when the rules name the same thing differently), within ``timespan``.
Windows are not tied to fixed boundaries: five events inside *any* five-minute span fire.

How: every matched event closes a candidate window ``[ts - timespan, ts]``; a window
aggregate counts what it holds (events, distinct values, distinct rules). Five events within
five minutes always fall in the window closed by the last of them, so no qualifying span is
missed; five spread over six minutes never share one. Firing windows that overlap are merged
into one alert per group and span. ``temporal_ordered`` additionally carries, rule by rule, the
latest start of a chain that has seen the previous rules in order (a running max), so order
is checked, not assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmwatch.detect.baseline import Window, selected_sql
from crmwatch.detect.frozen import is_rule
from crmwatch.detect.where import field_sql
from crmwatch.errors import RuleError

if TYPE_CHECKING:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

# pySigma's condition operators and correlation types by name: a cached pack's rules are
# crmwatch's frozen ones (detect/frozen.py), which name them the same
OPERATORS = {"LT": "<", "LTE": "<=", "GT": ">", "GTE": ">=", "EQ": "=", "NEQ": "<>"}
MEASURES = {
    "EVENT_COUNT": "count(*)",
    "VALUE_COUNT": "count(DISTINCT v)",
    "TEMPORAL": "count(DISTINCT rule_ix)",
}
TEMPORAL_TYPES = ("TEMPORAL", "TEMPORAL_ORDERED")


def _name(rule: SigmaRule) -> str:
    return rule.name or str(rule.id)


def correlation_sql(corr: SigmaCorrelationRule, window: Window | None = None) -> str:
    """SQL returning one row per alert: group values ``g0…``, ``first_ts``, ``last_ts``,
    ``fired_at`` (the event that first met the condition),
    ``event_ids`` (in time order) and ``n`` (what the condition counted).

    With a ``window``, only events from ``timespan`` before its start are read: a span that
    ends inside the window can begin no earlier."""
    rules = [ref.rule for ref in corr.rules]
    if any(not is_rule(r) for r in rules):
        raise RuleError(f"correlation {corr.title!r}: chained correlations are not supported")
    groups = list(corr.group_by or [])
    span = f"INTERVAL '{corr.timespan.seconds} seconds'"
    reads = (window or Window()).widened(corr.timespan.seconds)
    g = [f"g{i}" for i in range(len(groups))]
    value_field = None
    if corr.type.name == "VALUE_COUNT":
        value_field = corr.condition.fieldref
    matched = " UNION ALL ".join(
        f"SELECT event_id, ts, {_group_select(corr, r, groups)}"
        f"{field_sql(value_field) + ' AS v, ' if value_field else ''}"
        f"{i} AS rule_ix FROM ({selected_sql(r, reads)})"
        for i, r in enumerate(rules)
    )
    part = f"PARTITION BY {', '.join(g)} " if g else ""
    frame = f"ORDER BY ts RANGE BETWEEN {span} PRECEDING AND CURRENT ROW"
    cond = corr.condition
    if corr.type.name == "TEMPORAL_ORDERED":
        fire = _ordered_fire(len(rules), g, span)
    else:
        measure = MEASURES.get(corr.type.name)
        if measure is None:
            raise RuleError(f"correlation {corr.title!r}: type {corr.type} is not supported")
        op = OPERATORS[cond.op.name] if cond else ">="
        count = cond.count if cond else len(rules)
        fire = (
            f"SELECT {_cols(g)}ts - {span} AS start_ts, ts AS end_ts, n FROM ("
            f"SELECT *, {measure} OVER ({part}{frame}) AS n FROM m) WHERE n {op} {count}"
        )
    on = " AND ".join([f"m.{c} IS NOT DISTINCT FROM s.{c}" for c in g] + ["true"])
    return f"""
WITH m0 AS ({matched}),
m AS ({_complete_groups(corr, g, len(rules))}),
fire AS ({fire}),
flagged AS (
    SELECT *, CASE WHEN start_ts <= max(end_ts) OVER ({part}ORDER BY start_ts, end_ts
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) THEN 0 ELSE 1 END AS new_span
    FROM fire),
spans AS (
    SELECT {_cols(g)}island, min(start_ts) AS start_ts, max(end_ts) AS end_ts, max(n) AS n,
        min(end_ts) AS fired_at
    FROM (SELECT *, sum(new_span) OVER ({part}ORDER BY start_ts, end_ts
          ROWS UNBOUNDED PRECEDING) AS island FROM flagged)
    GROUP BY ALL)
SELECT {"".join(f"s.{c}, " for c in g)}min(m.ts) AS first_ts, max(m.ts) AS last_ts,
    list(m.event_id ORDER BY m.ts, m.event_id) AS event_ids, max(s.n) AS n,
    min(s.fired_at) AS fired_at
FROM spans s JOIN m ON {on} AND m.ts BETWEEN s.start_ts AND s.end_ts
GROUP BY {"".join(f"s.{c}, " for c in g)}s.island
ORDER BY first_ts"""


def _complete_groups(corr: SigmaCorrelationRule, g: list[str], n_rules: int) -> str:
    """The matched events, for temporal types only of groups in which every rule matched:
    a chain's later steps are often common (exports) while its first is rare."""
    if corr.type.name not in TEMPORAL_TYPES:
        return "SELECT * FROM m0"
    if not g:
        return f"SELECT * FROM m0 WHERE (SELECT count(DISTINCT rule_ix) FROM m0) = {n_rules}"
    same = " AND ".join(f"m0.{c} IS NOT DISTINCT FROM k.{c}" for c in g)
    return (
        f"SELECT m0.* FROM m0 SEMI JOIN (SELECT {', '.join(g)} FROM m0 GROUP BY ALL "
        f"HAVING count(DISTINCT rule_ix) = {n_rules}) k ON {same}"
    )


def _cols(g: list[str]) -> str:
    return "".join(f"{c}, " for c in g)


def _group_select(corr: SigmaCorrelationRule, rule: SigmaRule, groups: list[str]) -> str:
    """Each group-by name as this rule's field: through ``aliases`` when it is an alias."""
    aliases = corr.aliases.aliases if corr.aliases else {}
    out = []
    for i, name in enumerate(groups):
        field = name
        if name in aliases:
            by_rule = {ref.reference: f for ref, f in aliases[name].mapping.items()}
            field = by_rule.get(_name(rule), by_rule.get(str(rule.id), name))
        out.append(f"{field_sql(field)} AS g{i}, ")
    return "".join(out)


def _ordered_fire(n_rules: int, g: list[str], span: str) -> str:
    """Windows in which rule 0, then rule 1, …, then the last rule occurred, within span.

    ``cs`` is the latest time a chain through the rules so far could have started; for each
    event of the next rule it is the running max over earlier rows (previous rule's chains
    sort first on equal timestamps, so "at the same time" counts as in order).
    """
    part = f"PARTITION BY {', '.join(g)} " if g else ""
    step = f"SELECT {_cols(g)}ts, ts AS cs FROM m WHERE rule_ix = 0"
    for k in range(1, n_rules):
        step = (
            f"SELECT {_cols(g)}ts, cs FROM (SELECT {_cols(g)}ts, is_next, max(cs) OVER ({part}"
            f"ORDER BY ts, is_next ROWS UNBOUNDED PRECEDING) AS cs FROM ("
            f"SELECT {_cols(g)}ts, cs, 0 AS is_next FROM ({step}) "
            f"UNION ALL SELECT {_cols(g)}ts, NULL, 1 FROM m WHERE rule_ix = {k})) "
            f"WHERE is_next = 1 AND cs IS NOT NULL AND ts - cs <= {span}"
        )
    return f"SELECT {_cols(g)}cs AS start_ts, ts AS end_ts, {n_rules} AS n FROM ({step})"
