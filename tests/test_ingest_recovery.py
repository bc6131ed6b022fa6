"""Dedupe across overlapping inputs, and an ingest killed part-way then re-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crmwatch.ingest import ingest
from crmwatch.simulate.volume import write_elf_csvs
from crmwatch.sources.base import InputFile
from crmwatch.store import Store

# Tables whose content must not depend on how many runs it took (ingest_runs is a log).
COMPARED = ("events_base", "quarantine", "ingest_files", "raw_schemas", "ip_info", "ua_info")


def snapshot(db: Path) -> dict[str, list[tuple]]:
    with Store(db) as s:
        return {t: sorted(map(str, s.execute(f"SELECT * FROM {t}").rows)) for t in COMPARED}


def test_partially_overlapping_file_adds_only_its_new_rows(store: Store, tmp_path: Path):
    header = '"EVENT_TYPE","TIMESTAMP","USER_ID","SOURCE_IP"\n'

    def row(i: int) -> str:
        return f'"Logout","20250812101500.{i:03d}","005{i:012d}","203.0.113.{i}"\n'

    (tmp_path / "a.csv").write_text(header + "".join(row(i) for i in (1, 2, 3)))
    (tmp_path / "b.csv").write_text(header + "".join(row(i) for i in (2, 3, 4, 5)))
    ingest(store, [tmp_path / "a.csv"])
    [b] = ingest(store, [tmp_path / "b.csv"]).files
    assert (b.records, b.inserted, b.duplicates) == (4, 2, 2)
    assert store.scalar("SELECT count(*) FROM events_base") == 5


def test_a_file_read_half_written_then_whole_stores_each_row_once(store: Store, tmp_path: Path):
    """A log file picked up while still being written (a folder `crmwatch watch` reads) ends
    in the middle of a quoted field; the rows read then must be the rows read later from the
    whole file, empty fields included, or they are stored twice."""
    header = '"EVENT_TYPE","TIMESTAMP","USER_ID","SOURCE_IP","URI"\n'
    rows = "".join(f'"URI","20250812101500.{i:03d}","005{i:012d}","","/lightning/{i}"\n'
                   for i in range(1, 41))  # fmt: skip
    whole = (header + rows).encode()
    path = tmp_path / "URI.csv"
    path.write_bytes(whole[: len(whole) * 3 // 5 + 7])  # cut inside a quoted field
    first = ingest(store, [path]).files[0]
    assert 0 < first.inserted < 40 and first.quarantined
    path.write_bytes(whole)
    ingest(store, [path])
    assert store.scalar("SELECT count(*) FROM events_base") == 40


def test_a_stored_event_keeps_its_file_when_a_file_with_a_lower_id_repeats_it(
    store: Store, tmp_path: Path
):
    """Within a batch the lowest file id wins; against the store, the stored row always
    does, so an event's ``ingest_file`` never moves once stored."""
    header = '"EVENT_TYPE","TIMESTAMP","USER_ID"\n'
    rows = [f'"Logout","20250812101500.00{i}","005{i}"\n' for i in range(4)]
    paths = [tmp_path / "a.csv", tmp_path / "b.csv"]
    paths[0].write_text(header + "".join(rows[:3]))
    paths[1].write_text(header + "".join(rows))
    first, later = sorted(paths, key=lambda p: InputFile.of(p).file_id, reverse=True)
    ingest(store, [first])
    [s] = ingest(store, [later]).files
    n = len(rows) if later.name == "b.csv" else 3
    assert (s.records, s.inserted, s.duplicates) == (n, n - 3, 3)
    owners = store.execute(
        "SELECT DISTINCT f.path FROM events_base e JOIN ingest_files f USING (file_id) "
        "WHERE e.user_id IN ('0050', '0051', '0052')"
    ).rows
    assert owners == [(str(first.absolute()),)]


