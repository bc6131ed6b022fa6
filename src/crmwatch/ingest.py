"""Ingest: files in, one normalised, enriched, de-duplicated event store out.

Files are grouped into batches (same format; for CSV, same header) and each batch is one
transaction: its events, its quarantined records, its file rows and its enrichment commit
together or not at all. A run killed part-way therefore leaves whole batches only, and
re-running (every event has a content-derived id) completes the store without duplicating
anything: the store ends up exactly as an uninterrupted run leaves it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crmwatch.config import Config
from crmwatch.enrich import enrich
from crmwatch.errors import CrmwatchError, UsageError
from crmwatch.schema import BASE_COLUMNS, BASE_NAMES, Reason
from crmwatch.sources import EMPTY, FORMATS, detect_format
from crmwatch.sources.base import NORM_TABLE, InputFile, Quarantine, StageReport, read_bytes
from crmwatch.sources.elf import ElfCsvSource, read_header
from crmwatch.store import Store, trace

SKIPPED = "skipped (not a log)"
# A batch stops growing past this many input bytes: bounds memory, keeps dedupe joins few.
# CRMWATCH_BATCH_BYTES overrides it (smaller batches: less memory, more commits).
BATCH_BYTES = int(os.environ.get("CRMWATCH_BATCH_BYTES", 512 << 20))


@dataclass
class FileSummary:
    """What happened to one input file."""

    path: Path
    format: str | None
    records: int = 0
    inserted: int = 0
    duplicates: int = 0
    skipped_headers: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def to_dict(self) -> dict:
        return {
            "path": str(self.path),
            "format": self.format,
            "records": self.records,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "skipped_headers": self.skipped_headers,
            "quarantined": self.quarantined,
            "reasons": dict(self.reasons),
            "error": self.error,
        }


@dataclass
class IngestSummary:
    files: list[FileSummary]
    seconds: float = 0.0

    def total(self, attr: str) -> int:
        return sum(getattr(f, attr) for f in self.files)

    @property
    def errors(self) -> list[FileSummary]:
        return [f for f in self.files if f.error]


@dataclass
class _Planned:
    file: InputFile
    format: str | None  # None: unknown; EMPTY: no data
    key: tuple = ()


# Files found in a directory with these suffixes are documentation, not logs: listed as
# skipped in the summary rather than quarantined. Named on the command line, they are tried.
NOT_LOGS = (
    ".md",
    ".rst",
    ".pdf",
    ".html",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".toml",
    ".yml",
    ".yaml",
    ".py",
    ".sh",
)


def expand_paths(paths: Iterable[Path | str]) -> list[Path]:
    """Files named and files under directories named (recursively), in a stable order."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(
                sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
            )
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"no such file or directory: {p}")
    seen: set[Path] = set()
    return [p for p in out if not (p.absolute() in seen or seen.add(p.absolute()))]


def ingest(
    store: Store,
    paths: Iterable[Path | str],
    fmt: str | None = None,
    config: Config | None = None,
    on_progress: Callable[[InputFile, str], None] | None = None,
) -> IngestSummary:
    """Ingest files and directories into ``store``.

    Args:
        paths: files or directories (searched recursively); ``.gz`` is read transparently.
        fmt: force one format name from ``crmwatch.sources.FORMATS`` instead of detecting.
        on_progress: called once per file as it is finished (for progress bars).

    Returns:
        A per-file account: records read, new, duplicate, quarantined (with reasons).
        Unreadable files are reported in ``FileSummary.error``; they do not stop the run.
    """
    if fmt is not None and fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    config = config or Config()
    started = time.perf_counter()
    summaries: dict[int, FileSummary] = {}
    planned: list[_Planned] = []
    named = {Path(p).absolute() for p in paths}
    for path in expand_paths(paths):
        if path.suffix.lower() in NOT_LOGS and path.absolute() not in named:
            summaries[hash(path)] = FileSummary(path.absolute(), SKIPPED)
            continue
        try:
            f = InputFile.of(path)
            planned.append(_plan(f, fmt))
            summaries[f.file_id] = FileSummary(f.path, planned[-1].format)
        except CrmwatchError as e:
            summaries[hash(path)] = FileSummary(path.absolute(), None, error=str(e))
    for batch in _batches(planned):
        fmt_name = batch[0].format
        files = [p.file for p in batch]
        if fmt_name is None or fmt_name == EMPTY:
            _record_unreadable(store, batch, summaries)
        else:
            _ingest_files(store, FORMATS[fmt_name](), files, config, summaries)
        for f in files:
            if on_progress:
                on_progress(f, fmt_name or "unknown")
    result = IngestSummary(list(summaries.values()), time.perf_counter() - started)
    store.execute(
        "INSERT INTO ingest_runs VALUES (now()::TIMESTAMP - to_microseconds(?::BIGINT), "
        "now()::TIMESTAMP, ?, ?, ?, ?, ?, ?)",
        [
            int(result.seconds * 1e6),
            len(result.files),
            result.total("records"),
            result.total("inserted"),
            result.total("duplicates"),
            result.total("quarantined"),
            result.total("skipped_headers"),
        ],
    )
    return result


