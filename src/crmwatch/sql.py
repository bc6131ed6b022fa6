"""The one way crmwatch writes a value or a name into SQL text.

Everything that reaches SQL from outside the code — a log value, a rule's value or field
name, a snapshot's file name or column, a command-line option — is data, never code. Queries
pass values as parameters wherever DuckDB accepts them; where SQL text must hold them (a
generated WHERE clause, a column name, a JSON path, a file path in ``read_csv``), it is
written through these functions and nowhere else:

- :func:`lit` — a string literal, its quotes doubled (``'o''brien'``);
- :func:`ident` — a quoted identifier, its double quotes doubled (``"a ""b"" c"``);
- :func:`json_path` — a JSON path literal whose keys are quoted members (``'$."a"."b"'``);
- :func:`ts` — a timestamp literal from a datetime (never from text);
- :func:`num` — a number, checked to be one;
- :func:`lit_list` — ``(lit, lit, …)`` for ``IN``;
- :func:`formatted` — a ``str.format`` template as SQL, its text quoted and its fields SQL
  expressions, so that one template writes the same words in Python and in SQL;
- :func:`path_lit` — a file path for ``read_csv`` / ``read_parquet``, its glob characters
  bracketed so a file named ``API*.csv`` is that file, not every file the pattern matches;
- :func:`soql_lit`, :func:`soql_datetime` — the same for SOQL, the query language the
  Salesforce connector speaks (a string literal with ``\\`` and ``'`` escaped, as Salesforce's
  "Quoted String Escape Sequences" list them; a datetime as SOQL's unquoted UTC form).

DuckDB reads backslashes in string literals as themselves (standard SQL), so a quote is the
only character a literal must escape; the tests pass hostile values (``o'brien``, ``a\\b``,
``raw.a'b``, ``"``, ``;--``) through each function and back out of DuckDB unchanged.
"""

from __future__ import annotations

import datetime as dt
import math
import string
from collections.abc import Iterable


def lit(value: str | None) -> str:
    """A SQL string literal (``NULL`` for None)."""
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A quoted SQL identifier: any name, used as a name."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"not a usable name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def json_path(keys: str | Iterable[str]) -> str:
    """A JSON path literal to the member ``keys`` (a dotted string, or the keys themselves).

    Each key is a quoted member (``$."a.b"`` would be one key with a dot; a dotted string is
    split on dots first), its ``"`` and ``\\`` escaped as JSON path syntax wants."""
    parts = keys.split(".") if isinstance(keys, str) else list(keys)
    quoted = ('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)
    return lit("$." + ".".join(quoted))


def ts(value: dt.datetime) -> str:
    """A ``TIMESTAMP`` literal for a (naive UTC) datetime."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return f"TIMESTAMP '{value.replace(tzinfo=None).isoformat(sep=' ')}'"


def num(value: int | float) -> str:
    """A numeric literal; refuses anything that is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a number: {value!r}")
    return repr(value)


def lit_list(values: Iterable[str]) -> str:
    """``('a', 'b')`` for an ``IN``; ``(NULL)`` when empty, which matches nothing."""
    items = [lit(v) for v in values]
    return "(" + (", ".join(items) or "NULL") + ")"


def formatted(template: str, **fields: str) -> str:
    """SQL of ``template.format(...)`` with each field the SQL expression given for it: the
    template's text quoted, the parts joined by ``||`` (NULL when a field is NULL, where
    Python would write ``None``)."""
    parts = []
    for text, name, _, _ in string.Formatter().parse(template):
        if text:
            parts.append(lit(text))
        if name is not None:
            parts.append(fields[name])
    return " || ".join(parts) or "''"


_GLOB = {"[": "[[]", "*": "[*]", "?": "[?]"}


def path_lit(path: object) -> str:
    """A literal naming exactly one file for DuckDB's readers, which expand ``*``, ``?`` and
    ``[…]`` in paths: each is written as a one-character class (``[*]``)."""
    return lit("".join(_GLOB.get(ch, ch) for ch in str(path)))


def soql_lit(value: str) -> str:
    """A SOQL string literal: backslash and single quote escaped with a backslash."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_datetime(value: dt.datetime) -> str:
    """A SOQL dateTime literal (``2025-06-10T09:20:00.000Z``) from a naive UTC datetime."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return (
        value.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{value.microsecond // 1000:03d}Z"
    )
