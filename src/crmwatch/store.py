"""The event store: a thin wrapper over one embedded DuckDB file.

Every stage reads and writes through ``Store.execute``; queries are parameterised and, with
``CRMWATCH_TRACE=1``, each one is printed to stderr with its duration.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NoReturn

import duckdb

from crmwatch.errors import StoreError
from crmwatch.schema import DDL
from crmwatch.sql import lit

DEFAULT_DB = "crmwatch.duckdb"
# The layout a store is in. At this version every table and column of schema.DDL must be
# there (else the store is damaged); an older store gains what it lacks when opened.
# "2": every table of schema.TABLES; "3": events_base.native_id, quarantine.records;
# "4": the posture tables; "5": notify_packages, scope_verdicts (taken out of
# the scope summaries), the console's and the connectors' tables, deliveries and
# containment actions; "6": exposures.channel and exposures.language (how notify can write to
# each customer, recorded by scope; NULL in incidents scoped before, which notify reads from
# the snapshot).
SCHEMA_VERSION = "6"

# meta key: the DDL a store was last brought to, and what its catalog then was (see
# ``Store._current``).
LAYOUT_KEY = "layout"
# What the catalog check reads: every column of the store's tables and views with its type,
# and each view's SQL, one line each, hashed in DuckDB (1 ms; duckdb_functions(), which
# would list the macros' definitions, takes 9 ms: each macro is called instead).
_CATALOG = (
    "SELECT md5(coalesce(string_agg(line, chr(10) ORDER BY line), '')) FROM ("
    "SELECT concat_ws(' ', 'column', table_name, column_name, data_type) AS line "
    "FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' "
    "UNION ALL SELECT concat_ws(' ', 'view', view_name, sql) FROM duckdb_views() "
    "WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal)"
)


def _ddl_digest() -> str:
    """SHA-256 of this code's layout: its version and every DDL statement's text (20 µs).
    Another crmwatch's DDL (a view changed, a column added) gives another digest."""
    digest = hashlib.sha256(SCHEMA_VERSION.encode())
    for statement in DDL:
        digest.update(b"\x00" + statement.encode())
    return digest.hexdigest()


def _macro_calls() -> str:
    """A call of each macro the DDL creates, with NULL arguments (``, ipv4_int(NULL)``):
    selected in the layout check, which then fails when one is gone."""
    calls = ""
    for statement in DDL:
        if m := re.match(r"CREATE OR REPLACE MACRO (\w+)\(([^)]*)\)", statement):
            calls += f", {m[1]}({', '.join('NULL' for a in m[2].split(',') if a.strip())})"
    return calls


def default_db_path() -> Path:
    """The store used without ``--db``: ``$CRMWATCH_DB``, else ./crmwatch.duckdb."""
    return Path(os.environ.get("CRMWATCH_DB") or DEFAULT_DB)


def tracing() -> bool:
    return os.environ.get("CRMWATCH_TRACE", "") not in ("", "0")


def trace(message: str) -> None:
    if tracing():
        print(f"[trace] {message}", file=sys.stderr)