def _plan(f: InputFile, fmt: str | None) -> _Planned:
    name = fmt or detect_format(f.path)
    if f.size == 0:
        name = EMPTY
    key: tuple = (name,)
    if name == ElfCsvSource.name:
        key = (name, tuple(read_header(f.path)))
    return _Planned(f, name, key)


def _batches(planned: list[_Planned]) -> list[list[_Planned]]:
    groups: dict[tuple, list[list[_Planned]]] = {}
    for p in planned:
        runs = groups.setdefault(p.key, [[]])
        if runs[-1] and sum(q.file.size for q in runs[-1]) + p.file.size > BATCH_BYTES:
            runs.append([])
        runs[-1].append(p)
    return [run for runs in groups.values() for run in runs if run]


def _record_unreadable(
    store: Store, batch: list[_Planned], summaries: dict[int, FileSummary]
) -> None:
    with store.transaction():
        quarantined = []
        for p in batch:
            if p.format == EMPTY:
                quarantined.append(
                    Quarantine(p.file, None, 0, Reason.EMPTY_FILE, "file holds no data")
                )
            else:
                quarantined.append(
                    Quarantine(
                        p.file,
                        None,
                        0,
                        Reason.UNKNOWN_FORMAT,
                        "not EventLogFile CSV/JSON, a Salesforce object export or Okta System Log",
                    )
                )
        _write_files_and_quarantine(
            store,
            [p.file for p in batch],
            quarantined,
            summaries,
            {p.file.file_id: p.format or "unknown" for p in batch},
        )


def _ingest_files(
    store: Store, source, files: list[InputFile], config: Config, summaries: dict[int, FileSummary]
) -> None:
    """One batch; if it fails as a whole, each file alone, so one unreadable file (a corrupt
    gzip stream DuckDB cannot read) does not cost the others."""
    try:
        _ingest_batch(store, source, files, config, summaries)
        return
    except CrmwatchError as e:
        if len(files) == 1:
            _reset(summaries[files[0].file_id], str(e))
            return
    for f in files:
        _reset(summaries[f.file_id], None)
        _ingest_files(store, source, [f], config, summaries)


def _reset(s: FileSummary, error: str | None) -> None:
    """Forget the counts of a rolled-back attempt."""
    s.records = s.inserted = s.duplicates = s.skipped_headers = s.quarantined = 0
    s.reasons.clear()
    s.error = error


def _ingest_batch(
    store: Store, source, files: list[InputFile], config: Config, summaries: dict[int, FileSummary]
) -> None:
    with store.transaction():
        cols = ", ".join(f"{c.name} {c.sql_type}" for c in BASE_COLUMNS)
        store.execute(f"CREATE OR REPLACE TEMP TABLE {NORM_TABLE} ({cols}, _header BOOLEAN)")
        report: StageReport = source.stage(store, files)
        by_id = {f.file_id: f for f in files}
        counts = store.execute(
            f"SELECT file_id, count(*) FILTER (WHERE _header), "
            f"count(*) FILTER (WHERE NOT _header) FROM {NORM_TABLE} GROUP BY file_id"
        ).rows
        for file_id, headers, records in counts:
            s = summaries[file_id]
            s.skipped_headers += headers
            s.records += records
        for file_id, n in report.skipped_headers.items():
            summaries[file_id].skipped_headers += n
        # Records the reader rejected were read too: records = inserted + duplicates +
        # quarantined, per file. (Rows with a bad timestamp are already counted above.)
        for q in report.quarantined:
            summaries[q.file.file_id].records += 1
        report.quarantined.extend(_bad_timestamps(store, by_id))
        enrich(store, config.enrich, NORM_TABLE)
        _insert_new(store, summaries)
        _write_files_and_quarantine(
            store, files, report.quarantined, summaries, {f.file_id: source.name for f in files}
        )
        store.execute(f"DROP TABLE {NORM_TABLE}")


def _bad_timestamps(store: Store, by_id: dict[int, InputFile]) -> list[Quarantine]:
    """Rows whose timestamp is missing or unparseable: quarantined, then dropped from the batch."""
    rows = store.execute(
        f"SELECT file_id, ingest_line, raw, raw_schema FROM {NORM_TABLE} "
        "WHERE NOT _header AND ts IS NULL"
    ).rows
    if not rows:
        return []
    out: list[Quarantine] = []
    csv_rows: dict[int, list[list[str]]] = {}
    for file_id, line, raw, raw_schema in rows:
        if raw_schema is None:
            out.append(
                Quarantine(
                    by_id[file_id], line, None, Reason.BAD_TIMESTAMP, "no parseable timestamp"
                )
            )
        else:
            csv_rows.setdefault(file_id, []).append(json.loads(raw))
    for file_id, values in csv_rows.items():
        f = by_id[file_id]
        for line in locate_csv_rows(f.path, values):
            out.append(
                Quarantine(
                    f, line, None, Reason.BAD_TIMESTAMP, "TIMESTAMP/TIMESTAMP_DERIVED not parseable"
                )
            )
    store.execute(f"DELETE FROM {NORM_TABLE} WHERE NOT _header AND ts IS NULL")
    return out


