"""Ingest: files in, one normalised, enriched, de-duplicated event store out.

Files are grouped into batches (same format; for CSV, same header) and each batch is one
transaction: its events, its quarantined records, its file rows and its enrichment commit
together or not at all. A run killed part-way therefore leaves whole batches only, and
re-running (every event has a content-derived id) completes the store without duplicating
anything: the store ends up exactly as an uninterrupted run leaves it.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from crmwatch.config import Config
from crmwatch.enrich import enrich
from crmwatch.errors import ConfigError, CrmwatchError, UsageError
from crmwatch.schema import BASE_NAMES, KEY_COLUMNS, PLACEHOLDERS, Reason
from crmwatch.sources import EMPTY, FORMATS, detect_format
from crmwatch.sources.base import (
    Content,
    InputFile,
    Quarantine,
    Source,
    Staged,
    count_lines,
    read_head,
)
from crmwatch.sources.elf import ElfCsvSource, read_header
from crmwatch.sources.sqlmap import lit, select_list
from crmwatch.sql import lit_list, num
from crmwatch.store import Store, trace

SKIPPED = "skipped (not a log)"
# A batch stops growing past this many input bytes: bounds memory, keeps dedupe joins few.
# CRMWATCH_BATCH_BYTES overrides it (smaller batches: less memory, more commits).
BATCH_BYTES = 512 << 20


def batch_bytes() -> int:
    value = os.environ.get("CRMWATCH_BATCH_BYTES")
    if value is None:
        return BATCH_BYTES
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(
            f"CRMWATCH_BATCH_BYTES must be a whole number of bytes above 0: {value!r}"
        )
    return int(value)


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
    # Ingested before and unchanged since: not read; the counts are the stored ones.
    unchanged: bool = False
    notes: list[str] = field(default_factory=list)  # what was done to read it (renamed columns)
    # new events whose native id an earlier event has with other content (kept, and said)
    id_collisions: int = 0

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
            "unchanged": self.unchanged,
            "notes": self.notes,
            "id_collisions": self.id_collisions,
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

    @property
    def label(self) -> str:
        """The format as ``ingest_files`` records it (and progress reports it)."""
        return self.format or "unknown"


# Files found in a directory with these suffixes are documentation, not logs: listed as
# skipped in the summary rather than quarantined. Named on the command line, they are tried.
DOC_SUFFIXES = (".md", ".rst", ".pdf", ".html", ".png", ".jpg", ".jpeg", ".gif")
CONFIG_SUFFIXES = (".toml", ".yml", ".yaml", ".py", ".sh")
STORE_SUFFIXES = (".duckdb", ".wal")  # never ingest a store, ours included
NOT_LOGS = frozenset((*DOC_SUFFIXES, *CONFIG_SUFFIXES, *STORE_SUFFIXES))


def expand_paths(paths: Iterable[Path | str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files named and files under directories named (recursively, symbolic links to folders
    followed once), in a stable order; and what could not be looked into, with why: a folder
    that cannot be read, a link to nothing. Hidden files (``.name``) are left out."""
    out: list[Path] = []
    problems: list[tuple[Path, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(_walk(p, problems))
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"no such file or directory: {p}")
    seen: set[Path] = set()
    files = [p for p in out if not (p.absolute() in seen or seen.add(p.absolute()))]
    return files, problems


def _walk(root: Path, problems: list[tuple[Path, str]]) -> list[Path]:
    """Files under ``root``, with an explicit stack: a folder 1,000 levels deep is read like
    any other (Python 3.11's ``os.walk`` recurses and would run out of stack)."""
    found: list[Path] = []
    folders: set[tuple[int, int]] = set()
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as e:
            problems.append((Path(folder), f"cannot read folder: {e.strerror}"))
            continue
        if (st.st_dev, st.st_ino) in folders:  # reached again through a link: read once
            continue
        folders.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            problems.append((Path(folder), f"cannot read folder: {e.strerror}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_symlink() and not os.path.exists(entry.path):
                    problems.append((path, "symbolic link to nothing (or to itself): not read"))
                elif entry.is_dir():  # follows links to folders
                    stack.append(entry.path)
                elif entry.is_file():
                    found.append(path)
                else:
                    problems.append((path, "not a regular file (a socket or pipe): not read"))
            except OSError as e:
                problems.append((path, f"cannot look at it: {e.strerror}"))
    return sorted(found)


def ingest(
    store: Store,
    paths: Iterable[Path | str],
    fmt: str | None = None,
    config: Config | None = None,
    on_progress: Callable[[InputFile, str], None] | None = None,
    rescan: bool = False,
) -> IngestSummary:
    """Ingest files and directories into ``store``.

    Args:
        paths: files or directories (searched recursively); ``.gz`` is read transparently.
        fmt: force one format name from ``crmwatch.sources.FORMATS`` instead of detecting.
        on_progress: called once per file as it is finished (for progress bars).
        rescan: read files again even when the store says they are unchanged (same path,
            size, modification time and format as when they were ingested).

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
    files, problems = expand_paths(paths)
    for path, problem in problems:
        summaries[hash(path)] = FileSummary(path.absolute(), None, error=f"{path}: {problem}")
    for path in files:
        if path.suffix.lower() in NOT_LOGS and path.absolute() not in named:
            summaries[hash(path)] = FileSummary(path.absolute(), SKIPPED)
            continue
        try:
            f = InputFile.of(path)
            planned.append(_plan(f, fmt))
            summaries[f.file_id] = FileSummary(f.path, planned[-1].format)
        except CrmwatchError as e:
            summaries[hash(path)] = FileSummary(path.absolute(), None, error=str(e))
    if not rescan:
        unchanged = _unchanged(store, planned, summaries)
        planned = [p for p in planned if p.file.file_id not in unchanged]
        for p in unchanged.values():
            if on_progress:
                on_progress(p.file, p.label)
    for batch in _batches(planned):
        fmt_name = batch[0].format
        files = [p.file for p in batch]
        if fmt_name is None or fmt_name == EMPTY:
            _record_unreadable(store, batch, summaries)
        else:
            _ingest_files(store, FORMATS[fmt_name](), files, config, summaries)
        for p in batch:
            if on_progress:
                on_progress(p.file, p.label)
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


def _unchanged(
    store: Store, planned: list[_Planned], summaries: dict[int, FileSummary]
) -> dict[int, _Planned]:
    """Files ingested before and unchanged since, their summaries filled from the store.

    A daily run over a growing export folder then reads only what is new, the way log
    shippers keep a registry of files read. "Unchanged" means the same path, size,
    modification time (to the nanosecond) and format: content rewritten in place with the
    size and time restored would be missed, which ``--rescan`` covers.
    """
    if not planned:
        return {}
    ids = {"ids": [p.file.file_id for p in planned]}
    stored = {
        r[0]: r[1:]
        for r in store.execute(
            "SELECT file_id, size, mtime_ns, format, records, skipped_headers, quarantined "
            "FROM ingest_files WHERE file_id IN (SELECT unnest($ids::BIGINT[]))",
            ids,
        ).rows
    }
    if not stored:
        return {}
    reasons: dict[int, Counter[str]] = {}
    for file_id, reason, n in store.execute(
        "SELECT file_id, reason, count(*) FROM quarantine "
        "WHERE file_id IN (SELECT unnest($ids::BIGINT[])) GROUP BY ALL",
        ids,
    ).rows:
        reasons.setdefault(file_id, Counter())[reason] = n
    out = {}
    for p in planned:
        row = stored.get(p.file.file_id)
        if row is None or row[:3] != (p.file.size, p.file.mtime_ns, p.label):
            continue
        s = summaries[p.file.file_id]
        s.records, s.skipped_headers, s.quarantined = row[3:]
        s.duplicates = s.records - s.quarantined
        s.reasons = reasons.get(p.file.file_id, Counter())
        s.unchanged = True
        out[p.file.file_id] = p
    return out


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
    filled: dict[tuple, int] = {}  # bytes in each key's last run
    limit = batch_bytes()
    for p in planned:
        runs = groups.setdefault(p.key, [[]])
        if runs[-1] and filled[p.key] + p.file.size > limit:
            runs.append([])
            filled[p.key] = 0
        runs[-1].append(p)
        filled[p.key] = filled.get(p.key, 0) + p.file.size
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
                lines = _lines(p.file.path)
                quarantined.append(
                    Quarantine(
                        p.file,
                        None,
                        0,
                        Reason.UNKNOWN_FORMAT,
                        "not EventLogFile CSV/JSON, a Salesforce object export, a Setup Audit "
                        f"Trail download or Okta System Log: the whole file ({lines} lines)"
                        + _bomless_utf16(p.file.path),
                        records=lines,
                    )
                )
        for q in quarantined:  # read whole: the records are the ones quarantined
            summaries[q.file.file_id].records = q.records
        _write_files_and_quarantine(
            store,
            [p.file for p in batch],
            quarantined,
            summaries,
            {p.file.file_id: p.label for p in batch},
        )


def _bomless_utf16(path: Path) -> str:
    """A hint for a file of unknown format that looks like UTF-16 without its byte-order mark
    (every other byte of its text a zero, as ``iconv -t utf-16be`` writes it): crmwatch tells
    UTF-16 by the mark, and says so rather than leave the user guessing."""
    head = read_head(path, 4096)
    if len(head) >= 16 and head.count(0) >= len(head) // 3:
        return (
            "; it looks like UTF-16 without a byte-order mark: save it with one (PowerShell's "
            "Out-File -Encoding Unicode, iconv -t UTF-16) or as UTF-8"
        )
    return ""


def _lines(path: Path) -> int:
    """The non-empty lines of a file quarantined whole: the records it stands for, as best a
    file of unknown format can be counted (at least 1). Counted as the content streams by
    (issue 16), never held whole."""
    return max(1, count_lines(Content(path)))


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
            # A region the fast reader rejects as a whole (stray binary, a gzip stream cut
            # short) must not cost the good records around it: read the file record by record.
            _reset(summaries[files[0].file_id], str(e))
            if source.reads_carefully:
                try:
                    _reset(summaries[files[0].file_id], None)
                    _ingest_batch(store, source, files, config, summaries, careful=True)
                except CrmwatchError as again:
                    _reset(summaries[files[0].file_id], str(again))
            return
    for f in files:
        _reset(summaries[f.file_id], None)
        _ingest_files(store, source, [f], config, summaries)


def _reset(s: FileSummary, error: str | None) -> None:
    """Forget the counts of a rolled-back attempt."""
    s.records = s.inserted = s.duplicates = s.skipped_headers = s.quarantined = 0
    s.reasons.clear()
    s.notes.clear()
    s.id_collisions = 0
    s.error = error


def _ingest_batch(
    store: Store,
    source,
    files: list[InputFile],
    config: Config,
    summaries: dict[int, FileSummary],
    careful: bool = False,
) -> None:
    by_id = {f.file_id: f for f in files}
    with store.transaction():
        # Rows appended from here on have larger row ids than every stored row (inside the
        # transaction and after it): ``rowid > mark`` is this batch.
        mark = store.scalar("SELECT coalesce(max(rowid), -1) FROM events_base")
        first = source.stage_careful(store, files[0]) if careful else source.stage(store, files)
        pending = [first] if first is not None else []
        quarantined: list[Quarantine] = []
        scopes: list[str] = []
        while pending:
            st = pending.pop(0)
            # Registered while this relation is read only: a file streamed in chunks is
            # never held whole.
            with ExitStack() as registered:
                for name, table in st.tables.items():
                    registered.enter_context(store.registered(name, table))
                if st.relation:
                    _insert(store, st)
                    scopes.append(st.scope)
                # After the insert, which read every column: the reader's rejects are
                # complete; a JSON source reads the lines the insert left.
                pending.extend(source.followups(store, st))
            for file_id, n in st.report.skipped_headers.items():
                summaries[file_id].skipped_headers += n
            for file_id, note in st.report.notes:
                summaries[file_id].notes.append(note)
            quarantined.extend(st.report.quarantined)
        # Records read, counted where they are read: every staged row (a repeated header line
        # is none), and what staging quarantined. `records = new + duplicate + quarantined`
        # is then a check on the steps that follow, not a definition.
        read = Counter({f.file_id: 0 for f in files})
        for q in quarantined:
            read[q.file.file_id] += q.records
        for file_id, n in store.execute(
            "SELECT file_id, count(*) FROM events_base WHERE rowid > $mark "
            "AND source_type IS DISTINCT FROM $header GROUP BY ALL",
            {"mark": mark, "header": HEADER_MARK},
        ).rows:
            read[file_id] += n
        for file_id, n in read.items():
            summaries[file_id].records = n
        if scopes:
            quarantined.extend(_settle_untimed(store, source, mark, by_id, summaries))
            _count_new(store, mark, summaries)
            for scope in dict.fromkeys(scopes):
                _drop_duplicates(store, scope, mark, summaries)
            _count_id_collisions(store, mark, summaries)
        # Only this batch's rows can hold values the dimension tables have not seen.
        enrich(store, config.enrich, f"(SELECT * FROM events_base WHERE rowid > {int(mark)})")
        formats = {f.file_id: source.name for f in files}
        _write_files_and_quarantine(store, files, quarantined, summaries, formats)


# source_type of a header line repeated inside a concatenated CSV while its batch is open.
HEADER_MARK = "_header"


def _insert(store: Store, st: Staged) -> None:
    """Append every staged row in one pass over the input.

    The input is read once, by this INSERT: rows without a usable timestamp and repeated
    header lines are stored too (``ts`` NULL, headers marked by ``HEADER_MARK``), found
    afterwards from the stored columns and removed before the batch commits
    (``_settle_untimed``). Stored events therefore always have a timestamp.
    """
    exprs = dict(st.exprs)
    header = exprs.pop("_header")
    exprs["ts"] = f"CASE WHEN {header} THEN NULL ELSE {exprs['ts']} END"
    exprs["source_type"] = (
        f"CASE WHEN {header} THEN {lit(HEADER_MARK)} ELSE {exprs['source_type']} END"
    )
    # A placeholder is no identity (schema.PLACEHOLDERS): tested on the computed column, so
    # the column's expression is evaluated once. "infinity" casts to a timestamp DuckDB
    # cannot subtract from: one such log line made every rule that measures time fail on
    # the whole store, so it is no timestamp either.
    outer = ", ".join(
        f"CASE WHEN {c} IN {lit_list(PLACEHOLDERS)} THEN NULL ELSE {c} END"
        if c in KEY_COLUMNS
        else "CASE WHEN isfinite(ts) THEN ts END"
        if c == "ts"
        else "CASE WHEN NOT coalesce(isfinite(ts), false) THEN ingest_line END"
        if c == "ingest_line" and st.line_if_untimed
        else c
        for c in BASE_NAMES
    )
    store.execute(
        f"INSERT INTO events_base SELECT {outer} FROM "
        f"(SELECT {select_list(exprs, BASE_NAMES)} FROM {st.relation})"
    )


def _settle_untimed(
    store: Store,
    source: Source,
    mark: int,
    by_id: dict[int, InputFile],
    summaries: dict[int, FileSummary],
) -> list[Quarantine]:
    """Count this batch's repeated header lines, quarantine its rows whose timestamp is
    missing or unparseable (located in their files), and delete both from the store."""
    # A JSON record, and a CSV row Python read, has its line; a CSV row DuckDB's scan read
    # has its values (``raw``, with a ``raw_schema``), by which the source locates it in
    # SQL: those are never read here, however many (a file in a time format of its own).
    untimed = f"ts IS NULL AND rowid > {num(mark)}"
    header = f"coalesce(source_type = {lit(HEADER_MARK)}, false)"
    located = f"NOT {header} AND raw_schema IS NOT NULL AND ingest_line IS NULL"
    rows = store.execute(
        f"SELECT file_id, ingest_line, {header}, raw_schema IS NULL, event_id FROM events_base "
        f"WHERE {untimed} AND NOT ({located})"
    ).rows
    to_locate = store.execute(
        f"SELECT DISTINCT file_id FROM events_base WHERE {untimed} AND {located}"
    ).rows
    out: list[Quarantine] = []
    seen: Counter[tuple] = Counter()
    detail = "TIMESTAMP/TIMESTAMP_DERIVED not parseable"
    for file_id, line, is_header, is_json, event_id in rows:
        if is_header:
            summaries[file_id].skipped_headers += 1
        elif is_json:
            # records of one line (a one-line export) told apart by content, repeats by count
            seen[(file_id, line, event_id)] += 1
            key = f"{event_id}#{seen[(file_id, line, event_id)]}"
            out.append(
                Quarantine(
                    by_id[file_id], line, None, Reason.BAD_TIMESTAMP, "no parseable timestamp",
                    key,
                )
            )  # fmt: skip
        else:
            out.append(Quarantine(by_id[file_id], line, None, Reason.BAD_TIMESTAMP, detail))
    for (file_id,) in to_locate:
        f = by_id[file_id]
        relation = (
            f"(SELECT raw FROM events_base WHERE {untimed} AND {located} "
            f"AND file_id = {num(file_id)})"
        )
        for line in source.locate_untimed(store, f, relation):
            out.append(Quarantine(f, line, None, Reason.BAD_TIMESTAMP, detail))
    if rows or to_locate:
        store.execute(f"DELETE FROM events_base WHERE {untimed}")
    return out


def _count_new(store: Store, mark: int, summaries: dict[int, FileSummary]) -> None:
    rows = store.execute(
        "SELECT file_id, count(*) FROM events_base WHERE rowid > $mark GROUP BY ALL",
        {"mark": mark},
    ).rows
    for file_id, n in rows:
        summaries[file_id].inserted += n


def _count_id_collisions(store: Store, mark: int, summaries: dict[int, FileSummary]) -> None:
    """Count this batch's events whose native id another stored event already has with other
    content: kept (a re-export or a sanitised file repeats ids), but said, since a source's
    ids are meant to be unique. Within the batch, "earlier" is the order duplicates are kept
    in (file id, then line), not the order rows were appended in, which parallel inserts do
    not fix."""
    rows = store.execute(
        """SELECT b.file_id, count(*) FROM events_base b
        WHERE b.rowid > $mark AND b.native_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM events_base o WHERE o.native_id = b.native_id
              AND o.source_type = b.source_type AND o.event_id <> b.event_id
              AND (o.rowid <= $mark OR (o.file_id, coalesce(o.ingest_line, -1), o.rowid)
                   < (b.file_id, coalesce(b.ingest_line, -1), b.rowid)))
        GROUP BY ALL""",
        {"mark": mark},
    ).rows
    for file_id, n in rows:
        summaries[file_id].id_collisions += n


def _drop_duplicates(
    store: Store, scope: str, mark: int, summaries: dict[int, FileSummary]
) -> None:
    """Remove this batch's rows whose event is already stored or repeated in the batch.

    Ids can only collide within ``scope`` (same header, or same source prefix) and inside the
    time range of the batch's rows there, so DuckDB skips row groups by their min/max ``ts``.
    Of each set of equal ids a stored row is kept; otherwise the row of the lowest file id (a
    hash of the path, so the same on every run), then line. Stored events never repeat an id,
    so every row removed is one of this batch's: a first ingest removes nothing.
    """
    lo, hi = store.execute(
        f"SELECT min(ts), max(ts) FROM events_base WHERE {scope} AND rowid > $mark",
        {"mark": mark},
    ).rows[0]
    if lo is None:
        return
    where = f"{scope} AND ts BETWEEN $lo AND $hi"
    params = {"lo": lo, "hi": hi}
    dups = store.scalar(
        f"SELECT count(*) - count(DISTINCT event_id) FROM events_base WHERE {where}", params
    )
    if not dups:
        return
    store.execute(
        "CREATE OR REPLACE TEMP TABLE _dup AS SELECT rid, file_id FROM (SELECT rowid AS rid, "
        "file_id, row_number() OVER (PARTITION BY event_id ORDER BY rowid > $mark, file_id, "
        f"ingest_line, rowid) AS k FROM events_base WHERE {where}) WHERE k > 1",
        {**params, "mark": mark},
    )
    for file_id, n in store.execute("SELECT file_id, count(*) FROM _dup GROUP BY ALL").rows:
        summaries[file_id].duplicates += n
        summaries[file_id].inserted -= n
    store.execute("DELETE FROM events_base WHERE rowid IN (SELECT rid FROM _dup)")
    store.execute("DROP TABLE _dup")


def _write_files_and_quarantine(
    store: Store,
    files: list[InputFile],
    quarantined: list[Quarantine],
    summaries: dict[int, FileSummary],
    formats: dict[int, str],
) -> None:
    for q in quarantined:
        s = summaries[q.file.file_id]
        s.quarantined += q.records
        s.reasons[str(q.reason)] += q.records
    if quarantined:
        store.insert(
            "quarantine",
            [
                (
                    q.quarantine_id,
                    q.file.file_id,
                    str(q.file.path),
                    q.line,
                    q.byte_offset,
                    str(q.reason),
                    q.detail[:500],
                    q.records,
                )
                for q in quarantined
            ],
            "ON CONFLICT DO NOTHING",
        )
    # Columns in table order (mtime_ns was added last, by ALTER, in old and new stores alike).
    store.insert(
        "ingest_files",
        [
            (
                f.file_id,
                str(f.path),
                formats[f.file_id],
                f.size,
                summaries[f.file_id].records,
                summaries[f.file_id].skipped_headers,
                summaries[f.file_id].quarantined,
                f.mtime_ns,
            )
            for f in files
        ],
        "ON CONFLICT (file_id) DO UPDATE SET path = excluded.path, format = excluded.format, "
        "size = excluded.size, records = excluded.records, "
        "skipped_headers = excluded.skipped_headers, quarantined = excluded.quarantined, "
        "mtime_ns = excluded.mtime_ns",
    )
    trace(f"batch of {len(files)} files: {sum(summaries[f.file_id].inserted for f in files)} new")