@dataclass
class Results:
    """Rows of one query, with their column names."""

    columns: list[str]
    rows: list[tuple[Any, ...]]

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def single_value(self) -> Any:
        """The value of a one-row, one-column result; raises if the shape is different."""
        if len(self.rows) != 1 or len(self.columns) != 1:
            raise StoreError(f"expected one value, got {len(self.rows)} rows x {len(self.columns)}")
        return self.rows[0][0]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Store:
    """One open DuckDB store with crmwatch's tables.

    Args:
        path: the database file; created with the schema if missing. ``":memory:"`` works too.
        memory_limit: DuckDB's memory cap; big ingests spill to disk beyond it.
    """

    def __init__(self, path: Path | str, memory_limit: str = "2GB") -> None:
        self.path = str(path)
        self._transaction = False  # inside transaction(): another is part of it
        try:
            self.con = duckdb.connect(self.path)
        except duckdb.Error as e:
            hint = ""
            if "lock" in str(e).lower():
                hint = (
                    " (another process has it open, `crmwatch serve` perhaps: DuckDB lets "
                    "one process write a store at a time; stop it and run this again)"
                )
            raise StoreError(f"cannot open store {self.path}: {e}{hint}") from e
        self.con.execute(f"SET memory_limit='{memory_limit}'")
        # Insertion order is meaningless for events (ts orders them) and costs parallelism.
        self.con.execute("SET preserve_insertion_order=false")
        # crmwatch draws its own progress; DuckDB's would interleave with it and with JSON output.
        self.con.execute("SET enable_progress_bar=false")
        # Every time crmwatch stores is UTC; so is every timestamp with a zone it reads.
        self.con.execute("SET TimeZone='UTC'")
        if self._current():
            trace("store at this layout: no DDL run")
            return
        version = self._version()
        self._migrate()
        # One transaction: a store killed while being created is created again, not left
        # half-made and then refused as damaged. A store already at this layout must come out
        # of it unchanged: a table or column the DDL had to add was lost, and CREATE TABLE IF
        # NOT EXISTS would put an empty one in its place, so stats, detect and notify would
        # answer as if nothing had been ingested, found or scoped.
        self.con.execute("BEGIN")
        before = self._columns()
        try:
            for statement in DDL:
                self.con.execute(statement)
        except duckdb.Error as e:  # a view over a column that is gone
            self.con.execute("ROLLBACK")
            if version != SCHEMA_VERSION:
                raise StoreError(f"cannot bring store {self.path} to this layout: {e}") from e
            self._damaged(_expected_columns() - before)
        lost = self._columns() - before if version == SCHEMA_VERSION else set()
        if lost:
            self.con.execute("ROLLBACK")
            self._damaged(lost)
        self.con.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?), (?, ?)",
            [SCHEMA_VERSION, LAYOUT_KEY, f"{_ddl_digest()} {self._catalog()}"],
        )
        self.con.execute("COMMIT")

    def __repr__(self) -> str:
        return f"<Store {self.path}>"

    def _current(self) -> bool:
        """Whether the store is at this code's layout already, as this code left it: then
        opening it runs no DDL and writes nothing (and closing it checkpoints nothing).

        True only when the store was last brought to exactly this DDL (its digest is in
        ``meta``) and its catalog — every table's and view's columns and types, the views'
        SQL, the macros — is the one that left, so a table, column, view or macro dropped or
        changed since by anything else goes the full way below: refused as damaged, or made
        again. One query; any error (no ``meta``, a macro gone) means the full way."""
        try:
            row = self.con.execute(
                f"SELECT (SELECT value FROM meta WHERE key = 'schema_version'), "
                f"(SELECT value FROM meta WHERE key = {lit(LAYOUT_KEY)}), ({_CATALOG})"
                + _macro_calls()
            ).fetchone()
        except duckdb.Error:
            return False
        return (
            row is not None and row[0] == SCHEMA_VERSION and row[1] == f"{_ddl_digest()} {row[2]}"
        )

    def _catalog(self) -> str:
        """The digest of the store's catalog the layout check compares (see _CATALOG)."""
        return self.con.execute(_CATALOG).fetchone()[0]

    def _version(self) -> str | None:
        """The store's layout version, None for a new store. Refuses a DuckDB file of
        something else, and a store written by a newer crmwatch."""
        tables = {r[0] for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
            "AND schema_name = 'main'"
        ).fetchall()}  # fmt: skip
        if not tables:
            return None  # a new store
        row = None
        if "meta" in tables:
            row = self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self._refuse("it has no schema version in a meta table")
        version = row[0]
        if version.isdigit() and int(version) > int(SCHEMA_VERSION):
            raise StoreError(
                f"store {self.path} has layout {version}, newer than this crmwatch's "
                f"({SCHEMA_VERSION}): open it with the crmwatch that wrote it, or a newer one"
            )
        return version

    def _columns(self) -> set[tuple[str, str]]:
        return _table_columns(self.con)

    def _damaged(self, lost: set[tuple[str, str]]) -> NoReturn:
        tables = {t for t, _ in lost if t not in {t for t, _ in self._columns()}}
        if tables:
            self._refuse(f"table(s) missing: {', '.join(sorted(tables))}")
        self._refuse("column(s) missing: " + ", ".join(f"{t}.{c}" for t, c in sorted(lost)))

    def _refuse(self, what: str) -> NoReturn:
        raise StoreError(
            f"store {self.path} is damaged or not a crmwatch store: {what}. crmwatch will "
            "not answer from a store missing part of its data; restore the file from a "
            "backup, or ingest into a new store."
        )

    def _migrate(self) -> None:
        """Bring a store written by an older crmwatch to this schema. Scope results are
        derived data: an exposures table of the first layout (one fields list per record)
        is dropped, and ``crmwatch scope`` rebuilds it."""
        cols = {r[0] for r in self.con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'exposures'"
        ).fetchall()}  # fmt: skip
        if cols and "fieldset" not in cols:
            print("crmwatch: scope results of an older version dropped; run `crmwatch scope` "
                  "again", file=sys.stderr)  # fmt: skip
            self.con.execute("DROP VIEW IF EXISTS exposure_details")
            self.con.execute("DROP TABLE exposures")
            self.con.execute("DROP TABLE IF EXISTS scopes")

    def execute(
        self,
        sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None,
        first: int | None = None,
    ) -> Results:
        """Run one statement; its rows, or only the ``first`` ones (the rest of an ordered
        result never reaches Python)."""
        start = time.perf_counter()
        try:
            cursor = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
            if not cursor.description:
                rows = []
            else:
                rows = cursor.fetchall() if first is None else cursor.fetchmany(first)
            columns = [d[0] for d in cursor.description] if cursor.description else []
        except duckdb.Error as e:
            raise StoreError(f"query failed: {e}\n{_shorten(sql)}") from e
        trace(f"{(time.perf_counter() - start) * 1000:.1f} ms  {_shorten(sql)}")
        return Results(columns, rows)

    def stream(
        self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None, batch: int = 2048
    ) -> Iterator[dict[str, Any]]:
        """The rows of one query as dicts, fetched ``batch`` at a time: a result of millions
        of rows (every alert of a run, for ``--json``) is written out without ever being
        whole in Python. The store's connection is busy until the rows are read: run no
        other statement on it meanwhile (a cursor of its own would not see temporary
        tables)."""
        start = time.perf_counter()
        try:
            cursor = self.con.execute(sql, params) if params is not None else self.con.execute(sql)
            columns = [d[0] for d in cursor.description or ()]
            trace(f"{(time.perf_counter() - start) * 1000:.1f} ms  {_shorten(sql)} (streamed)")
            while rows := cursor.fetchmany(batch):
                for row in rows:
                    yield dict(zip(columns, row, strict=True))
        except duckdb.Error as e:
            raise StoreError(f"query failed: {e}\n{_shorten(sql)}") from e

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        return self.execute(sql, params).single_value()

    def arrow(self, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
        """The rows of one query as an Arrow table: columns in native memory, for a result
        of millions of rows kept and read a few at a time (a scope's verdicts)."""
        start = time.perf_counter()
        try:
            table = self.con.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as e:
            raise StoreError(f"query failed: {e}\n{_shorten(sql)}") from e
        trace(f"{(time.perf_counter() - start) * 1000:.1f} ms  {_shorten(sql)} (arrow)")
        return table

    def insert(self, table: str, rows: Sequence[Sequence[Any]], on_conflict: str = "") -> None:
        """Python rows into ``table`` in one statement, each column bound as one typed list.

        ``executemany`` runs one statement per row, about 0.2 ms each: a hundred thousand
        alerts or quarantined lines would take 20 s. ``on_conflict`` is appended as written,
        e.g. ``ON CONFLICT DO NOTHING``."""
        if not rows:
            return
        types = [r[1] for r in self.execute(f"DESCRIBE {table}").rows]
        select = ", ".join(f"unnest(?::{t}[])" for t in types)
        # A statement per INSERT_ROWS rows: DuckDB holds a bound list as one value per
        # element, about a hundred bytes each, so the verdicts of an insider's two million
        # exports bound at once took gigabytes. Several statements are one transaction.
        with self.transaction() if len(rows) > INSERT_ROWS else nullcontext():
            for start in range(0, len(rows), INSERT_ROWS):
                columns = [list(c) for c in zip(*rows[start : start + INSERT_ROWS], strict=True)]
                if len(columns) != len(types):
                    raise StoreError(f"{table} has {len(types)} columns; rows have {len(columns)}")
                self.execute(f"INSERT INTO {table} SELECT {select} {on_conflict}", columns)

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All-or-nothing: a crash or error inside leaves the store as it was before. Inside
        another, the block is part of that one. (Known, not tried: a BEGIN inside a
        transaction fails, and in DuckDB the failure aborts the open transaction.)"""
        if self._transaction:
            yield self
            return
        self.con.execute("BEGIN TRANSACTION")
        self._transaction = True
        try:
            yield self
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.execute("COMMIT")
        finally:
            self._transaction = False

    @contextmanager
    def ordered(self) -> Iterator[Store]:
        """Statements that must keep the order rows are in — a table stored sorted, then
        scanned into a file in that order, where sorting the larger output would cost more.
        Off otherwise: for events the order means nothing and keeping it costs parallelism."""
        self.con.execute("SET preserve_insertion_order=true")
        try:
            yield self
        finally:
            self.con.execute("SET preserve_insertion_order=false")

    @contextmanager
    def registered(self, name: str, table: Any) -> Iterator[None]:
        """Make an Arrow table queryable as ``name`` for the duration of the block."""
        self.con.register(name, table)
        try:
            yield
        finally:
            # After a failed statement the transaction is aborted and unregister fails too;
            # the original error is the one worth seeing.
            with suppress(duckdb.Error):
                self.con.unregister(name)

    def set_meta(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

    def meta(self, key: str) -> str | None:
        row = self.execute("SELECT value FROM meta WHERE key = ?", [key]).first()
        return row[0] if row else None

    def close(self) -> None:
        start = time.perf_counter()
        self.con.close()  # checkpoints
        trace(f"{(time.perf_counter() - start) * 1000:.1f} ms  close")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@cache
def _expected_columns() -> set[tuple[str, str]]:
    """Every (table, column) of a store at this layout: the DDL run on an empty database.
    Only read to name what a damaged store lacks."""
    con = duckdb.connect(":memory:")
    for statement in DDL:
        con.execute(statement)
    columns = _table_columns(con)
    con.close()
    return columns


def _table_columns(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str]]:
    """Every (table, column) of a database's tables (views are recreated, not checked)."""
    return set(con.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE'"
    ).fetchall())  # fmt: skip


# Rows bound per statement by Store.insert.
INSERT_ROWS = 50_000


def _shorten(sql: str, limit: int = 300) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= limit else flat[:limit] + " …"
