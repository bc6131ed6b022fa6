"""JSON inputs staged by DuckDB: Okta System Log, Salesforce event objects, EventLogFile JSON.

A file is read in chunks of whole lines, streamed: however large, only a chunk of it is in
memory. DuckDB parses each line, writes the record's canonical text and maps it, all in the
one INSERT the ingest driver runs per chunk. The canonical text (``raw``, from which the event
id is derived) is what Python's ``json`` always wrote: compact, keys sorted at every level,
non-ASCII as itself. DuckDB's ``json_normalize`` writes exactly that, except for a few values
it writes its own way (:data:`SUSPECT`: floats Python writes in exponent form, control
characters, non-finite numbers), so event ids stay what they were and a file ingested before
is recognised when read again.

Python reads only what DuckDB cannot read that way: lines that are not one JSON object
(blank, broken, several values, a query result to unwrap, not UTF-8) and the suspect records.
The INSERT leaves them out; once it is done, the chunk's lines that are not in the store are
read by :mod:`crmwatch.sources.jsonrecords`, which quarantines what is bad with its file,
line and reason and stages what is good through the same SQL. (Inserting such lines to delete
them again costs memory: once rows of a transaction are deleted, DuckDB keeps all its rows in
memory.) A file that is one JSON document spread over lines (pretty-printed) is read by the
same module as a stream, a block and a record at a time, and its records staged as they come;
a JSON array written one element per line is read like NDJSON.

Classification (a record's native type, its id, the document its mapping reads) is SQL too,
per source (``classify``); the mapping is the source's ``exprs``, shared with the CSV paths.
"""

from __future__ import annotations

import bisect
import itertools
import json
import operator
import queue
import threading
from abc import abstractmethod
from array import array
from collections.abc import Generator, Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from crmwatch import soql
from crmwatch.schema import Reason
from crmwatch.sources.base import (
    HEAD_BYTES,
    Input,
    InputFile,
    Quarantine,
    Source,
    Staged,
    StageReport,
    read_head,
    upto,
)
from crmwatch.sources.jsonrecords import (
    BadRecord,
    Item,
    JsonRecord,
    is_document,
    iter_line,
    iter_records,
    iter_stream,
)
from crmwatch.sources.sqlmap import JsonExtraction, Ref, lit
from crmwatch.sql import num
from crmwatch.store import Store

# Input read per chunk: one INSERT each. Chunks of many small files are one INSERT too.
CHUNK_BYTES = 64 << 20
# Records read by Python staged per INSERT.
ROWS_PER_UNIT = 50_000

LINES, ROWS, QUERIES = "_json_lines", "_json_rows", "_json_queries"
T = TypeVar("T")

# Records longer than this are read by Python: DuckDB's JSON functions each keep a parse of
# the largest record they saw, and normalising a 50 MB record next to mapping it exhausted
# the store's 2 GB (a record that size is an attack or a mistake, not a log line).
BIG_RECORD = 1 << 20

# Input text whose canonical form DuckDB writes otherwise than Python, found cheaply and
# conservatively (a match inside a string only sends a record to Python): a number in exponent
# form, of 17 digits or more, below 1e-4 written out (Python writes 1e+20, 1e-05; DuckDB
# 100000000000000000000.0, 0.00001), NaN and Infinity in any spelling (DuckDB accepts nan and
# inf, which Python refuses), and a control character with a letter in its escape (\u001f,
# which DuckDB writes \u001F).
SUSPECT = r"[:,\[][ \t\r\n]*-?(?:[0-9.]+[eE]|[0-9]{17}|0\.0000|(?i:nan|inf))|\\u00[01][a-fA-F]"


class Shape(Enum):
    """How a file's records are laid out, which decides how it is read."""

    LINES = "lines"  # NDJSON: each line one value
    ARRAY_LINES = "array lines"  # a JSON array with each element on one line (or several per line)
    DOCUMENT = "document"  # anything else (pretty-printed, several documents): read whole


