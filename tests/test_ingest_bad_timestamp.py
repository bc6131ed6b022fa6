"""Rows whose timestamp does not parse are quarantined at their line, found by DuckDB.

The scan that stores CSV rows gives no line for a row it returns; a second DuckDB read
rejects the bad rows with their byte position (``ElfCsvSource.locate_untimed``). The lines
must be those the former locator found by parsing the whole file with Python's csv module,
kept below as the oracle, on every shape a file comes in.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from pathlib import Path

import pytest

import crmwatch.ingest
import crmwatch.sources.base
import crmwatch.sources.elf
from crmwatch.ingest import ingest
from crmwatch.sources.base import lines_at
from crmwatch.store import Store

HEADER = ["EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "USER_NAME", "URI", "TIMESTAMP_DERIVED"]
GOOD = "20250812101500.001"


def _row(i: int, ts: str = GOOD, uri: str = "/home", derived: str = "") -> list[str]:
    return ["Login", ts, f"R{i:05d}", f"user{i}@example.com", uri, derived]


def _csv(rows: list[list[str]], newline: str = "\n", quote_all: bool = True) -> bytes:
    out = io.StringIO(newline="")
    w = csv.writer(
        out, lineterminator=newline, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    )
    w.writerow(HEADER)
    w.writerows(rows)
    return out.getvalue().encode()


def python_lines(data: bytes, bad: list[list[str]]) -> list[int]:
    """Where the former locator put each bad row: Python's csv over the whole file, each
    row's values matched in file order (a repeated row takes the next match)."""
    wanted: dict[tuple, list[int]] = {}
    for i, r in enumerate(bad):
        wanted.setdefault(tuple(r), []).append(i)
    found: list[int] = [0] * len(bad)
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    next(reader)
    start = reader.line_num + 1
    for record in reader:
        if wanted.get(tuple(record)):
            found[wanted[tuple(record)].pop(0)] = start
        start = reader.line_num + 1
    return sorted(found)


def _quarantined(store: Store, path: Path) -> list[tuple[int, str]]:
    [f] = ingest(store, [path]).files
    assert f.error is None and f.records == f.inserted + f.duplicates + f.quarantined
    return store.execute("SELECT line, reason FROM quarantine ORDER BY line").rows


def test_a_bad_row_after_a_value_with_line_breaks_is_at_its_own_line(store: Store, tmp_path):
    """DuckDB's reject ``line`` counts records: it would say 3 here, the file says 5."""
    rows = [_row(1, uri="/a\nb\nc"), _row(2, ts="soon")]
    (tmp_path / "a.csv").write_bytes(_csv(rows))
    assert _quarantined(store, tmp_path / "a.csv") == [(5, "bad_timestamp")]
    assert store.scalar("SELECT list(raw->>'REQUEST_ID') FROM events") == ["R00001"]


def test_gzip_crlf_bom_blank_lines_and_a_repeated_bad_row(store: Store, tmp_path):
    body = _csv([_row(1, uri="x\r\ny"), _row(2, ts="bad"), _row(3), _row(2, ts="bad")], "\r\n")
    # a blank line before the first bad row: the reader points at it, not at the record
    body = body.replace(b'"Login","bad"', b'\r\n"Login","bad"', 1)
    data = b"\xef\xbb\xbf" + body
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(data))
    lines = [line for line, _ in _quarantined(store, tmp_path / "a.csv.gz")]
    assert lines == [5, 7] == python_lines(data, [_row(2, ts="bad")] * 2)


def test_a_row_the_reader_rejects_after_a_value_with_line_breaks_is_at_its_own_line(
    store: Store, tmp_path
):
    """The same count for rows DuckDB's own scan rejects (columns missing): its ``line``
    counts records and would put them higher up; the file says 6 and 9."""
    body = _csv([_row(1, uri="/a\nb\nc"), _row(2)])
    body += b'"Logout","20250812101500.001"\n' + _csv([_row(3, uri="d\ne")]).split(b"\n", 1)[1]
    body += b'"Logout"\n'
    (tmp_path / "a.csv").write_bytes(body)
    assert _quarantined(store, tmp_path / "a.csv") == [
        (6, "wrong_column_count"), (9, "wrong_column_count")
    ]  # fmt: skip


