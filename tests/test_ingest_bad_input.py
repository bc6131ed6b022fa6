"""The bad-input corpus: each quarantine reason, with file, line and reason; good records kept."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from crmwatch.ingest import ingest
from crmwatch.store import Store
from tests.conftest import BAD

# file → (quarantined (line, byte_offset, reason) entries, user names of the records kept)
CASES = {
    # Line 3 has a stray quote, line 5 an unterminated one that swallows good line 6.
    "elf_bad_quoting.csv": (
        [(3, "bad_quoting"), (5, "bad_quoting")],
        {"quote1@example.com", "quote3@example.com", "quote5@example.com", "quote6@example.com"},
    ),
    "elf_wrong_columns.csv": (
        [(3, "wrong_column_count"), (5, "wrong_column_count")],
        {"cols1@example.com", "cols3@example.com", "cols5@example.com"},
    ),
    "elf_bad_timestamp.csv": ([(3, "bad_timestamp")], {"user1@example.com", "user3@example.com"}),
    "elf_invalid_utf8.csv": ([(3, "invalid_utf8")], {"user1@example.com", "user3@example.com"}),
    "okta_bad_lines.ndjson": (
        [(2, "invalid_json"), (4, "invalid_utf8")],
        {"user1@example.com", "user3@example.com", "user5@example.com"},
    ),
    # A JSON array cut short inside its third element: the first two are kept.
    "okta_truncated.json": ([(40, "invalid_json")], {"trunc1@example.com", "trunc2@example.com"}),
    "elf_json_not_object.ndjson": ([(2, "not_an_object")], {None}),
    "empty.log": ([(None, "empty_file")], set()),
    "notes.txt": ([(None, "unknown_format")], set()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_quarantines_exactly_the_bad_records(name: str, store: Store):
    expected_quarantine, expected_users = CASES[name]
    [f] = ingest(store, [BAD / name]).files
    got = store.execute("SELECT line, reason FROM quarantine ORDER BY line").rows
    assert got == expected_quarantine
    users = {r[0] for r in store.execute("SELECT user_name FROM events").rows}
    assert users == expected_users
    # a file quarantined whole stands for its lines (notes.txt: 2), else one entry per record
    lines = len((BAD / name).read_text(errors="replace").splitlines())
    assert f.quarantined == (lines if f.format is None else len(expected_quarantine))
    if f.format not in ("empty", None):
        assert f.records == f.inserted + f.duplicates + f.quarantined


def test_bad_corpus_as_one_directory_loses_no_good_record(store: Store):
    summary = ingest(store, [BAD])
    assert summary.errors == []
    kept = sum(len(users - {None}) + (2 if None in users else 0) for _, users in CASES.values())
    assert store.scalar("SELECT count(*) FROM events_base") == kept
    assert store.scalar("SELECT count(*) FROM quarantine") == sum(len(q) for q, _ in CASES.values())


def test_quarantine_reingest_is_idempotent(store: Store):
    ingest(store, [BAD])
    before = store.execute("SELECT * FROM quarantine ORDER BY quarantine_id").rows
    ingest(store, [BAD])
    assert store.execute("SELECT * FROM quarantine ORDER BY quarantine_id").rows == before


def test_forced_format_mismatch_quarantines_instead_of_crashing(store: Store):
    [f] = ingest(store, [BAD / "elf_json_not_object.ndjson"], fmt="okta").files
    # Okta mapping finds no "published": every record lacks a usable timestamp.
    assert f.reasons == {"not_an_object": 1, "bad_timestamp": 2}


def test_gzip_input_is_read_transparently(store: Store, tmp_path):
    import gzip

    src = (BAD / "elf_wrong_columns.csv").read_bytes()
    (tmp_path / "elf.csv.gz").write_bytes(gzip.compress(src))
    [f] = ingest(store, [tmp_path / "elf.csv.gz"]).files
    assert (f.format, f.inserted, f.quarantined) == ("elf-csv", 3, 2)
    assert store.execute("SELECT line FROM quarantine ORDER BY line").rows == [(3,), (5,)]


def _deeper_than_a_path_can_name(root: Path) -> Path:
    """Folders nested so deep that their path is longer than the system accepts (ENAMETOOLONG):
    a folder that cannot be read even by root. Built one level at a time, relative to the
    level above, as only relative names stay short enough."""
    root.mkdir()
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(20):
        os.mkdir("d" * 250, dir_fd=fd)
        inner = os.open("d" * 250, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    log = os.open("lost.ndjson", os.O_WRONLY | os.O_CREAT, dir_fd=fd)
    os.write(log, b'{"uuid": "u1", "published": "2025-06-10T10:00:00Z", "eventType": "x"}\n')
    os.close(log)
    os.close(fd)
    return root


def test_what_cannot_be_looked_into_is_reported_not_skipped(store: Store, tmp_path: Path):
    """Issue 19: an unreadable subfolder was skipped without a word."""
    logs = _deeper_than_a_path_can_name(tmp_path / "logs")
    (logs / "nowhere.json").symlink_to(tmp_path / "gone.json")
    (logs / "self.json").symlink_to(logs / "self.json")
    shutil.copy(BAD / "okta_truncated.json", logs / "okta.json")
    summary = ingest(store, [logs])
    errors = {f.path.name: f.error for f in summary.errors}
    assert "cannot read folder: File name too long" in errors["d" * 250], errors
    assert "symbolic link to nothing" in errors["nowhere.json"]
    assert "symbolic link to nothing" in errors["self.json"]
    assert summary.total("inserted") > 0  # the readable file is still read


def test_a_linked_folder_is_read_once(store: Store, tmp_path: Path):
    logs = tmp_path / "logs"
    (logs / "okta").mkdir(parents=True)
    shutil.copy(BAD / "okta_truncated.json", logs / "okta" / "a.json")
    (logs / "again").symlink_to(logs / "okta")
    (logs / "okta" / "up").symlink_to(logs)  # a loop
    summary = ingest(store, [logs])
    assert [f.path.name for f in summary.files] == ["a.json"] and not summary.errors


def test_utf16_without_a_byte_order_mark_is_named(tmp_path: Path):
    """UTF-16 without its mark cannot be told from binary by its first bytes: it is
    quarantined as of unknown format, and the reason says what it looks like; a file of
    unknown format that is not UTF-16 gets no such hint."""
    text = (BAD / "elf_invalid_utf8.csv").read_bytes().decode("utf-8", "replace")
    (tmp_path / "no_mark.csv").write_bytes(text.encode("utf-16-be"))
    shutil.copy(BAD / "notes.txt", tmp_path / "notes.txt")
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [tmp_path])
        details = dict(store.execute(
            "SELECT f.path, q.detail FROM quarantine q JOIN ingest_files f USING (file_id)"
        ).rows)  # fmt: skip
    by_name = {Path(k).name: v for k, v in details.items()}
    assert "looks like UTF-16 without a byte-order mark" in by_name["no_mark.csv"]
    assert "UTF-16" not in by_name["notes.txt"]