def locate_csv_rows(path: Path, rows: list[list[str | None]]) -> list[int | None]:
    """The starting line of each given CSV row in the file (a rare path: bad rows only)."""
    wanted: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        wanted.setdefault(tuple(v or "" for v in r), []).append(i)
    found: list[int | None] = [None] * len(rows)
    text = read_bytes(path).decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    start = 1
    for record in reader:
        key = tuple(record)
        if wanted.get(key):
            found[wanted[key].pop(0)] = start
        start = reader.line_num + 1
    return found


def _insert_new(store: Store, summaries: dict[int, FileSummary]) -> None:
    """Insert the batch's events the store does not have yet; count new and duplicate per file.

    An event is new when it is the first occurrence of its id in the batch (lowest file, then
    line) and the store does not hold it. The store side is restricted to the batch's time
    range so DuckDB skips row groups by their min/max ``ts``.
    """
    lo, hi, n, distinct = store.execute(
        f"SELECT min(ts), max(ts), count(*), count(DISTINCT event_id) FROM {NORM_TABLE} "
        "WHERE NOT _header"
    ).first()
    if not n:
        return
    overlap = store.scalar(
        "SELECT count(*) > 0 FROM events_base WHERE ts BETWEEN ? AND ?", [lo, hi]
    )
    cols = ", ".join(BASE_NAMES)
    if distinct == n and not overlap:
        store.execute(f"INSERT INTO events_base SELECT {cols} FROM {NORM_TABLE} WHERE NOT _header")
        new_by_file = store.execute(
            f"SELECT file_id, count(*) FROM {NORM_TABLE} WHERE NOT _header GROUP BY file_id"
        ).rows
    else:
        first_only = (
            "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY file_id, ingest_line) = 1"
            if distinct < n
            else ""
        )
        not_stored = (
            "AND NOT EXISTS (SELECT 1 FROM events_base b WHERE b.ts BETWEEN $lo AND $hi "
            "AND b.event_id = n.event_id)"
            if overlap
            else ""
        )
        store.execute(
            f"CREATE OR REPLACE TEMP TABLE _new AS SELECT n.rid, n.file_id FROM ("
            f"SELECT rowid AS rid, file_id, event_id FROM {NORM_TABLE} WHERE NOT _header "
            f"{first_only}) n WHERE true {not_stored}",
            {"lo": lo, "hi": hi} if overlap else None,
        )
        store.execute(
            f"INSERT INTO events_base SELECT {cols} FROM {NORM_TABLE} "
            "WHERE rowid IN (SELECT rid FROM _new)"
        )
        new_by_file = store.execute("SELECT file_id, count(*) FROM _new GROUP BY file_id").rows
        store.execute("DROP TABLE _new")
    new = dict(new_by_file)
    totals = store.execute(
        f"SELECT file_id, count(*) FROM {NORM_TABLE} WHERE NOT _header GROUP BY file_id"
    ).rows
    for file_id, total in totals:
        summaries[file_id].inserted += new.get(file_id, 0)
        summaries[file_id].duplicates += total - new.get(file_id, 0)


def _write_files_and_quarantine(
    store: Store,
    files: list[InputFile],
    quarantined: list[Quarantine],
    summaries: dict[int, FileSummary],
    formats: dict[int, str],
) -> None:
    for q in quarantined:
        s = summaries[q.file.file_id]
        s.quarantined += 1
        s.reasons[str(q.reason)] += 1
    if quarantined:
        store.con.executemany(
            "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                (
                    q.quarantine_id,
                    q.file.file_id,
                    str(q.file.path),
                    q.line,
                    q.byte_offset,
                    str(q.reason),
                    q.detail[:500],
                )
                for q in quarantined
            ],
        )
    for f in files:
        s = summaries[f.file_id]
        store.execute(
            "INSERT INTO ingest_files VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file_id) DO UPDATE "
            "SET path = excluded.path, format = excluded.format, size = excluded.size, "
            "records = excluded.records, skipped_headers = excluded.skipped_headers, "
            "quarantined = excluded.quarantined",
            [
                f.file_id,
                str(f.path),
                formats[f.file_id],
                f.size,
                s.records,
                s.skipped_headers,
                s.quarantined,
            ],
        )
    trace(f"batch of {len(files)} files: {sum(summaries[f.file_id].inserted for f in files)} new")
