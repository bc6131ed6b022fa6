"""What every input format provides, and the shared path for JSON-shaped inputs.

A source *stages* a batch of files: it returns a ``Staged`` relation (a DuckDB CSV scan, or an
Arrow table of parsed JSON records) with one SQL expression per normalised column, and
reports what it could not stage. The ingest driver does what is common to all formats: one
INSERT of the mapped relation (the only read of the input), then, from the stored rows, counts
per file, quarantine of rows without a usable timestamp, removal of duplicates, enrichment.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar

import pyarrow as pa

from crmwatch.errors import Location, SourceFormatError
from crmwatch.schema import Reason
from crmwatch.sources.jsonrecords import BadRecord, Item, iter_records
from crmwatch.sources.sqlmap import JsonExtraction, Ref
from crmwatch.sql import lit
from crmwatch.store import Store

STAGE_TABLE = "_stage"


@dataclass(frozen=True)
class InputFile:
    """One input file; its id is derived from its absolute path so re-runs agree on it."""

    path: Path
    file_id: int
    size: int
    mtime_ns: int = 0

    @classmethod
    def of(cls, path: Path | str) -> InputFile:
        p = Path(path).absolute()
        digest = hashlib.md5(str(p).encode("utf-8", "surrogateescape")).hexdigest()
        st = p.stat()
        return cls(p, int(digest[:15], 16), st.st_size, st.st_mtime_ns)


@dataclass
class Quarantine:
    """A record (or part of a file) that could not be stored, and why."""

    file: InputFile
    line: int | None
    byte_offset: int | None
    reason: Reason
    detail: str
    # Tells apart records that share a line (a query result exported on one line): the
    # record's content id. Empty when the line and offset already say which record it is.
    key: str = ""
    records: int = 1  # the records it stands for: a file quarantined whole, its lines

    @property
    def quarantine_id(self) -> str:
        key = f"{self.file.file_id}|{self.line}|{self.byte_offset}|{self.reason}|{self.key}"
        return hashlib.md5(key.encode()).hexdigest()


@dataclass
class StageReport:
    """What staging a batch produced besides the staged rows."""

    quarantined: list[Quarantine] = field(default_factory=list)
    skipped_headers: Counter[int] = field(default_factory=Counter)
    notes: list[tuple[int, str]] = field(default_factory=list)  # (file id, what was done)


@dataclass
class Staged:
    """Records ready to normalise: a relation and the SQL of each column over it.

    ``exprs`` holds every column of ``schema.BASE_COLUMNS`` plus ``_header`` (true for header
    rows repeated inside concatenated exports). ``tables`` are Arrow tables the relation reads,
    registered by the driver while it works.
    """

    relation: str | None  # None: no records (the report may still hold quarantined ones)
    exprs: dict[str, str]
    # Stored events whose ids these rows could share (ids hash the header or source prefix).
    scope: str = "true"
    report: StageReport = field(default_factory=StageReport)
    tables: dict[str, pa.Table] = field(default_factory=dict)


GZIP_MAGIC = b"\x1f\x8b"
UTF8_BOM = b"\xef\xbb\xbf"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def encoding_of(head: bytes) -> str:
    """``utf-16`` for data that starts with a UTF-16 byte-order mark (what PowerShell's
    ``Out-File`` and Excel's "Unicode text" write), else ``utf-8``."""
    return "utf-16" if head[:2] in UTF16_BOMS else "utf-8"


def as_utf8(data: bytes, partial: bool = False) -> bytes:
    """``data`` as UTF-8 without a byte-order mark: a UTF-8 BOM is dropped, UTF-16 is decoded.

    Args:
        partial: ``data`` is a head cut at an arbitrary byte; a character cut in two at the
            end is dropped instead of being an error.

    Raises:
        UnicodeDecodeError: UTF-16 data (by its BOM) that is not valid UTF-16.
    """
    if data.startswith(UTF8_BOM):
        return data[len(UTF8_BOM) :]
    if encoding_of(data) == "utf-16":
        if partial:
            data = data[: len(data) - len(data) % 2]
        text = data.decode("utf-16", errors="ignore" if partial else "strict")
        return text.encode("utf-8", errors="surrogateescape")
    return data


def is_gzip(path: Path) -> bool:
    """True when the file is gzip, whatever its name says."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


HEAD_BYTES = 1 << 20


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of the (decompressed) file, as UTF-8 (:func:`as_utf8`)."""
    return as_utf8(_head(path, size), partial=True)


def file_encoding(path: Path) -> str:
    """:func:`encoding_of` the (decompressed) file's first bytes."""
    return encoding_of(_head(path, 2))


def _head(path: Path, size: int) -> bytes:
    """Up to ``size`` decompressed bytes from the start. Unlike ``gzip.open``, what follows
    the gzip data (a trailer a shipper appended) does not make the head unreadable:
    ``read_input`` reports it when the file is read."""
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != GZIP_MAGIC:
                fh.seek(0)
                return fh.read(size)
            fh.seek(0)
            data, problem, corrupt = _inflate(fh, size)
    except OSError as e:
        raise SourceFormatError(f"cannot read file: {e}", Location(path)) from e
    if corrupt:
        raise SourceFormatError(f"cannot read file: {problem}", Location(path))
    return data


def _inflate(fh: BinaryIO, limit: int | None = None) -> tuple[bytes, str | None, bool]:
    """The decompressed content of a gzip file, read in chunks, up to ``limit`` bytes.

    Log shippers append: ``cat a.gz b.gz`` is one valid gzip file of several members (RFC
    1952, 2.2), and every member is read; some writers pad members with zeros.

    Returns:
        The bytes; what went wrong, if anything (corrupt data, a stream cut short, bytes after
        the gzip data that are not gzip); and whether that was corruption, in which case the
        corrupt member's output is left out.
    """
    out = bytearray()
    members, member_start, pending = 1, 0, b""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    while limit is None or len(out) < limit:
        chunk = pending or fh.read(1 << 16)
        if not chunk:
            return bytes(out), f"gzip stream cut short after {len(out)} decompressed bytes", False
        try:
            out += inflater.decompress(chunk, 0 if limit is None else limit - len(out))
        except zlib.error as e:
            return bytes(out[:member_start]), f"corrupt gzip data in member {members}: {e}", True
        pending = inflater.unconsumed_tail
        if not inflater.eof:
            continue
        rest = (inflater.unused_data + pending).lstrip(b"\x00")
        while len(rest) < 2 and (more := fh.read(1 << 16)):
            rest = (rest + more).lstrip(b"\x00")
        if not rest:
            return bytes(out), None, False
        if rest[:2] != GZIP_MAGIC:
            trailer = len(rest) + len(fh.read())
            return bytes(out), f"{trailer} bytes after the gzip data are not gzip", False
        members, member_start, pending = members + 1, len(out), rest
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return bytes(out[:limit]), None, False


def read_input(path: Path) -> tuple[bytes, str | None]:
    """The file's content as UTF-8 (:func:`as_utf8`), gunzipped when it is gzip whatever its
    name says.

    Returns:
        The bytes, and a description of the problem when a gzip stream is corrupt or cut
        short, or UTF-16 text is broken: what could be read is still returned, so its
        records count.
    """
    data, problem = _gunzip(path)
    try:
        return as_utf8(data), problem
    except UnicodeDecodeError as e:
        text = data[: e.start].decode("utf-16", errors="ignore")
        return text.encode("utf-8", errors="surrogateescape"), (
            f"not valid UTF-16 at byte {e.start}: {e.reason}; the rest of the file is not read"
        )


def _gunzip(path: Path) -> tuple[bytes, str | None]:
    try:
        with open(path, "rb") as fh:
            if fh.read(2) != GZIP_MAGIC:
                fh.seek(0)
                return fh.read(), None
            fh.seek(0)
            data, problem, _ = _inflate(fh)
            return data, problem
    except OSError as e:
        raise SourceFormatError(f"cannot read file: {e.strerror}", Location(path)) from e


def read_bytes(path: Path) -> bytes:
    """Like ``read_input``, for callers that only need whatever content there is."""
    return read_input(path)[0]


class Source(ABC):
    """One input format. Registered by name in ``crmwatch.sources.FORMATS``."""

    name: ClassVar[str]
    reads_carefully: ClassVar[bool] = False  # has a record-by-record ``stage_careful``

    @abstractmethod
    def stage(self, store: Store, files: list[InputFile]) -> Staged | None:
        """The records of ``files`` as a relation; None when there are none."""

    def followups(self, store: Store, staged: Staged) -> list[Staged]:
        """More relations to ingest, known only once ``staged`` has been scanned once (the
        CSV reader's rejected rows, some of which can be recovered)."""
        return []

    def stage_careful(self, store: Store, file: InputFile) -> Staged | None:
        """The records of one file the fast reader could not read as a whole, read record by
        record: the good ones staged, each bad one quarantined. None: this format has no
        slower way (its ``stage`` already reads record by record: ``reads_carefully``)."""
        return None


@dataclass(frozen=True)
class Classified:
    """A JSON record's native type, its native unique id if it has one, and the document the
    mapping reads (``None`` means the record itself)."""

    rtype: str
    native_id: str | None = None
    doc: dict | None = None
    query_object: str | None = None
    query_fields: list[str] | None = None


SKIP_HEADER = Classified("__header__")

# Staged columns of a JSON batch; the mapping SQL reads ``doc`` (or ``raw``) and, for records
# carrying SOQL, the query's object and fields parsed in Python (crmwatch.soql).
STAGE_COLUMNS: dict[str, pa.DataType] = {
    "file_id": pa.int64(),
    "line": pa.int64(),
    "rtype": pa.string(),
    "nid": pa.string(),  # the source's own id of the record, if any
    "raw": pa.string(),
    "doc": pa.string(),
    "q_object": pa.string(),
    "q_fields": pa.list_(pa.string()),
}


class JsonSource(Source):
    """Shared staging for JSON inputs: parse records in Python, map them in SQL."""

    source: ClassVar[str]
    type_prefix: ClassVar[str]

    def records(self, data: bytes) -> Iterator[Item]:
        """The file's records, each with its line, or why a part is none."""
        return iter_records(data)

    @abstractmethod
    def classify(self, obj: dict) -> Classified:
        """Type, native id and mapping document of one record (or ``SKIP_HEADER``)."""

    @abstractmethod
    def exprs(self, ref: Ref, rtype: str) -> dict[str, str]:
        """SQL per normalised column, given a key resolver and the SQL of the native type."""

    def stage(self, store: Store, files: list[InputFile]) -> Staged | None:
        report = StageReport()
        cols: dict[str, list] = {k: [] for k in STAGE_COLUMNS}
        keys: set[str] = set()
        for f in files:
            data, problem = read_input(f.path)
            if problem:
                report.quarantined.append(
                    Quarantine(f, None, len(data), Reason.TRUNCATED_INPUT, problem)
                )
            for ordinal, item in enumerate(self.records(data)):
                if isinstance(item, BadRecord):
                    # the ordinal tells apart bad records of one line (a one-line export)
                    report.quarantined.append(Quarantine(
                        f, item.line, item.byte_offset, item.reason, item.detail, str(ordinal)
                    ))  # fmt: skip
                    continue
                c = self.classify(item.obj)
                if c is SKIP_HEADER:
                    report.skipped_headers[f.file_id] += 1
                    continue
                doc = None if c.doc is None else json.dumps(c.doc, ensure_ascii=False)
                keys.update((c.doc if c.doc is not None else item.obj).keys())
                for k, v in zip(
                    cols,
                    (
                        f.file_id,
                        item.line,
                        c.rtype,
                        c.native_id,
                        item.text,
                        doc,
                        c.query_object,
                        c.query_fields,
                    ),
                    strict=True,
                ):
                    cols[k].append(v)
        if not cols["raw"]:
            # Nothing to insert, but what was skipped or quarantined must still be reported.
            return Staged(None, {}, report=report)
        values = JsonExtraction("coalesce(doc, raw)", keys)
        exprs = self.exprs(values.ref, "rtype")
        exprs.update(
            source=lit(self.source),
            source_type=f"{lit(self.type_prefix)} || rtype",
            # The record's content (``raw``: its text, keys sorted) is its identity: the same
            # native id with other content (a sanitised or re-exported file) is another record,
            # kept and counted as an id collision.
            event_id=f"md5({lit(self.type_prefix)} || rtype || chr(31) || raw)",
            native_id="nid",
            raw="raw",
            file_id="file_id",
            ingest_line="line",
            _header="false",
        )
        table = pa.table({k: pa.array(v, STAGE_COLUMNS[k]) for k, v in cols.items()})
        scope = f"raw_schema IS NULL AND starts_with(source_type, {lit(self.type_prefix)})"
        return Staged(values.relation(STAGE_TABLE), exprs, scope, report, {STAGE_TABLE: table})
