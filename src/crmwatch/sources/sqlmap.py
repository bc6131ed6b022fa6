"""Small helpers that turn per-source mapping tables into DuckDB SQL.

Each source describes its normalisation as tables (which source keys feed which normalised
column, which native type means which category). A ``Ref`` resolves a source key to SQL:
a CSV column, or a JSON path into the staged record. Keys the input does not have resolve to
``None`` and simply drop out of the expression, which is how one mapping serves EventLogFile
columns that differ by event type and release.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from crmwatch.sql import ident, json_path, lit
from crmwatch.sqltime import iso_utc

__all__ = ["JsonExtraction", "Ref", "column_ref", "lit"]  # lit: re-exported for the mappings

Ref = Callable[[str], str | None]


def column_ref(present: set[str]) -> Ref:
    """Resolve keys to quoted columns of a CSV staging relation, if the header has them."""

    def ref(key: str) -> str | None:
        return ident(key) if key in present else None

    return ref


class JsonExtraction:
    """Resolve keys (dotted for nesting) to values of a JSON column, parsed once per row.

    Every key asked for becomes one path of a single ``json_extract_string`` with a list of
    paths: the record is parsed once, not once per key. That is faster, and a record carrying
    a 50 MB value needs one parse's memory instead of thirty (a mapping reads about thirty
    keys), which had made such a record exhaust the store's memory. The JSON types of the
    keys asked for with :meth:`type_of` are read the same way, in one more parse.

    Args:
        column: SQL of the JSON column.
        present: top-level keys seen in the records; keys whose first part is absent resolve
            to ``None``, as a CSV header's absent columns do, so the mapping reads a batch
            without a key as it reads a header without that column. None: every key resolves.
        name: the name the extracted lists get, so that two extractions can be stacked.
    """

    def __init__(self, column: str, present: set[str] | None = None, name: str = "_v") -> None:
        self.column, self.present, self.name = column, present, name
        self.paths: dict[str, int] = {}
        self.typed: dict[str, int] = {}

    def ref(self, key: str) -> str | None:
        if self.present is not None and key.split(".", 1)[0] not in self.present:
            return None
        index = self.paths.setdefault(key, len(self.paths) + 1)
        return f"{self.name}[{index}]"

    def type_of(self, key: str) -> str:
        """SQL of the key's JSON type (``VARCHAR``, ``BIGINT``, ``DOUBLE``, ``BOOLEAN``,
        ``NULL``, ``ARRAY``, ``OBJECT`` …), NULL when the record lacks the key."""
        index = self.typed.setdefault(key, len(self.typed) + 1)
        return f"{self.name}_t[{index}]"

    def relation(self, source: str) -> str:
        """``source`` with the extracted values as a list column; call after the mapping."""
        lists = []
        if self.paths or not self.typed:
            paths = ", ".join(json_path(k) for k in self.paths) or "'$.__none__'"
            lists.append(f"json_extract_string({self.column}, [{paths}]) AS {self.name}")
        if self.typed:
            paths = ", ".join(json_path(k) for k in self.typed)
            lists.append(f"json_type({self.column}, [{paths}]) AS {self.name}_t")
        return f"(SELECT *, {', '.join(lists)} FROM {source})"


def text_or(value: str, jtype: str, default: str) -> str:
    """SQL of Python's ``str(x or default)`` for a JSON value ``x`` given as its text and its
    JSON type (:meth:`JsonExtraction.type_of`): how a record's native type has always been
    named. Missing, null, ``""``, false, 0, ``[]`` and ``{}`` give ``default``; true is
    ``True``. (Python wrote a list or an object in its own repr; here it is JSON.)"""
    d = lit(default)
    return (
        f"(CASE WHEN {jtype} IS NULL OR {jtype} = 'NULL' THEN {d} "
        f"WHEN {jtype} = 'BOOLEAN' THEN CASE WHEN {value} = 'true' THEN 'True' ELSE {d} END "
        f"WHEN {jtype} = 'VARCHAR' THEN coalesce(nullif({value}, ''), {d}) "
        f"WHEN {jtype} IN ('ARRAY', 'OBJECT') AND {value} IN ('[]', '{{}}') THEN {d} "
        f"WHEN try_cast({value} AS DOUBLE) = 0 THEN {d} ELSE {value} END)"
    )


def string_or_null(value: str, jtype: str) -> str:
    """The value if it is a non-empty JSON string, else NULL: a record's own id."""
    return f"(CASE WHEN {jtype} = 'VARCHAR' THEN nullif({value}, '') END)"


