"""Store.insert: Python rows into a typed table in one statement."""

from __future__ import annotations

import datetime as dt

import pytest

from crmwatch.errors import StoreError
from crmwatch.store import Store


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