def json_shape(head: bytes, whole: bool) -> Shape:
    """The layout of a JSON file from its first bytes (``whole``: they are the whole file)."""
    start = len(head) - len(head.lstrip())
    if start == len(head):
        return Shape.DOCUMENT  # no data: reported as an empty file
    if head[start : start + 1] == b"[":
        return Shape.ARRAY_LINES if _framed(head, whole) else Shape.DOCUMENT
    return Shape.DOCUMENT if is_document(head, start) else Shape.LINES


def _framed(head: bytes, whole: bool) -> bool:
    """True when the array's lines hold whole elements, as a writer of one element per line
    leaves them (``[``, element lines ending in a comma, ``]``): nine lines in ten of the head
    parse as elements (a broken element does not make a file pretty-printed; in a
    pretty-printed array few lines are whole elements), the first one among them."""
    lines = head.split(b"\n")
    if not whole:
        lines.pop()  # cut anywhere
    body = [b for ln in lines if (b := ln.strip(b" \t\r"))]
    if len(body) < 2:
        return False  # one line: an API page, read whole
    body[0] = body[0][1:]
    if whole and body[-1].endswith(b"]"):
        body[-1] = body[-1][:-1]
    whole_elements = [_element_line(b) for b in body if b.strip(b" \t\r")]
    if not whole_elements or not whole_elements[0]:
        return False
    return sum(whole_elements) >= 0.9 * len(whole_elements)


def _element_line(body: bytes) -> bool:
    try:
        json.loads(b"[" + body.strip(b" \t\r").removesuffix(b",") + b"]")
    except (ValueError, RecursionError):
        return False
    return True


@dataclass(frozen=True)
class Classified:
    """SQL, over a record's canonical text ``raw``, of what a source reads before mapping it:
    its native type, its own id, the document the mapping reads (NULL: the record itself),
    whether it is a header row carried into an export, and the SOQL it carries. All but
    ``doc`` may read the document as the column ``doc``."""

    rtype: str
    native_id: str = "NULL"
    doc: str = "NULL"
    header: str = "false"
    query: str = "NULL"


@dataclass
class _Segment:
    """Whole lines of one file inside a chunk, kept until Python has read its odd lines.
    ``data`` holds them with their line breaks; ``starts`` the offset of each line in it, and
    of its end."""

    file: InputFile
    shape: Shape
    first_line: int
    offset: int  # of the first line, in the file's content
    data: bytes | bytearray
    starts: array
    empty: int  # lines with nothing on them
    prev: _Segment | None  # the file's segment before this one, until this one is read
    items: int = 0  # records and bad records it held, known once its odd lines are read
    table: pa.Table | None = None  # its lines for DuckDB, built ahead
    _ordinal: int | None = None

    def __post_init__(self) -> None:
        self.size = len(self.starts) - 1

    @property
    def ordinal(self) -> int:
        """Records and bad records of the file before this segment."""
        if self._ordinal is None:
            self._ordinal = 0 if self.prev is None else self.prev.ordinal + self.prev.items
            self.prev = None
        return self._ordinal

    def line(self, number: int) -> tuple[int, bytes]:
        """The line's offset in the file and its bytes, without the line break."""
        i = number - self.first_line
        line = bytes(self.data[self.starts[i] : self.starts[i + 1]])
        return self.offset + self.starts[i], line.removesuffix(b"\n")

    def truncate(self, line: int) -> bool:
        """Keep the lines before ``line``; False when none is left."""
        keep = max(0, min(self.size, line - self.first_line))
        self.starts, self.table = self.starts[: keep + 1], None
        self.size = keep
        self.empty = len(_empty_lines(self))
        return keep > 0

    def release(self) -> None:
        """Forget the lines once read: the next segment needs only the count."""
        _ = self.ordinal
        self.data, self.starts, self.table = b"", array("q"), None