def test_unchanged_files_are_not_read_again_and_rescan_reads_them(store: Store, tmp_path: Path):
    header = '"EVENT_TYPE","TIMESTAMP","USER_ID"\n'
    bad = '"Logout","BAD","005B"\n'
    f = tmp_path / "a.csv"
    f.write_text(header + '"Logout","20250812101500.001","005A"\n' + bad)
    [first] = ingest(store, [f]).files
    assert (first.inserted, first.quarantined, first.unchanged) == (1, 1, False)
    # New content with the same size and modification time passes for unchanged: not read,
    # and the summary repeats the stored counts.
    st = f.stat()
    f.write_text(header + '"Logout","20250812101500.002","005C"\n' + bad)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    [again] = ingest(store, [f]).files
    assert again.unchanged
    assert (again.records, again.inserted, again.duplicates, again.quarantined) == (2, 0, 1, 1)
    assert again.reasons == {"bad_timestamp": 1}
    assert store.scalar("SELECT list(user_id) FROM events_base") == ["005A"]
    [read] = ingest(store, [f], rescan=True).files
    assert (read.unchanged, read.inserted, read.duplicates, read.quarantined) == (False, 1, 0, 1)
    # A later modification time is a change: read again, its events are duplicates.
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    [touched] = ingest(store, [f]).files
    assert (touched.unchanged, touched.inserted, touched.duplicates) == (False, 0, 1)


def test_identical_rows_in_one_batch_are_stored_once(store: Store, tmp_path: Path):
    text = '"EVENT_TYPE","TIMESTAMP","USER_ID"\n' + '"Logout","20250812101500.001","005A"\n' * 3
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "x.csv").write_text(text)
    (logs / "y.csv").write_text(text)
    summary = ingest(store, [logs])
    # Which file keeps it is fixed by the files' ids (path hashes): deterministic, not ordered.
    assert sorted((f.inserted, f.duplicates) for f in summary.files) == [(0, 3), (1, 2)]
    assert store.scalar("SELECT count(*) FROM events_base") == 1


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("volume")
    write_elf_csvs(out, 150_000, days=4)
    return out


def test_sigkill_part_way_then_rerun_equals_an_uninterrupted_run(volume: Path, tmp_path: Path):
    clean, killed = tmp_path / "clean.duckdb", tmp_path / "killed.duckdb"
    env = {**os.environ, "CRMWATCH_TRACE": "1", "CRMWATCH_BATCH_BYTES": str(2 << 20)}
    cmd = [sys.executable, "-m", "crmwatch", "ingest", str(volume), "--json"]
    subprocess.run([*cmd, "--db", str(clean)], env=env, check=True, capture_output=True)

    proc = subprocess.Popen([*cmd, "--db", str(killed)], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)  # fmt: skip
    batches = 0
    for line in proc.stderr:  # type: ignore[union-attr]
        if "INSERT INTO events_base" in line:
            batches += 1
            if batches == 3:  # inside the third batch's transaction, two committed before
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = snapshot(killed)["events_base"]
    full = snapshot(clean)["events_base"]
    assert 0 < len(partial) < len(full), "the kill must land part-way"

    subprocess.run([*cmd, "--db", str(killed)], env=env, check=True, capture_output=True)
    assert snapshot(killed) == snapshot(clean)


def test_store_files_in_a_log_directory_are_skipped_not_ingested(tmp_path: Path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.csv").write_text('"EVENT_TYPE","TIMESTAMP"\n"Logout","20250812101500.001"\n')
    with Store(logs / "crmwatch.duckdb") as s:
        summary = ingest(s, [logs])
    formats = {f.path.name: f.format for f in summary.files}
    assert formats.pop("a.csv") == "elf-csv"
    assert "crmwatch.duckdb" in formats  # and its .wal, if DuckDB left one
    assert set(formats.values()) == {"skipped (not a log)"}


def test_a_cut_multibyte_character_before_a_line_break_loses_no_following_line(tmp_path):
    """A record cut inside a UTF-8 sequence leaves an invalid byte before its line break; the
    CSV reader replaces both, so the lines its open quote swallowed are split from the file's
    own bytes (found by hypothesis: tests/test_properties.py)."""
    from crmwatch.ingest import ingest
    from crmwatch.store import Store

    path = tmp_path / "elf.csv"
    path.write_bytes(
        b'"EVENT_TYPE","TIMESTAMP","REQUEST_ID","USER_ID","USER_NAME","SOURCE_IP","URI"\n'
        b'"API","20250812100000.000","R00000","005000000000000","\xc2\n'
        b'"API","20250812100001.001","R00001","005000000000001","jo","203.0.113.1","/q"\n'
    )
    with Store(":memory:") as store:
        [f] = ingest(store, [path]).files
        assert (f.records, f.inserted, f.quarantined) == (2, 1, 1)
        assert store.scalar("SELECT raw->>'REQUEST_ID' FROM events") == "R00001"
