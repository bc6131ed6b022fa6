"""Replay a logged SOQL query against the snapshot: which records did it return?

The query is compiled to DuckDB SQL over the snapshot tables, with SOQL's semantics where they
differ from SQL (SOQL and SOSL Reference, developer.salesforce.com/docs/platform/
salesforce-soql-sosl/guide):

- text comparisons are case-insensitive ("Comparison Operators"), except on record ids, which
  compare on their case-sensitive 15-character form; LIKE is case-insensitive with ``%``, ``_``
  and backslash escapes;
- ``= null`` / ``!= null`` test for empty fields; INCLUDES / EXCLUDES test multi-select values,
  where ``'a;b'`` means both ``a`` and ``b``;
- date literals are ranges starting at 00:00:00 ("Date Formats and Date Literals in WHERE"),
  relative to the time the query ran — the event's time, not today; LAST_N_DAYS:n includes
  today; weeks start on Sunday (the en_US locale) and days are UTC days, because the querying
  user's locale and time zone are not in the logs (noted on every replay that uses them);
- ORDER BY sorts text case-insensitively, nulls first unless NULLS LAST ("ORDER BY").

A replay never guesses. It refuses (``Unreplayable``, naming the clause) when the result depends
on something the snapshot does not hold, and it reports the result *indeterminate* when LIMIT
or OFFSET cut through records the query did not order (no ORDER BY, or ties on the ORDER BY
keys at the cut): Salesforce gives no order then, so no list would be right.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field

from crmwatch.errors import CrmwatchError
from crmwatch.schema import RECORD_ID
from crmwatch.scope.fields import expand, fields_macro
from crmwatch.scope.snapshot import CREATED, Snapshot
from crmwatch.soql import Comparison, Logical, Negation, SoqlQuery, Value
from crmwatch.sql import ident as quote
from crmwatch.sql import lit as _lit
from crmwatch.sql import num, ts
from crmwatch.sqltime import iso_utc
from crmwatch.timeutil import parse_utc

AGGREGATES = {"AVG", "COUNT", "COUNT_DISTINCT", "MIN", "MAX", "SUM"}
HARMLESS_WITH = {"SECURITY_ENFORCED", "USER_MODE", "SYSTEM_MODE"}
# Relationship name → (lookup field, target object) for the standard ones that do not follow
# the "Account → AccountId, target Account" rule.
RELATIONSHIPS = {
    "owner": ("OwnerId", "User"),
    "createdby": ("CreatedById", "User"),
    "lastmodifiedby": ("LastModifiedById", "User"),
    "reportsto": ("ReportsToId", "Contact"),
    "masterrecord": ("MasterRecordId", None),
    "parent": ("ParentId", None),
}
ID_VALUE = re.compile(RECORD_ID)
# Salesforce date and dateTime text → naive UTC, as ingest reads log timestamps.
SF_TS = f"CREATE OR REPLACE TEMP MACRO sf_ts(x) AS {iso_utc('x')}"


class Unreplayable(CrmwatchError):
    """The query's result depends on something crmwatch cannot evaluate."""


@dataclass
class Plan:
    """A compiled query. ``kind``: records | count | aggregate."""

    object: str
    kind: str
    fields: list[str]
    tables: str = ""  # FROM <snapshot> t0 [JOIN …]
    where: str = ""  # WHERE …, or empty
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # column, desc, nulls
    limit: int | None = None
    offset: int | None = None
    notes: list[str] = field(default_factory=list)
    # The query only names records by id (``WHERE Id = '…'`` or ``Id IN (…)``): the ids, so
    # that many such queries are one join, not a scan each (scope.exposure._replay_plain).
    # ``where`` says the same; ``created`` whether it also keeps records created by ``at``.
    ids: tuple[str, ...] | None = None
    created: bool = False

    @property
    def source(self) -> str:
        return f"{self.tables} {self.where}"


def plan(q: SoqlQuery, snap: Snapshot, at: dt.datetime, user_id: str | None) -> Plan:
    """Compile ``q`` as it ran at ``at`` by ``user_id``; raises ``Unreplayable``."""
    return _Compiler(q, snap, at, user_id).plan()