@dataclass
class _FileEnd:
    """A file read to its end: the stream, and what its framing found wrong."""

    stream: Input
    found: list[Quarantine] = field(default_factory=list)


@dataclass
class _Pending:
    """Records read by Python, waiting to be staged; what was quarantined so far."""

    rows: dict[str, list] = field(default_factory=lambda: {"file_id": [], "line": [], "raw": []})
    quarantined: list[Quarantine] = field(default_factory=list)

    def add(self, file: InputFile, item: Item, ordinal: int) -> None:
        if isinstance(item, JsonRecord):
            self.rows["file_id"].append(file.file_id)
            self.rows["line"].append(item.line)
            self.rows["raw"].append(item.text)
        else:
            # the ordinal tells apart bad records of one line (a one-line export)
            self.quarantined.append(Quarantine(
                file, item.line, item.byte_offset, item.reason, item.detail, str(ordinal)
            ))  # fmt: skip

    def __len__(self) -> int:
        return len(self.rows["raw"])

    def take(self) -> pa.Table:
        table = pa.table(
            {
                "file_id": pa.array(self.rows["file_id"], pa.int64()),
                "line": pa.array(self.rows["line"], pa.int64()),
                "raw": pa.array(self.rows["raw"], pa.string()),
            }
        )
        for column in self.rows.values():
            column.clear()
        return table

    def drop(self, file_id: int, from_line: int) -> None:
        """Forget what was read of a file from ``from_line`` on (a corrupt gzip member)."""
        keep = [
            i
            for i, (f, n) in enumerate(zip(self.rows["file_id"], self.rows["line"], strict=True))
            if f != file_id or n < from_line
        ]
        for name, column in self.rows.items():
            self.rows[name] = [column[i] for i in keep]
        self.quarantined = [
            q
            for q in self.quarantined
            if q.file.file_id != file_id or (q.line is not None and q.line < from_line)
        ]