def test_a_row_good_by_its_derived_timestamp_is_no_bad_row(store: Store, tmp_path):
    """TIMESTAMP is not an EventLogFile time but TIMESTAMP_DERIVED is: the locating read
    rejects the row, and its values tell it from the bad row with the same TIMESTAMP."""
    rows = [_row(1, ts="x", derived="2025-08-12T10:15:00.000Z"), _row(2, ts="x"), _row(3)]
    (tmp_path / "a.csv").write_bytes(_csv(rows))
    assert _quarantined(store, tmp_path / "a.csv") == [(3, "bad_timestamp")]


def test_without_timestamp_columns_every_row_is_quarantined_at_its_line(store: Store, tmp_path):
    (tmp_path / "a.csv").write_text(
        '"EVENT_TYPE","USER_ID"\n"Logout","1"\n"Logout","2\n3"\n"L",4\n'
    )
    assert [line for line, _ in _quarantined(store, tmp_path / "a.csv")] == [2, 3, 5]


def test_more_bad_rows_than_one_insert_binds_are_all_quarantined(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The quarantine rows are written inside the ingest's transaction, several statements
    when there are more than INSERT_ROWS of them (a file of 200k rows in a local time format
    ended with nothing stored and an error, the transaction aborted by a second BEGIN)."""
    monkeypatch.setattr("crmwatch.store.INSERT_ROWS", 2)
    rows = [_row(i, ts="12/08/2025 10:15" if i % 2 else GOOD) for i in range(9)]
    (tmp_path / "a.csv").write_bytes(_csv(rows))
    assert _quarantined(store, tmp_path / "a.csv") == [(n, "bad_timestamp") for n in (3, 5, 7, 9)]
    assert store.scalar("SELECT count(*) FROM events_base") == 5


def test_bad_rows_are_located_without_reading_the_file_in_python(
    store: Store, tmp_path, monkeypatch
):
    """Issue 16: no stage holds a whole input file in Python (the careful reader too:
    tests/test_ingest_fallbacks.py)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the file was read whole in Python")

    for module in (crmwatch.ingest, crmwatch.sources.base, crmwatch.sources.elf):
        for name in ("read_input", "read_bytes"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, refuse)
    rows = [
        _row(i, uri="a\nb" if i % 7 == 0 else "/", ts=GOOD if i % 5 else "?") for i in range(50)
    ]
    (tmp_path / "a.csv").write_bytes(_csv(rows))
    assert len(_quarantined(store, tmp_path / "a.csv")) == 10


def test_a_row_read_carefully_keeps_its_line(store: Store, tmp_path):
    """A file DuckDB's reader loses its place in is read record by record in Python: a bad
    row there is quarantined at the line that reader found it on."""
    data = _csv([_row(1, uri="a\nb"), _row(2, ts="bad"), _row(3)]) + b'"Login","\xff\n'
    (tmp_path / "a.csv").write_bytes(data)
    got = _quarantined(store, tmp_path / "a.csv")
    assert got == [(4, "bad_timestamp"), (6, "invalid_utf8")]
    assert store.scalar("SELECT count(*) FROM events_base WHERE ingest_line IS NOT NULL") == 0


def _random_file(rng: random.Random) -> tuple[bytes, list[list[str]]]:
    rows, bad = [], []
    for _ in range(rng.randint(1, 30)):
        uri = rng.choice(["/", "a\nb", "a\r\nb", "\n", 'say "hi"', "a,b", "", "x\n\ny"])
        ts = rng.choice([GOOD, GOOD, GOOD, "", "bad", "2025-13-45", "20250812101500"])
        derived = rng.choice(["", "", "2025-08-12T10:15:00.000Z", "never"])
        row = _row(rng.randint(0, 5), ts, uri, derived)
        rows.append(row)
        if ts in ("", "bad", "2025-13-45") and derived in ("", "never"):
            bad.append(row)
    data = _csv(rows, rng.choice(["\n", "\r\n"]), quote_all=rng.random() < 0.5)
    if rng.random() < 0.3:  # blank lines between records
        data = data.replace(b"\n" + b'"Login"', b"\n\n" + b'"Login"').replace(
            b"\nLogin", b"\n\nLogin"
        )
    if rng.random() < 0.3:
        data = b"\xef\xbb\xbf" + data
    return data, bad


@pytest.mark.parametrize("seed", range(12))
def test_lines_are_those_python_csv_finds(seed: int, tmp_path: Path):
    rng = random.Random(seed)
    with Store(tmp_path / "s.duckdb") as store:
        for n in range(8):
            data, bad = _random_file(rng)
            path = tmp_path / f"f{n}.csv" if rng.random() < 0.5 else tmp_path / f"f{n}.csv.gz"
            path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
            [f] = ingest(store, [path]).files
            assert f.error is None and f.quarantined == len(bad), (data, f)
            lines = store.execute(
                "SELECT line FROM quarantine WHERE path = ? ORDER BY line", [str(path.absolute())]
            ).rows
            assert [line for (line,) in lines] == python_lines(data, bad), data


def test_lines_at_counts_breaks_as_universal_newlines(tmp_path: Path):
    path = tmp_path / "x"
    path.write_bytes(b"a\r\nb\rc\n\r\n\nd")
    # positions on line breaks move on to the next byte that is not one
    assert lines_at(path, [0, 3, 5, 7, 8, 10]) == {0: 1, 3: 2, 5: 3, 7: 6, 8: 6, 10: 6}


def test_reingest_of_bad_rows_is_idempotent(store: Store, tmp_path: Path):
    rows = [_row(1, uri="a\nb"), _row(2, ts="bad"), _row(2, ts="bad")]
    path = tmp_path / "a.csv"
    path.write_bytes(_csv(rows))
    ingest(store, [path])
    before = store.execute("SELECT * FROM quarantine ORDER BY quarantine_id").rows
    assert sorted(r[3] for r in before) == [4, 5]
    [f] = ingest(store, [path], rescan=True).files
    assert (f.inserted, f.duplicates, f.quarantined) == (0, 1, 2)
    assert store.execute("SELECT * FROM quarantine ORDER BY quarantine_id").rows == before


@pytest.mark.parametrize("word", ["infinity", "-infinity", "Infinity"])
def test_an_infinite_timestamp_is_no_timestamp(store: Store, tmp_path: Path, word: str):
    """DuckDB casts "infinity" to a timestamp it cannot subtract from: stored, one such line
    made every rule that measures time fail on the whole store. It is quarantined at its line
    like any timestamp that does not parse, in a CSV (the derived ISO column) and in JSON."""
    rows = [_row(1), _row(2, ts="soon", derived=word), _row(3)]
    (tmp_path / "a.csv").write_bytes(_csv(rows))
    assert _quarantined(store, tmp_path / "a.csv") == [(3, "bad_timestamp")]
    okta = tmp_path / "okta.ndjson"
    lines = [
        {"uuid": f"u{n}", "published": ts, "eventType": "user.session.start",
         "actor": {"alternateId": "ann@x.example"}}
        for n, ts in enumerate(["2025-06-10T09:00:00.000Z", word, "2025-06-10T09:01:00.000Z"])
    ]  # fmt: skip
    okta.write_text("".join(json.dumps(x) + "\n" for x in lines))
    [f] = ingest(store, [okta]).files
    assert (f.inserted, f.quarantined) == (2, 1)
    assert store.execute("SELECT line, reason FROM quarantine ORDER BY line").rows == [
        (2, "bad_timestamp"),  # the JSON line
        (3, "bad_timestamp"),  # the CSV row
    ]
    assert store.scalar("SELECT bool_and(isfinite(ts)) FROM events_base")
