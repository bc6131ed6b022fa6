"""Store.insert: Python rows into a typed table in one statement; a damaged store is refused,
an older one brought up to date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.errors import StoreError
from crmwatch.schema import DDL, TABLES
from crmwatch.store import SCHEMA_VERSION, Store
from tests.breach import write_breach


def test_insert_binds_each_column_with_the_table_type(store: Store):
    store.execute(
        "CREATE TEMP TABLE t (id VARCHAR, mask UBIGINT, fields VARCHAR[], ts TIMESTAMP, "
        "n INTEGER, body JSON)"
    )
    rows = [
        ("a", 2**64 - 1, ["Email", "Phone"], dt.datetime(2025, 6, 1, 9, 30), None, '{"k": 1}'),
        ("b", 3, [], "2025-06-02T10:00:00", 7, None),
    ]
    store.insert("t", rows)
    assert store.execute("SELECT * FROM t ORDER BY id").rows == [
        ("a", 2**64 - 1, ["Email", "Phone"], dt.datetime(2025, 6, 1, 9, 30), None, '{"k": 1}'),
        ("b", 3, [], dt.datetime(2025, 6, 2, 10), 7, None),
    ]


def test_insert_on_conflict_skips_keys_already_stored_and_repeated_in_the_rows(store: Store):
    store.execute("CREATE TEMP TABLE q (id VARCHAR PRIMARY KEY, line INTEGER)")
    store.insert("q", [("x", 1)])
    store.insert("q", [("x", 2), ("y", 3), ("y", 3), ("z", 5)], "ON CONFLICT DO NOTHING")
    assert store.execute("SELECT * FROM q ORDER BY id").rows == [("x", 1), ("y", 3), ("z", 5)]


def test_insert_of_no_rows_is_a_no_op_and_a_wrong_width_is_an_error(store: Store):
    store.execute("CREATE TEMP TABLE p (a VARCHAR, b INTEGER)")
    store.insert("p", [])
    assert store.scalar("SELECT count(*) FROM p") == 0
    with pytest.raises(StoreError, match="p has 2 columns; rows have 3"):
        store.insert("p", [("a", 1, "extra")])
    with pytest.raises(ValueError):
        store.insert("p", [("a", 1), ("b",)])
    assert store.scalar("SELECT count(*) FROM p") == 0


def test_a_large_insert_is_several_statements_and_still_all_or_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
):
    """Rows are bound INSERT_ROWS at a time (a bound list costs DuckDB about a hundred bytes
    per element); every row arrives, in one transaction: a bad row in a later statement
    leaves none of the earlier ones, outside a transaction and inside the caller's."""
    monkeypatch.setattr("crmwatch.store.INSERT_ROWS", 2)
    store.execute("CREATE TEMP TABLE m (a VARCHAR, b INTEGER)")
    store.insert("m", [(f"r{n}", n) for n in range(5)])
    assert store.execute("SELECT * FROM m ORDER BY b").rows == [(f"r{n}", n) for n in range(5)]
    with pytest.raises(ValueError):
        store.insert("m", [("x", 10), ("y", 11), ("z", 12), ("bad",)])
    assert store.scalar("SELECT count(*) FROM m") == 5
    with pytest.raises(ValueError), store.transaction():
        store.insert("m", [("x", 10), ("y", 11), ("z", 12)])
        store.insert("m", [("x", 10), ("y", 11), ("z", 12), ("bad",)])
    assert store.scalar("SELECT count(*) FROM m") == 5
    store.insert("m", [("x", 10), ("y", 11), ("z", 12)])
    assert store.scalar("SELECT count(*) FROM m") == 8
    # inside the caller's transaction, it is part of it (a BEGIN tried there would abort it)
    with store.transaction():
        store.insert("m", [("p", 20), ("q", 21), ("r", 22)])
        store.execute("INSERT INTO m VALUES ('s', 23)")
    assert store.scalar("SELECT count(*) FROM m") == 12


def _tamper(db: Path, *statements: str) -> Path:
    """``db`` changed behind crmwatch's back: a store (made if missing), then ``statements``
    run on it with DuckDB directly."""
    if not db.exists():
        Store(db).close()
    con = duckdb.connect(str(db))
    for sql in statements:
        con.execute(sql)
    con.close()
    return db


def test_stream_reads_every_row_in_order_across_batches_and_says_what_failed(store: Store):
    sql = "SELECT i, 'r' || i AS name FROM range(5000) t(i) ORDER BY i"
    rows = store.stream(sql, batch=1000)
    assert next(rows) == {"i": 0, "name": "r0"}
    assert [r["i"] for r in rows] == list(range(1, 5000))
    with pytest.raises(StoreError, match="no_such_table"):
        list(store.stream("SELECT * FROM no_such_table"))


@pytest.mark.parametrize("table", ["events_base", "ip_info", "exposures", "meta"])
def test_a_store_missing_a_table_is_refused_not_answered_from_an_empty_one(
    tmp_path: Path, table: str
):
    """Issue 19: after DROP TABLE events_base, stats said 0 events; without exposures, notify
    wrote an empty package and exited 0."""
    db = tmp_path / "s.duckdb"
    runner = CliRunner()
    assert runner.invoke(app, ["ingest", str(write_breach(tmp_path / "logs")), "--db", str(db)]
                         ).exit_code == 0  # fmt: skip
    _tamper(db, f"DROP TABLE {table}")
    res = runner.invoke(app, ["stats", "--db", str(db)])
    assert res.exit_code == 2 and "damaged or not a crmwatch store" in res.stderr
    assert (table if table != "meta" else "no schema version") in res.stderr
    con = duckdb.connect(str(db))
    assert table not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}  # not recreated
    con.close()