class JsonSource(Source):
    """Staging shared by the JSON formats; each source says how to classify and map."""

    source: ClassVar[str]
    type_prefix: ClassVar[str]
    # The mapping reads a key missing from every record of a unit otherwise than a key that is
    # there but empty (as a CSV header's missing column): the keys are read first.
    keyed: ClassVar[bool] = True

    def records(self, pieces: Iterable[bytes]) -> Iterator[Item]:
        """A document's records, each with its line, or why a part is none, from its content
        in pieces (read as they come: a document of any size is never held whole)."""
        return iter_stream(pieces)

    def shape(self, head: bytes, whole: bool) -> Shape:
        return json_shape(head, whole)

    @abstractmethod
    def classify(self, fields: JsonExtraction) -> Classified:
        """SQL of the record's type, id, document, header-ness and query, from ``fields``
        (keys of ``raw``)."""

    @abstractmethod
    def exprs(self, ref: Ref, rtype: str) -> dict[str, str]:
        """SQL per normalised column, given a key resolver and the SQL of the native type."""

    def stage(self, store: Store, files: list[InputFile]) -> Staged | None:
        self._store = store
        self._units = self._read(files)
        return next(self._units, None)

    def followups(self, store: Store, staged: Staged) -> list[Staged]:
        unit = next(self._units, None)
        return [] if unit is None else [unit]

    ### Reading ###

    def _read(self, files: list[InputFile]) -> Generator[Staged, None, None]:
        """Every unit to insert, in turn. The driver inserts each before asking for the next,
        so the lines a unit left are read here once it is in."""
        self._mark = self._store.scalar("SELECT coalesce(max(rowid), -1) FROM events_base")
        self._pending = pending = _Pending()
        chunk: list[_Segment] = []
        size = 0
        for f, item in _ahead(self._reading(files)):
            if isinstance(item, _Segment):
                chunk.append(item)
                size += len(item.data)
                if size >= CHUNK_BYTES:
                    yield from self._chunk_units(chunk, pending)
                    chunk, size = [], 0
                continue
            if item is None:
                yield from self._read_document(f, pending)
            else:
                self._file_read(f, item, chunk)
            if len(pending) >= ROWS_PER_UNIT:
                yield self._rows_unit(pending.take())
        if chunk:
            yield from self._chunk_units(chunk, pending)
        # What was quarantined is reported last: a corrupt gzip member, found at the end of
        # its file, takes back what was read from it.
        report = StageReport(quarantined=pending.quarantined)
        if len(pending):
            unit = self._rows_unit(pending.take())
            unit.report = report
            yield unit
        elif report.quarantined:
            yield Staged(None, {}, report=report)

    def _reading(
        self, files: list[InputFile]
    ) -> Iterator[tuple[InputFile, _Segment | _FileEnd | None]]:
        """For each file: its segments, their tables built, then the stream they came from
        (a document to read whole: None). Run ahead of the inserts, in a thread."""
        for f in files:
            head = read_head(f.path)
            shape = self.shape(head, whole=len(head) < HEAD_BYTES)
            if shape is Shape.DOCUMENT:
                yield f, None
                continue
            end = _FileEnd(Input(f.path))
            for segment in self._segments(f, shape, end):
                segment.table = _segment_table(segment)
                yield f, segment
            yield f, end

    def _read_document(self, f: InputFile, pending: _Pending) -> Iterator[Staged]:
        """A document's records, staged as they are read, ``ROWS_PER_UNIT`` at a time.

        A corrupt gzip member is found at its end (its checksum), its output read by then;
        ``read_input`` leaves that output out, and so does this: what was read from the file
        is taken back (the rows stored from it deleted, the rest dropped) and the file read
        again up to the member (a rare path: each record is read twice)."""
        stream = Input(f.path)
        pieces = iter(stream)
        yield from self._document_units(f, pieces, pending)
        for _ in pieces:  # to the end, where a problem is found, after what stopped reading
            pass
        size = stream.size
        if stream.corrupt_from is not None:
            size = stream.corrupt_from
            self._store.execute(
                "DELETE FROM events_base WHERE rowid > $mark AND file_id = $f",
                {"mark": self._mark, "f": f.file_id},
            )
            pending.drop(f.file_id, 0)
            yield from self._document_units(f, upto(Input(f.path), size), pending)
        if stream.problem:
            pending.quarantined.append(
                Quarantine(f, None, size, Reason.TRUNCATED_INPUT, stream.problem)
            )

    def _document_units(
        self, f: InputFile, pieces: Iterable[bytes], pending: _Pending
    ) -> Iterator[Staged]:
        for ordinal, item in enumerate(self.records(pieces)):
            pending.add(f, item, ordinal)
            if len(pending) >= ROWS_PER_UNIT:
                yield self._rows_unit(pending.take())

    def _segments(self, f: InputFile, shape: Shape, end: _FileEnd) -> Iterator[_Segment]:
        """The file's lines in segments of about half a chunk, streamed. The last two are
        held back until the file ends: the end of an array may reach into them."""
        framing = _ArrayFraming(f) if shape is Shape.ARRAY_LINES else None
        held: list[_Segment] = []
        line, offset = 1, 0
        for block in _blocks(end.stream, CHUNK_BYTES // 2):
            segment = _segment(f, shape, block, line, offset, held[-1] if held else None, framing)
            line, offset = line + segment.size, offset + len(block)
            held.append(segment)
            if len(held) > 2:
                yield held.pop(0)
        if framing is not None and held and (unclosed := framing.close(held)):
            end.found.append(unclosed)
        yield from held

    def _file_read(self, f: InputFile, end: _FileEnd, chunk: list[_Segment]) -> None:
        """What reading the file to its end found: an array left unclosed; a problem to report; a
        corrupt gzip member, whose output is left out as ``read_input`` leaves it out (its
        checksum is found at its end): the rows stored from it are deleted, its lines not yet
        stored dropped."""
        self._pending.quarantined.extend(end.found)
        stream = end.stream
        if not stream.problem:
            return
        if stream.corrupt_from is not None:
            # the line breaks before the member, counted as the file streams by (a rare path)
            before = upto(Input(f.path), stream.corrupt_from)
            from_line = sum(piece.count(b"\n") for piece in before) + 1
            self._store.execute(
                "DELETE FROM events_base WHERE rowid > $mark AND file_id = $f "
                "AND ingest_line >= $l",
                {"mark": self._mark, "f": f.file_id, "l": from_line},
            )
            for segment in [s for s in chunk if s.file == f]:
                if not segment.truncate(from_line):
                    chunk.remove(segment)
            self._pending.drop(f.file_id, from_line)
        self._pending.quarantined.append(
            Quarantine(f, None, stream.size, Reason.TRUNCATED_INPUT, stream.problem)
        )

    ### Units ###

    def _chunk_units(self, chunk: list[_Segment], pending: _Pending) -> Iterator[Staged]:
        """The chunk's lines as one unit; then its odd lines, read by Python."""
        mark = self._store.scalar("SELECT coalesce(max(rowid), -1) FROM events_base")
        yield self._lines_unit(_lines_table(chunk))
        # The lines the INSERT left for Python: not in the store (a line is one row or none;
        # blank lines too, which Python passes over).
        spans = ", ".join(
            f"({num(s.file.file_id)}, {num(s.first_line)}, {num(s.first_line + s.size)})"
            for s in chunk
        )
        odd = self._store.execute(
            f"SELECT file_id, line FROM (SELECT file_id, unnest(range(a, b)) AS line "
            f"FROM (VALUES {spans}) s(file_id, a, b)) l WHERE NOT EXISTS "
            "(SELECT 1 FROM events_base e WHERE e.rowid > $mark AND e.file_id = l.file_id "
            "AND e.ingest_line = l.line) ORDER BY 1, 2",
            {"mark": mark},
        ).rows
        by_file: dict[int, list[int]] = {}
        for file_id, line in odd:
            by_file.setdefault(file_id, []).append(line)
        for segment in chunk:
            first, end = segment.first_line, segment.first_line + segment.size
            lines = [n for n in by_file.get(segment.file.file_id, ()) if first <= n < end]
            _read_odd(segment, lines, pending)
            segment.release()
        if len(pending) >= ROWS_PER_UNIT:
            yield self._rows_unit(pending.take())

    def _lines_unit(self, table: pa.Table) -> Staged:
        lines = f"FROM {LINES} WHERE text NOT IN ('', chr(10))"
        base = (
            f"(SELECT file_id, line, CASE WHEN NOT suspect AND strlen(text) <= {BIG_RECORD} "
            f"THEN try(json_normalize(text)) END AS raw {lines})"
        )
        # The keys and queries are the same in the text as read: no need to normalise it.
        probe = (
            f"(SELECT file_id, line, CASE WHEN try(json_valid(text)) THEN text END AS raw {lines})"
        )
        return self._staged(base, probe, LINES, table, odd=True)

    def _rows_unit(self, table: pa.Table) -> Staged:
        base = f"(SELECT file_id, line, raw FROM {ROWS})"
        return self._staged(base, base, ROWS, table, odd=False)

    def _classified(self, base: str, odd: bool, canonical: bool = True) -> tuple[str, Classified]:
        """``base`` (file_id, line, raw) with what ``classify`` reads of each record, and
        ``_odd``: the line is for Python to read. ``canonical``: ``raw`` is the canonical
        text, where a query response's record list is always written ``"records":[``."""
        objects = (
            f"(SELECT file_id, line, CASE WHEN starts_with(raw, '{{') THEN raw END AS raw "
            f"FROM {base})"
        )
        fields = JsonExtraction("raw", name="_c")
        c = self.classify(fields)
        # A query response saved as one line: its records are read by Python.
        wrapper = (
            f"coalesce({fields.type_of('records')} = 'ARRAY' AND "
            f"({fields.type_of('totalSize')} IS NOT NULL OR "
            f"{fields.type_of('done')} IS NOT NULL), false)"
        )
        if canonical:
            # Parsed only where the text can be one: DuckDB evaluates this test where the
            # text is made, all of it for every record (a NOT over an OR does not stop
            # early), which parsed each record three more times: a fifth of the INSERT.
            wrapper = f"CASE WHEN contains(raw, '\"records\":[') THEN {wrapper} ELSE false END"
        is_odd = f"(raw IS NULL OR {wrapper})" if odd else "false"  # left for Python
        with_doc = f"(SELECT *, {c.doc} AS doc FROM {fields.relation(objects)})"
        return (
            f"(SELECT file_id, line, raw, doc, {c.rtype} AS rtype, {c.native_id} AS nid, "
            f"{c.header} AS _hdr, {c.query} AS _query, {is_odd} AS _odd FROM {with_doc})",
            c,
        )

    def _staged(self, base: str, probe: str, name: str, table: pa.Table, odd: bool) -> Staged:
        """The unit's relation: ``base`` (file_id, line, raw, read from ``table`` as
        ``name``) classified, then mapped. ``probe`` is a cheaper ``base`` for what must be
        known first: the keys the records have (when the mapping depends on them: ``keyed``)
        and the SOQL they carry."""
        classified, c = self._classified(base, odd)
        present, queries = None, None
        if self.keyed or c.query != "NULL":
            present, queries = self._probe(
                self._classified(probe, odd, canonical=False)[0], name, table, c
            )
        tables: dict[str, pa.Table | pa.RecordBatchReader] = {name: _once(table)}
        if queries is not None:
            tables[QUERIES] = queries
            classified = (
                f"(SELECT c.*, q.q_object, q.q_fields FROM {classified} c "
                f"LEFT JOIN {QUERIES} q ON q.query = c._query)"
            )
        else:
            classified = (
                f"(SELECT *, NULL::VARCHAR AS q_object, NULL::VARCHAR[] AS q_fields "
                f"FROM {classified})"
            )
        values = JsonExtraction("coalesce(doc, raw)", present if self.keyed else None)
        exprs = self.exprs(values.ref, "rtype")
        prefix = lit(self.type_prefix)
        exprs.update(
            source=lit(self.source),
            source_type=f"{prefix} || rtype",
            # The record's content (``raw``: its text, keys sorted) is its identity: the same
            # native id with other content (a sanitised or re-exported file) is another record,
            # kept and counted as an id collision.
            event_id=f"md5({prefix} || rtype || chr(31) || raw)",
            native_id="nid",
            raw="raw",
            file_id="file_id",
            ingest_line="line",
            _header="coalesce(_hdr, false)",
        )
        classified = f"(SELECT * FROM {classified} WHERE NOT _odd)"
        scope = f"raw_schema IS NULL AND starts_with(source_type, {prefix})"
        return Staged(values.relation(classified), exprs, scope, StageReport(), tables)

    def _probe(
        self, classified: str, name: str, table: pa.Table, c: Classified
    ) -> tuple[set[str], pa.Table | None]:
        """The top-level keys of the unit's records (of the documents their mapping reads),
        and the object and fields of each distinct SOQL text they carry, parsed by
        crmwatch.soql: a few hundred distinct queries for millions of records."""
        with self._store.registered(name, _once(table)):
            keys, texts = self._store.execute(
                "SELECT list_distinct(flatten(list(json_keys(coalesce(doc, raw))) "
                "FILTER (WHERE NOT _odd AND NOT coalesce(_hdr, false)))), "
                f"list(DISTINCT _query) FILTER (WHERE _query IS NOT NULL) FROM {classified}"
            ).rows[0]
        if c.query == "NULL":
            return set(keys or ()), None
        parsed = [(t, *_soql(t)) for t in texts or ()]
        return set(keys or ()), pa.table(
            {
                "query": pa.array([p[0] for p in parsed], pa.string()),
                "q_object": pa.array([p[1] for p in parsed], pa.string()),
                "q_fields": pa.array([p[2] for p in parsed], pa.list_(pa.string())),
            }
        )


def _soql(query: str) -> tuple[str | None, list[str] | None]:
    """A query's object and the fields it returns (None for COUNT()); nothing for what is not
    SOQL crmwatch can read."""
    if not query.strip():
        return None, None
    try:
        q = soql.parse(query)
    except soql.SoqlError:
        return None, None
    return q.object, None if q.count_only else q.field_names


def _blocks(stream: Input, size: int) -> Iterator[bytes]:
    """The content in blocks of whole lines of about ``size`` bytes (a longer line is a block
    of its own); the last block may end without a line break."""
    rest = b""
    pieces: list[bytes] = []
    gathered = 0
    for piece in stream:
        pieces.append(piece)
        gathered += len(piece)
        if gathered < size:
            continue
        data = rest + b"".join(pieces)
        pieces, gathered, start = [], 0, 0
        while len(data) - start >= size:
            cut = data.rfind(b"\n", start, start + size) + 1
            if cut <= start:  # a line longer than a block: to its end
                cut = data.find(b"\n", start + size) + 1
                if cut <= start:
                    break  # no line break yet: read on
            yield data[start:cut]
            start = cut
        rest = data[start:]
    rest += b"".join(pieces)
    if rest:
        yield rest


def _segment(
    f: InputFile,
    shape: Shape,
    data: bytes,
    line: int,
    offset: int,
    prev: _Segment | None,
    framing: _ArrayFraming | None,
) -> _Segment:
    lines = data.split(b"\n")
    if data.endswith(b"\n"):
        lines.pop()
    ends = map(operator.add, map(len, lines), itertools.repeat(1))  # each line and its break
    starts = array("q", itertools.accumulate(ends, initial=0))
    starts[-1] = len(data)  # the last line may have no line break
    segment = _Segment(f, shape, line, offset, data, starts, lines.count(b""), prev)
    if framing is not None:
        framing.frame(segment)
    return segment


def _once(table: pa.Table) -> pa.RecordBatchReader:
    """The table as a stream DuckDB reads once (in parallel all the same). DuckDB keeps an
    object registered inside a transaction until the transaction ends, unregistered or not:
    every chunk's table, and the file's text under it, stayed in memory until the batch
    committed (10.9 GB at 10M events). A stream read to its end holds nothing."""
    return pa.RecordBatchReader.from_batches(table.schema, iter(table.to_batches()))


def _lines_table(chunk: list[_Segment]) -> pa.Table:
    """The chunk's lines for DuckDB, in batches it reads in parallel."""
    tables = [s.table if s.table is not None else _segment_table(s) for s in chunk]
    return pa.Table.from_batches(pa.concat_tables(tables).to_batches(max_chunksize=2048))


def _segment_table(s: _Segment) -> pa.Table:
    """A segment's lines as a table, without copying them."""
    text = pa.Array.from_buffers(
        pa.large_string(), s.size, [None, pa.py_buffer(s.starts), pa.py_buffer(s.data)]
    )
    try:
        text.validate(full=True)
    except pa.ArrowInvalid:  # bytes that are not UTF-8: such lines go to Python
        lines = (s.line(n)[1] for n in range(s.first_line, s.first_line + s.size))
        text = pa.array([ln if _utf8(ln) else b"\x01" for ln in lines], pa.binary())
        text = text.cast(pa.large_string())
    return pa.table(
        {
            "file_id": pa.repeat(pa.scalar(s.file.file_id, pa.int64()), s.size),
            "line": pa.array(range(s.first_line, s.first_line + s.size), pa.int64()),
            "text": text,
            # Arrow's RE2 scans at twice the speed of DuckDB's regexp_matches
            "suspect": pc.match_substring_regex(text, SUSPECT),
        }
    )


def _ahead(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items``, made by a thread up to ``depth`` ahead of their use: Python reads and
    splits the next lines while DuckDB inserts the last ones (it lets go of the GIL)."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def make() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put((False, None))
        except BaseException as e:  # raised where the item would have been used
            ready.put((False, e))

    maker = threading.Thread(target=make, name="crmwatch-json-read", daemon=True)
    maker.start()
    try:
        while True:
            more, item = ready.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
        with suppress(queue.Empty):
            while True:
                ready.get_nowait()
        maker.join()


def _utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_odd(segment: _Segment, odd: list[int], pending: _Pending) -> None:
    """Read the segment's odd lines in Python, and count the records and bad records the
    segment held, so that bad records get the ordinal the whole-file reader gave them.
    ``odd`` may hold its empty lines: they are passed over."""
    empty = _empty_lines(segment) if segment.empty else []
    if empty:
        blank = {segment.first_line + i for i in empty}
        odd = [n for n in odd if n not in blank]
    read = 0  # items of the odd lines read so far
    for k, number in enumerate(odd):
        offset, raw_line = segment.line(number)
        i = number - segment.first_line
        # before this line: its lines read by DuckDB, one record each, and the odd ones' items
        ordinal = segment.ordinal + i - bisect.bisect_left(empty, i) - k + read
        for item in _odd_items(segment.shape, number, offset, raw_line):
            pending.add(segment.file, item, ordinal)
            ordinal += 1
            read += 1
    segment.items = segment.size - segment.empty - len(odd) + read


def _empty_lines(segment: _Segment) -> list[int]:
    s, data = segment.starts, segment.data
    return [i for i in range(segment.size) if s[i + 1] - s[i] == 1 and data[s[i]] == 0x0A]


def _odd_items(shape: Shape, number: int, offset: int, raw_line: bytes) -> Iterator[Item]:
    if shape is Shape.LINES:
        yield from iter_line(number, offset, raw_line)
        return
    # A line of an array: its elements, read as the array they are part of.
    for item in iter_records(b"[" + raw_line + b"]"):
        item.line = number
        if isinstance(item, BadRecord) and item.byte_offset is not None:
            item.byte_offset = offset + max(0, item.byte_offset - 1)
        yield item


class _ArrayFraming:
    """Makes the lines of a JSON array written one element per line NDJSON, in place: the
    opening ``[``, each line's closing comma and the closing ``]`` become spaces. An array
    left unclosed is reported as the whole-document reader reported it."""

    def __init__(self, file: InputFile) -> None:
        self.file = file
        self.opened = False
        self.ends: dict[int, bytes] = {}  # each segment's last character that is not a space

    def frame(self, segment: _Segment) -> None:
        data = bytearray(segment.data)
        if not self.opened:
            at = len(data) - len(data.lstrip())
            if at < len(data):
                self.opened = True
                if data[at : at + 1] == b"[":
                    data[at] = 0x20
        self.ends[id(segment)] = data.rstrip()[-1:]
        segment.data = data.replace(b",\n", b" \n").replace(b",\r\n", b" \r\n")

    def close(self, segments: list[_Segment]) -> Quarantine | None:
        """At the file's end: the array's last character must be its ``]``. A last line that
        ends in a comma, with nothing after it, is an array cut short; an element cut in the
        middle is reported by itself."""
        for segment in reversed(segments):
            end = self.ends.get(id(segment), b"")
            if not end:
                continue
            if end == b"]":
                data = segment.data
                data[len(data.rstrip()) - 1] = 0x20
                return None
            if end != b",":
                return None
            break
        else:
            return None
        last = segments[-1]
        line = last.first_line + last.size - (0 if last.data.endswith(b"\n") else 1)
        return Quarantine(
            self.file, line, last.offset + len(last.data), Reason.INVALID_JSON,
            "JSON array is not closed (file truncated?)", "unclosed",
        )  # fmt: skip
