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

__all__ = ["Ref", "column_ref", "json_ref", "lit"]  # lit: re-exported for the mappings

Ref = Callable[[str], str | None]


def column_ref(present: set[str]) -> Ref:
    """Resolve keys to quoted columns of a CSV staging relation, if the header has them."""

    def ref(key: str) -> str | None:
        return ident(key) if key in present else None

    return ref


def json_ref(column: str, present: set[str] | None = None) -> Ref:
    """Resolve keys (dotted for nesting) to string extractions from a JSON column.

    Args:
        column: the staged JSON column.
        present: top-level keys seen in the batch; keys whose first part is absent resolve to
            ``None`` so the expression stays short. ``None`` means "assume present".
    """

    def ref(key: str) -> str | None:
        if present is not None and key.split(".", 1)[0] not in present:
            return None
        return f"json_extract_string({column}, {json_path(key)})"

    return ref


def first(ref: Ref, *keys: str) -> str:
    """The first non-empty value among ``keys``, in order; NULL when none is present."""
    # No trim(): Salesforce and Okta values are not padded, and trimming every value of
    # every row is a measurable share of ingest time.
    parts = [f"nullif({sql}, '')" for k in keys if (sql := ref(k)) is not None]
    if not parts:
        return "NULL"
    return parts[0] if len(parts) == 1 else f"coalesce({', '.join(parts)})"


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


def iso_utc(expr: str) -> str:
    """An ISO 8601 string to a UTC TIMESTAMP (NULL if unparseable).

    Offsets (``+09:00``) go through TIMESTAMPTZ, since DuckDB's plain TIMESTAMP cast drops
    them; UTC values (``Z``, ``+0000``, ``+00:00``: nearly every log line) take the plain
    cast, which skips the zone-aware parse and takes about half the time (measured on 5M
    values). Values without an offset are read as UTC: the session time zone ``Store`` sets.
    """
    return (
        f"(CASE WHEN suffix({expr}, 'Z') OR suffix({expr}, '+0000') OR suffix({expr}, '+00:00') "
        f"THEN try_cast({expr} AS TIMESTAMP) "
        f"ELSE try_cast({expr} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' END)"
    )


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