def test_a_store_of_the_first_layout_gets_its_missing_tables(tmp_path: Path):
    db = _tamper(tmp_path / "s.duckdb", "DROP TABLE ingest_runs",
                 "UPDATE meta SET value = '1' WHERE key = 'schema_version'")  # fmt: skip
    with Store(db) as store:
        assert store.meta("schema_version") == SCHEMA_VERSION
        tables = {r[0] for r in store.execute("SHOW TABLES").rows}
    assert set(TABLES) <= tables


def test_a_duckdb_file_of_something_else_is_not_taken_for_a_store(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "other.duckdb"))
    con.execute("CREATE TABLE orders (id INTEGER)")
    con.close()
    with pytest.raises(StoreError, match="not a crmwatch store"):
        Store(tmp_path / "other.duckdb")


def test_a_store_missing_a_column_is_refused(tmp_path: Path):
    db = _tamper(tmp_path / "s.duckdb", "DROP VIEW events",
                 "ALTER TABLE events_base DROP COLUMN user_name")  # fmt: skip
    with pytest.raises(StoreError, match=r"column\(s\) missing: events_base.user_name"):
        Store(db)


def test_a_store_of_a_newer_layout_is_refused_not_written_wrongly(tmp_path: Path):
    newer = int(SCHEMA_VERSION) + 1
    db = _tamper(tmp_path / "s.duckdb",
                 f"UPDATE meta SET value = '{newer}' WHERE key = 'schema_version'")  # fmt: skip
    with pytest.raises(StoreError, match="newer than this crmwatch"):
        Store(db)


def test_a_store_another_process_holds_names_the_likely_holder(tmp_path: Path):
    """`crmwatch serve` keeps its store open; a command run beside it says why it cannot."""
    import subprocess
    import sys

    db = tmp_path / "s.duckdb"
    Store(db).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError, match="`crmwatch serve` perhaps"):
            Store(db)
    finally:
        holder.kill()
        holder.wait()


def _bytes(db: Path) -> bytes:
    return db.read_bytes() + (db.with_name(db.name + ".wal").read_bytes()
                              if db.with_name(db.name + ".wal").exists() else b"")  # fmt: skip


def test_a_store_at_this_layout_is_opened_without_writing(tmp_path: Path):
    """Start-up (docs/design.md): a current store runs no DDL and writes nothing at open, so
    its file is the same bytes after an open and a close (no checkpoint either)."""
    db = tmp_path / "s.duckdb"
    Store(db).close()
    before = _bytes(db)
    with Store(db) as store:
        assert store.meta("schema_version") == SCHEMA_VERSION
    assert _bytes(db) == before


def test_a_changed_ddl_is_run_on_a_store_of_the_same_version(tmp_path: Path, monkeypatch):
    """The layout check compares the code's DDL text, not only SCHEMA_VERSION: a view whose
    text changed is made again, and made back by the code that had it before."""
    import crmwatch.store as store_module

    db = tmp_path / "s.duckdb"
    Store(db).close()
    view = next(i for i, s in enumerate(DDL) if s.startswith("CREATE OR REPLACE VIEW events "))
    changed = DDL[view].replace("b.native_id\n", "b.native_id, 1 AS extra\n")
    assert changed != DDL[view]
    monkeypatch.setattr(store_module, "DDL", (*DDL[:view], changed, *DDL[view + 1 :]))
    with Store(db) as store:
        assert "extra" in store.execute("SELECT * FROM events LIMIT 0").columns
    monkeypatch.setattr(store_module, "DDL", DDL)
    with Store(db) as store:
        assert "extra" not in store.execute("SELECT * FROM events LIMIT 0").columns


@pytest.mark.parametrize(
    "statement",
    [
        "DROP VIEW events",
        "CREATE OR REPLACE VIEW events AS SELECT 1 AS event_id",
        "DROP VIEW exposure_details",
        "DROP MACRO ipv4_int",
        # the same columns, other rows: told apart by the view's SQL
        next(s for s in DDL if s.startswith("CREATE OR REPLACE VIEW events "))
        + " WHERE b.event_id <> 'e1'",
    ],
)
def test_a_view_or_macro_changed_behind_crmwatch_is_made_again(tmp_path: Path, statement: str):
    """What the DDL makes and a store may lose without losing data (a view, a macro) is made
    again at the next open, as when every open ran the DDL."""
    db = _tamper(tmp_path / "s.duckdb", "INSERT INTO events_base (event_id) VALUES ('e1')",
                 statement)  # fmt: skip
    with Store(db) as store:
        assert "ingest_file" in store.execute("SELECT * FROM events LIMIT 0").columns
        assert store.scalar("SELECT count(*) FROM events") == 1
        assert store.scalar("SELECT count(*) FROM exposure_details") == 0
        assert store.scalar("SELECT ipv4_int('10.0.0.1')") == 167772161
    before = _bytes(db)
    Store(db).close()
    assert _bytes(db) == before, "made again once, then current"


def test_a_column_added_behind_crmwatch_is_kept_and_the_store_opens(tmp_path: Path):
    """A catalog other than the one crmwatch left (a user's own column) takes the full way
    once: nothing is lost, and the next open is the quick one again."""
    db = _tamper(tmp_path / "s.duckdb", "ALTER TABLE alerts ADD COLUMN note VARCHAR")
    with Store(db) as store:
        assert "note" in store.execute("SELECT * FROM alerts LIMIT 0").columns
    before = _bytes(db)
    Store(db).close()
    assert _bytes(db) == before