def first(ref: Ref, *keys: str) -> str:
    """The first non-empty value among ``keys``, in order; NULL when none is present."""
    # No trim(): Salesforce and Okta values are not padded, and trimming every value of
    # every row is a measurable share of ingest time.
    parts = [f"nullif({sql}, '')" for k in keys if (sql := ref(k)) is not None]
    if not parts:
        return "NULL"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


def acting_user(
    user_id: str, user_name: str, delegated: str, delegated_id: str, delegated_name: str
) -> dict[str, str]:
    """``user_id``, ``user_name`` and ``target_user`` of an event that may be a Login-As: where
    ``delegated`` (the administrator's columns) is set, the administrator is the actor and the
    user logged in as is the target; elsewhere the user is the actor. All arguments are SQL
    (``"NULL"`` when the input has no such column)."""
    if delegated == "NULL":
        return {"user_id": user_id, "user_name": user_name}
    return {
        "user_id": f"(CASE WHEN {delegated} IS NOT NULL THEN {delegated_id} ELSE {user_id} END)",
        "user_name": (
            f"(CASE WHEN {delegated} IS NOT NULL THEN {delegated_name} ELSE {user_name} END)"
        ),
        "target_user": (
            f"(CASE WHEN {delegated} IS NOT NULL THEN coalesce({user_name}, {user_id}) END)"
        ),
    }


def case(expr: str, table: Mapping[str, str], default: str = "NULL") -> str:
    """``CASE expr WHEN key THEN value …`` from a table of SQL values."""
    if not table or expr == "NULL":
        return default
    whens = " ".join(f"WHEN {lit(k)} THEN {v}" for k, v in table.items())
    return f"(CASE {expr} {whens} ELSE {default} END)"


def case_columns(ref: Ref, selector: str, table: Mapping[str, tuple[str, ...]]) -> str:
    """Per native type, the first non-empty of that type's own keys."""
    resolved = {k: first(ref, *keys) for k, keys in table.items()}
    return case(selector, {k: v for k, v in resolved.items() if v != "NULL"})


def as_bigint(expr: str) -> str:
    return "NULL" if expr == "NULL" else f"try_cast(try_cast({expr} AS DOUBLE) AS BIGINT)"


def ip_or_null(expr: str) -> str:
    """Keep only strings shaped like an IPv4 or IPv6 address.

    Salesforce writes "Salesforce.com IP" for its own infrastructure and publishers redact to
    "IP_ADDRESS_REMOVED"; those stay in ``raw`` but are not a ``src_ip``. Exact validation
    happens in enrichment, which marks anything unparseable as class ``unknown``.
    """
    if expr == "NULL":
        return expr
    return (
        f"(CASE WHEN regexp_full_match({expr}, '[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}|"
        f"[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*') THEN {expr} END)"
    )


def select_list(exprs: Mapping[str, str], columns: tuple[str, ...]) -> str:
    """A SELECT list with one expression per column, NULL where the mapping has none."""
    return ",\n    ".join(f"{exprs.get(c, 'NULL')} AS {c}" for c in columns)


def ts_utc(*exprs: str) -> str:
    """Parse the first parseable of several timestamp strings to a UTC TIMESTAMP.

    ISO 8601 as ``iso_utc`` reads it (offsets applied, not dropped); EventLogFile's
    ``yyyyMMddHHmmss.SSS`` goes through strptime (``.13`` is 130 ms, as Salesforce trims
    trailing zeros).
    """
    parts = []
    for e in exprs:
        if e == "NULL":
            continue
        parts.append(iso_utc(e))
        parts.append(f"try_strptime({e}, ['%Y%m%d%H%M%S.%g', '%Y%m%d%H%M%S.%f', '%Y%m%d%H%M%S'])")
    if not parts:
        return "CAST(NULL AS TIMESTAMP)"
    return f"coalesce({', '.join(parts)})"


def str_list(expr: str) -> str:
    """A one-element list from a value, or NULL."""
    return "NULL" if expr == "NULL" else f"(CASE WHEN {expr} IS NOT NULL THEN [{expr}] END)"


def coalesce_sql(*exprs: str) -> str:
    """``coalesce`` of the expressions that are not the literal NULL."""
    parts = [x for x in exprs if x != "NULL"]
    if not parts:
        return "NULL"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"