class _Compiler:
    def __init__(self, q: SoqlQuery, snap: Snapshot, at: dt.datetime, user_id: str | None):
        self.q, self.snap, self.at, self.user_id = q, snap, at, user_id
        self.base = snap.get(q.object)
        self.joins: dict[str, tuple[str, str]] = {}  # relationship → (alias, JOIN clause)
        self.notes: list[str] = []

    def plan(self) -> Plan:
        q = self.q
        fields, kind = self.select_fields()
        if kind == "count" or kind == "aggregate":
            return Plan(q.object, kind, fields, notes=self.notes)
        if self.base is None:
            raise Unreplayable(f"FROM: no {q.object} snapshot was given")
        obj = self.base.object
        if q.with_clause and q.with_clause.split()[0].upper() not in HARMLESS_WITH:
            raise Unreplayable(f"WITH {q.with_clause}: not supported")
        conds = []
        if q.using_scope and q.using_scope.lower() != "everything":
            if q.using_scope.lower() != "mine" or not self.user_id:
                raise Unreplayable(f"USING SCOPE {q.using_scope}: depends on sharing")
            conds.append(f"{self.ident('OwnerId', 'USING SCOPE')} = {_id15(_lit(self.user_id))}")
        if q.where is not None:
            conds.append(self.condition(q.where))
        created = self.base.column("CreatedDate")
        if created is not None:
            # A record created after the query ran cannot have been in its result.
            conds.append(f"coalesce(t0.{CREATED} <= {ts(self.at)}, true)")
        else:
            self.notes.append(f"the {obj} snapshot has no CreatedDate: records created after "
                              "the query cannot be told apart")  # fmt: skip
        order = [(self.ident(o.field, "ORDER BY"), o.descending, o.nulls_first) for o in q.order_by]
        tables = f"FROM {self.base.table} t0 " + " ".join(sql for _, sql in self.joins.values())
        where = ("WHERE " + " AND ".join(f"({c})" for c in conds)) if conds else ""
        return Plan(obj, "records", fields, tables, where, order, q.limit, q.offset, self.notes,
                    self.looked_up(), created is not None)  # fmt: skip

    def looked_up(self) -> tuple[str, ...] | None:
        """The ids a query names, when naming them is all its WHERE does (and no USING
        SCOPE narrows it): ``Id = 'x'`` or ``Id IN ('x', …)``, every value an id."""
        c, q = self.q.where, self.q
        if q.using_scope and q.using_scope.lower() != "everything":
            return None
        if not isinstance(c, Comparison) or c.field.lower() != "id" or c.subquery is not None:
            return None
        if c.op not in ("=", "IN") or not c.values:
            return None
        if any(v.kind != "string" or not ID_VALUE.fullmatch(v.text) for v in c.values):
            return None
        return tuple(v.text for v in c.values)

    def select_fields(self) -> tuple[list[str], str]:
        q = self.q
        if q.count_only:
            return [], "count"
        out: list[str] = []
        aggregate = bool(q.group_by)
        for it in q.items:
            if it.kind == "field":
                out += self.exposed(it.text)
            elif it.kind == "fields_macro":
                out += fields_macro(it.args[0].upper(), self.base)
                self.notes.append(f"FIELDS({it.args[0].upper()}): the snapshot's columns; fields "
                                  "not in the snapshot are not listed")  # fmt: skip
            elif it.kind == "function":
                if it.function in AGGREGATES:
                    aggregate = True
                for a in it.args:
                    out += self.exposed(a)
            elif it.kind == "subquery":
                self.notes.append(f"child records of ({it.text}) are not replayed")
            elif it.kind == "typeof":
                self.notes.append(f"{it.text}: polymorphic fields listed as written")
                out.append(it.text)
        seen: dict[str, None] = dict.fromkeys(out)
        return list(seen), "aggregate" if aggregate else "records"

    def exposed(self, path: str) -> list[str]:
        parts = self.strip(path)
        if len(parts) == 1:
            return expand(self.q.object, parts[0], self.base)
        rel, rest = parts[0], parts[1:]
        target = self.target(rel)[1]
        snap = self.snap.get(target) if target else None
        inner = expand(target or rel, rest[-1], snap) if len(rest) == 1 else [rest[-1]]
        return [".".join([*parts[:-1], f]) for f in inner]

    def strip(self, path: str) -> list[str]:
        parts = path.split(".")
        heads = {self.q.object.lower(), (self.q.alias or "").lower()}
        if len(parts) > 1 and parts[0].lower() in heads:
            parts = parts[1:]
        return parts

    def target(self, rel: str) -> tuple[str, str | None]:
        low = rel.lower()
        if low in RELATIONSHIPS:
            lookup, target = RELATIONSHIPS[low]
            return lookup, target or self.q.object
        if low.endswith("__r"):
            return rel[:-3] + "__c", None
        return rel + "Id", rel

    def ident(self, path: str, clause: str) -> str:
        """SQL for a field used in WHERE or ORDER BY (its values are needed)."""
        assert self.base is not None
        parts = self.strip(path)
        if len(parts) == 1:
            col = self.base.column(parts[0])
            if col is None:
                raise Unreplayable(
                    f"{clause}: {parts[0]} is not in the {self.base.object} snapshot"
                )
            self.snap.need(self.base.object, col)
            return f"t0.{quote(col)}"
        if len(parts) > 2:
            raise Unreplayable(f"{clause}: {path}: relationships deeper than one level")
        lookup, target = self.target(parts[0])
        tsnap = self.snap.get(target) if target else None
        lcol = self.base.column(lookup)
        if tsnap is None or lcol is None:
            raise Unreplayable(f"{clause}: {path} needs the {target or parts[0]} snapshot and "
                               f"{lookup} in the {self.base.object} snapshot")  # fmt: skip
        col = tsnap.column(parts[1])
        if col is None:
            raise Unreplayable(f"{clause}: {parts[1]} is not in the {tsnap.object} snapshot")
        rel = parts[0].lower()
        if rel not in self.joins:
            alias = f"j{len(self.joins) + 1}"
            self.snap.need(self.base.object, lcol)
            self.snap.need(tsnap.object, "Id")
            join = (
                f'LEFT JOIN {tsnap.table} {alias} ON left({alias}."Id", 15) = '
                f"left(t0.{quote(lcol)}, 15)"
            )
            self.joins[rel] = (alias, join)
        self.snap.need(tsnap.object, col)
        return f"{self.joins[rel][0]}.{quote(col)}"

    # --- WHERE ---

    def condition(self, c) -> str:
        if isinstance(c, Logical):
            return f" {c.op} ".join(f"({self.condition(i)})" for i in c.items)
        if isinstance(c, Negation):
            return f"NOT coalesce(({self.condition(c.item)}), false)"
        assert isinstance(c, Comparison)
        col = self.ident(c.field, "WHERE")
        if c.subquery is not None:
            return self.semi_join(c, col)
        is_id = _is_id_field(c.field)
        if c.op in ("IN", "NOT IN"):
            inner = self.one_of(col, c.values, is_id)
            return inner if c.op == "IN" else f"NOT coalesce(({inner}), false)"
        if c.op in ("INCLUDES", "EXCLUDES"):
            items = f"list_transform(string_split(lower({col}), ';'), lambda s: trim(s))"
            alts, singles = [], []
            for v in c.values:
                wanted = [w.strip().lower() for w in v.text.split(";") if w.strip()]
                if len(wanted) == 1:
                    singles.append(wanted[0])
                else:
                    alts.append(f"list_has_all({items}, {_lit_list(wanted)})")
            if singles:  # one set test however many single values: 10,000 took 73 s as ORs
                alts.append(
                    f"EXISTS (SELECT 1 FROM unnest({items}) AS i(v) WHERE i.v IN "
                    f"(SELECT unnest({_lit_list(singles)})))"
                )
            inner = " OR ".join(alts) or "false"
            return (
                f"coalesce({inner}, false)"
                if c.op == "INCLUDES"
                else (f"NOT coalesce({inner}, false)")
            )
        if c.op == "LIKE":
            pattern = c.values[0].text
            if (len(pattern) - len(pattern.rstrip("\\"))) % 2:
                # a pattern's backslash escapes what follows it: at its end, nothing does
                raise Unreplayable("LIKE: the pattern ends with its escape character")
            return f"{col} ILIKE {_lit(pattern)} ESCAPE '\\'"
        return self.compare(col, c.op, c.values[0], is_id)

    def one_of(self, col: str, values: tuple[Value, ...], is_id: bool) -> str:
        """``IN``: ids and texts as one set lookup each (a log's IN list can hold thousands),
        other kinds value by value."""
        strings = [v.text for v in values if v.kind == "string"]
        ids = [t for t in strings if is_id and ID_VALUE.fullmatch(t)]
        texts = [t for t in strings if not (is_id and ID_VALUE.fullmatch(t))]
        parts = [self.compare(col, "=", v, is_id) for v in values if v.kind != "string"]
        if ids:
            parts.append(f"{_id15(col)} IN (SELECT left(unnest({_lit_list(ids)}), 15))")
        if texts:
            parts.append(f"lower({col}) IN (SELECT lower(unnest({_lit_list(texts)})))")
        return " OR ".join(f"({p})" for p in parts) or "false"

    def compare(self, col: str, op: str, v: Value, is_id: bool) -> str:
        if v.kind == "null":
            if op not in ("=", "!="):
                raise Unreplayable(f"WHERE: {op} null")
            return f"nullif({col}, '') IS {'NOT ' if op == '!=' else ''}NULL"
        if v.kind == "boolean":
            truth = f"lower({col}) IN ('true', '1')"
            want = v.text == "true"
            return _cmp(truth, op, "true" if want else "false")
        if v.kind == "number":
            value = float(v.text)
            if not math.isfinite(value):
                raise Unreplayable(f"WHERE: {v.text[:20]}… is beyond any number a field holds")
            return _cmp(f"try_cast({col} AS DOUBLE)", op, num(value))
        if v.kind in ("date", "datetime"):
            when = ts(parse_utc(v.text))
            return _cmp(f"sf_ts({col})", op, when)
        if v.kind == "date_literal":
            try:
                start, end = date_literal_range(v.text, v.n, self.at)
            except Unreplayable:
                raise
            except (OverflowError, ValueError) as e:
                raise Unreplayable(f"WHERE: {v.text}:{v.n} reaches outside the calendar") from e
            note = "date literals evaluated in UTC days, weeks starting Sunday"
            if note not in self.notes:
                self.notes.append(note)
            x, s, e = f"sf_ts({col})", ts(start), ts(end)
            return {
                "=": f"{x} >= {s} AND {x} < {e}",
                "!=": f"NOT coalesce({x} >= {s} AND {x} < {e}, false)",
                "<": f"{x} < {s}",
                "<=": f"{x} < {e}",
                ">": f"{x} >= {e}",
                ">=": f"{x} >= {s}",
            }[op]
        # string
        if is_id and ID_VALUE.fullmatch(v.text):
            return _cmp(_id15(col), op, _id15(_lit(v.text)))
        return _cmp(f"lower({col})", op, f"lower({_lit(v.text)})")

    def semi_join(self, c: Comparison, col: str) -> str:
        sub = c.subquery
        assert sub is not None
        if len(sub.items) != 1 or sub.items[0].kind != "field":
            raise Unreplayable("WHERE: a semi-join must select one field")
        inner = _Compiler(sub, self.snap, self.at, self.user_id)
        if inner.base is None:
            raise Unreplayable(f"WHERE: the semi-join needs the {sub.object} snapshot")
        p = inner.plan()
        self.notes += [n for n in p.notes if n not in self.notes]
        key = inner.ident(sub.items[0].text, "WHERE (semi-join)")
        test = f"{_id15(col)} IN (SELECT {_id15(key)} {p.source})"
        return test if c.op == "IN" else f"NOT coalesce({test}, false)"


def _is_id_field(name: str) -> bool:
    """Record ids and standard lookups (AccountId, OwnerId): compared case-sensitively."""
    last = name.rsplit(".", 1)[-1]
    return last.lower() == "id" or last.endswith("Id")


def _id15(sql: str) -> str:
    return f"left({sql}, 15)"


def _cmp(left: str, op: str, right: str) -> str:
    if op == "!=":
        return f"{left} IS DISTINCT FROM {right}"
    return f"{left} {op} {right}"


def _lit_list(items: list[str]) -> str:
    return "[" + ", ".join(_lit(i) for i in items) + "]::VARCHAR[]"


def _add_months(d: dt.date, n: int) -> dt.date:
    y, m = divmod(d.month - 1 + n, 12)
    return dt.date(d.year + y, m + 1, 1)


def date_literal_range(
    name: str, n: int | None, at: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a date literal for a query that ran at ``at`` (UTC)."""
    if "FISCAL" in name:
        raise Unreplayable(f"WHERE: {name} depends on the org's fiscal year settings")
    today = at.date()
    day = dt.timedelta(days=1)
    week = today - dt.timedelta(days=(today.weekday() + 1) % 7)  # Sunday
    month = today.replace(day=1)
    quarter = month.replace(month=(month.month - 1) // 3 * 3 + 1)
    year = today.replace(month=1, day=1)
    k = n or 0
    ranges: dict[str, tuple[dt.date, dt.date]] = {
        "YESTERDAY": (today - day, today),
        "TODAY": (today, today + day),
        "TOMORROW": (today + day, today + 2 * day),
        "LAST_WEEK": (week - 7 * day, week),
        "THIS_WEEK": (week, week + 7 * day),
        "NEXT_WEEK": (week + 7 * day, week + 14 * day),
        "LAST_MONTH": (_add_months(month, -1), month),
        "THIS_MONTH": (month, _add_months(month, 1)),
        "NEXT_MONTH": (_add_months(month, 1), _add_months(month, 2)),
        "LAST_90_DAYS": (today - 90 * day, today + day),
        "NEXT_90_DAYS": (today + day, today + 91 * day),
        "LAST_N_DAYS": (today - k * day, today + day),
        "NEXT_N_DAYS": (today + day, today + (k + 1) * day),
        "N_DAYS_AGO": (today - k * day, today - (k - 1) * day),
        "LAST_N_WEEKS": (week - 7 * k * day, week),
        "NEXT_N_WEEKS": (week + 7 * day, week + 7 * (k + 1) * day),
        "N_WEEKS_AGO": (week - 7 * k * day, week - 7 * (k - 1) * day),
        "LAST_N_MONTHS": (_add_months(month, -k), month),
        "NEXT_N_MONTHS": (_add_months(month, 1), _add_months(month, k + 1)),
        "N_MONTHS_AGO": (_add_months(month, -k), _add_months(month, -k + 1)),
        "THIS_QUARTER": (quarter, _add_months(quarter, 3)),
        "LAST_QUARTER": (_add_months(quarter, -3), quarter),
        "NEXT_QUARTER": (_add_months(quarter, 3), _add_months(quarter, 6)),
        "LAST_N_QUARTERS": (_add_months(quarter, -3 * k), quarter),
        "NEXT_N_QUARTERS": (_add_months(quarter, 3), _add_months(quarter, 3 * (k + 1))),
        "N_QUARTERS_AGO": (_add_months(quarter, -3 * k), _add_months(quarter, -3 * k + 3)),
        "THIS_YEAR": (year, _add_months(year, 12)),
        "LAST_YEAR": (_add_months(year, -12), year),
        "NEXT_YEAR": (_add_months(year, 12), _add_months(year, 24)),
        "LAST_N_YEARS": (_add_months(year, -12 * k), year),
        "NEXT_N_YEARS": (_add_months(year, 12), _add_months(year, 12 * (k + 1))),
        "N_YEARS_AGO": (_add_months(year, -12 * k), _add_months(year, -12 * k + 12)),
    }
    if name not in ranges:
        raise Unreplayable(f"WHERE: date literal {name} is not supported")
    start, end = ranges[name]
    return dt.datetime.combine(start, dt.time()), dt.datetime.combine(end, dt.time())
