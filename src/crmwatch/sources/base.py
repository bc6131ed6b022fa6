"""What every input format provides, and reading input files (gzip, byte-order marks, UTF-16).

A source *stages* a batch of files: it returns a ``Staged`` relation (a DuckDB CSV scan, or
JSON lines DuckDB parses) with one SQL expression per normalised column, and reports what it
could not stage. The ingest driver does what is common to all formats: one
INSERT of the mapped relation (the only read of the input), then, from the stored rows, counts
per file, quarantine of rows without a usable timestamp, removal of duplicates, enrichment.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
import re
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar

import pyarrow as pa

from crmwatch.errors import Location, SourceFormatError
from crmwatch.schema import Reason
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
    # ``ingest_line`` is kept on rows without a timestamp only: CSV rows read by Python know
    # their line, which locates them in the quarantine, but stored CSV events carry no line
    # whichever reader read them (the same row read either way is stored alike).
    line_if_untimed: bool = False


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
    stream = Input(path, raw=True, read_bytes=size)
    head = bytearray()
    for piece in stream:
        head += piece
        if len(head) >= size:
            break
    if stream.corrupt_from is not None:
        raise SourceFormatError(f"cannot read file: {stream.problem}", Location(path))
    return bytes(head[:size])


PIECE_BYTES = 1 << 16  # compressed bytes inflated at a time


class Input:
    """A file's content, read in pieces: gunzipped when it is gzip whatever its name says, as
    UTF-8 (:func:`as_utf8`). What went wrong is known once the pieces are read.

    Log shippers append: ``cat a.gz b.gz`` is one valid gzip file of several members (RFC
    1952, 2.2), and every member is read; some writers pad members with zeros. UTF-16 text
    (rare, and small: PowerShell and Excel exports) is read whole and converted in one piece.

    Attributes:
        problem: a gzip stream corrupt or cut short, bytes after the gzip data that are not
            gzip, or UTF-16 text that is not valid; None when the file read cleanly.
        corrupt_from: where (in the content) the corrupt gzip member began: what was read from
            there on is not the file's content and is to be left out.
        size: the content's bytes read so far.

    Args:
        raw: yield the decompressed bytes as they are (no byte-order mark removed, no UTF-16
            converted), for reading a head.
    """

    def __init__(self, path: Path, raw: bool = False, read_bytes: int = 1 << 24) -> None:
        self.path, self.raw, self.read_bytes = path, raw, read_bytes
        self.problem: str | None = None
        self.size = 0
        self._corrupt_raw: int | None = None  # where the corrupt member began, decompressed
        self._skipped = 0  # bytes of a byte-order mark dropped from the start
        self._dropped = False  # the corrupt member's output was left out here already

    @property
    def corrupt_from(self) -> int | None:
        if self._corrupt_raw is None or self._dropped:
            return None
        return max(0, self._corrupt_raw - self._skipped)

    def __iter__(self) -> Iterator[bytes]:
        try:
            with open(self.path, "rb") as fh:
                gz = fh.read(2) == GZIP_MAGIC
                fh.seek(0)
                pieces = self._inflate(fh) if gz else iter(lambda: fh.read(self.read_bytes), b"")
                yield from (pieces if self.raw else self._as_utf8(pieces))
        except OSError as e:
            raise SourceFormatError(f"cannot read file: {e.strerror}", Location(self.path)) from e

    def _as_utf8(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        first = b""
        for piece in pieces:
            first += piece
            if len(first) >= 3:
                break
        if encoding_of(first) == "utf-16":
            data = first + b"".join(pieces)
            if self._corrupt_raw is not None:
                data, self._dropped = data[: self._corrupt_raw], True
            try:
                out = as_utf8(data)
            except UnicodeDecodeError as e:
                text = data[: e.start].decode("utf-16", errors="ignore")
                out = text.encode("utf-8", errors="surrogateescape")
                self.problem = (
                    f"not valid UTF-16 at byte {e.start}: {e.reason}; the rest of the file is "
                    "not read"
                )
            self.size = len(out)
            yield out
            return
        self._skipped = len(first)
        first = as_utf8(first)
        self._skipped -= len(first)
        if first:
            self.size += len(first)
            yield first
        for piece in pieces:
            self.size += len(piece)
            yield piece

    def _inflate(self, fh: BinaryIO) -> Iterator[bytes]:
        produced, members, member_start, pending = 0, 1, 0, b""
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while True:
            chunk = pending or fh.read(PIECE_BYTES)
            if not chunk:
                self.problem = f"gzip stream cut short after {produced} decompressed bytes"
                return
            try:
                out = inflater.decompress(chunk)
            except zlib.error as e:
                self.problem = f"corrupt gzip data in member {members}: {e}"
                self._corrupt_raw = member_start
                return
            pending = b""
            if out:
                produced += len(out)
                yield out
            if not inflater.eof:
                continue
            rest = inflater.unused_data.lstrip(b"\x00")
            while len(rest) < 2 and (more := fh.read(PIECE_BYTES)):
                rest = (rest + more).lstrip(b"\x00")
            if not rest:
                return
            if rest[:2] != GZIP_MAGIC:
                trailer = len(rest) + len(fh.read())
                self.problem = f"{trailer} bytes after the gzip data are not gzip"
                return
            members, member_start, pending = members + 1, produced, rest
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)


def read_input(path: Path) -> tuple[bytes, str | None]:
    """The file's content whole (:class:`Input`), and a description of the problem when a
    gzip stream is corrupt or cut short, or UTF-16 text is broken: what could be read is
    still returned, so its records count (a corrupt gzip member's output is left out).
    :class:`Content` gives the same in pieces."""
    stream = Input(path)
    data = b"".join(stream)
    if stream.corrupt_from is not None:
        data = data[: stream.corrupt_from]
    return data, stream.problem


class Content:
    """What :func:`read_input` returns, in pieces: the file is never held whole, UTF-16
    included (decoded as it is read, where :class:`Input` converts it in one piece).

    The same bytes, the same ``problem`` and the same ``size``, also for a corrupt gzip
    member, whose output ``read_input`` leaves out: known only once the member's end is
    reached, so a gzip file is inflated once beforehand to find where such a member begins
    (the readers using this are fallbacks, where one more pass is cheap). The byte-order
    mark is judged on the content's first bytes before any cut, as ``Input`` judges it.

    Attributes:
        problem: as ``read_input``'s; known once the pieces are read.
        size: the bytes yielded so far (``len(data)`` of ``read_input`` once read).

    Args:
        piece_bytes: the bytes of a file that is not gzip read at a time.
    """

    def __init__(self, path: Path, piece_bytes: int = 1 << 24) -> None:
        self.path, self.piece_bytes = path, piece_bytes
        self.problem: str | None = None
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        cut, self.problem = self._prescan()
        pieces = iter(Input(self.path, raw=True, read_bytes=self.piece_bytes))
        first = b""
        for piece in pieces:
            first += piece
            if len(first) >= 3:
                break
        raw = upto(itertools.chain([first], pieces), cut)
        if encoding_of(first) != "utf-16":
            out = _skip(raw, len(UTF8_BOM) if first.startswith(UTF8_BOM) else 0)
        elif cut is not None and cut < 2:  # no byte-order mark left: not UTF-16 then
            out = raw
        else:
            out = self._from_utf16(_skip(raw, 2), "utf-16-le" if first[0] == 0xFF else "utf-16-be")
        for piece in out:
            if piece:
                self.size += len(piece)
                yield piece

    def _prescan(self) -> tuple[int | None, str | None]:
        """Where a corrupt gzip member begins (None: none does), and the stream's problem."""
        try:
            gz = is_gzip(self.path)
        except OSError:
            gz = False  # reading reports it
        if not gz:
            return None, None
        probe = Input(self.path, raw=True)
        for _ in probe:
            pass
        return probe.corrupt_from, probe.problem

    def _from_utf16(self, raw: Iterator[bytes], codec: str) -> Iterator[bytes]:
        """UTF-16 after its byte-order mark as UTF-8; up to the first invalid code unit, as
        :func:`as_utf8` and ``Input`` report it (its offset counts the mark)."""
        decoder = codecs.getincrementaldecoder(codec)("strict")
        fed = 2  # the byte-order mark
        for piece, final in _ends(raw):
            start = fed - len(decoder.buffer)  # where the undecoded bytes begin
            fed += len(piece)
            try:
                text = decoder.decode(piece, final)
            except UnicodeDecodeError as e:
                text = e.object[: e.start].decode(codec, errors="ignore")
                yield text.encode("utf-8", errors="surrogateescape")
                self.problem = (
                    f"not valid UTF-16 at byte {start + e.start}: {e.reason}; the rest of the "
                    "file is not read"
                )
                return
            yield text.encode("utf-8", errors="surrogateescape")


def upto(pieces: Iterable[bytes], limit: int | None) -> Iterator[bytes]:
    """The first ``limit`` bytes of the pieces (all of them: None)."""
    if limit is None:
        yield from pieces
        return
    for piece in pieces:
        if limit <= 0:
            return
        yield piece[:limit]
        limit -= len(piece)


def _skip(pieces: Iterable[bytes], n: int) -> Iterator[bytes]:
    """The pieces but their first ``n`` bytes."""
    for piece in pieces:
        if n:
            piece, n = piece[n:], max(0, n - len(piece))
        yield piece


def _ends(pieces: Iterable[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each piece and whether it is the last; a last empty piece when there is none."""
    prev: bytes | None = None
    for piece in pieces:
        if prev is not None:
            yield prev, False
        prev = piece
    yield prev or b"", True


_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def split_lines(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of content given in pieces, as ``re.split(rb"\\r\\n|\\r|\\n", data)``
    splits it (a last empty line, after a final line break, dropped): a ``\\r\\n`` cut
    between two pieces is one line break. Only the line being read is held."""
    held: list[bytes] = []  # the line being read: pieces without a line break
    for piece in pieces:
        if b"\n" not in piece and b"\r" not in piece:
            held.append(piece)
            continue
        data = b"".join(held) + piece
        # a \r at the end may be the first half of a \r\n: kept with the line being read
        cr = data.endswith(b"\r")
        lines = _LINE_BREAK.split(data[:-1] if cr else data)
        last = lines.pop()
        yield from lines
        held = [last + b"\r" if cr else last]
    lines = _LINE_BREAK.split(b"".join(held))
    if lines[-1] == b"":
        lines.pop()
    yield from lines


def count_lines(pieces: Iterable[bytes]) -> int:
    """The lines of content given in pieces that hold more than whitespace, as
    ``sum(1 for line in data.splitlines() if line.strip())`` counts them: lines end at
    ``\\n``, ``\\r\\n`` or a lone ``\\r``, so a ``\\r\\n`` cut between two pieces, counted as
    two breaks, adds only an empty line, which does not count."""
    count, nonblank = 0, False  # nonblank: the line being read has a byte that is no space
    for piece in pieces:
        parts = piece.replace(b"\r", b"\n").split(b"\n")
        if len(parts) == 1:
            nonblank = nonblank or bool(parts[0].strip())
            continue
        count += nonblank or bool(parts[0].strip())
        count += sum(1 for part in parts[1:-1] if part.strip())
        nonblank = bool(parts[-1].strip())
    return count + nonblank


_BREAKS = b"\r\n"


def lines_at(path: Path, positions: Iterable[int]) -> dict[int, int]:
    """The line of the record starting at each byte position of the (decompressed) file.

    Positions are where DuckDB's CSV reader says a rejected record starts
    (``line_byte_position``): bytes of the file as it is, a byte-order mark included. The
    reader's own ``line`` counts records, not the line breaks inside quoted values, so the
    line is counted here: one more than the line breaks before the record (``\\n``,
    ``\\r\\n`` and a lone ``\\r``, as Python's universal newlines count them). A position
    on a line break (the reader points at a blank line before a record) is moved on to the
    record's first byte. The file is streamed up to the last position: never held whole,
    never parsed.
    """
    todo = sorted(set(positions))
    out: dict[int, int] = {}
    k = 0
    base = 0  # the current piece's first byte, in the file
    breaks = 0  # line breaks before base + cur
    prev = b""  # the byte before the current piece
    pending: list[int] = []  # targets whose record starts after the pieces read so far
    for piece in Input(path, raw=True):
        n, cur = len(piece), 0
        while pending or (k < len(todo) and todo[k] < base + n):
            at = cur
            if not pending:
                at = max(todo[k] - base, cur)
                pending.append(todo[k])
                k += 1
            while at < n and piece[at] in _BREAKS:
                at += 1
            if at == n:  # line breaks to the piece's end: the record starts further on
                while k < len(todo) and todo[k] < base + n:
                    pending.append(todo[k])
                    k += 1
                break
            breaks += _breaks(piece, cur, at, piece[cur - 1 : cur] if cur else prev)
            cur = at
            for t in pending:
                out[t] = breaks + 1
            pending.clear()
        if k == len(todo) and not pending:
            break
        breaks += _breaks(piece, cur, n, piece[cur - 1 : cur] if cur else prev)
        prev, base = piece[-1:], base + n
    return out


def _breaks(piece: bytes, start: int, stop: int, before: bytes) -> int:
    """The line breaks in ``piece[start:stop]``, ``before`` being the byte before it: every
    \\r is one, and every \\n not right after a \\r."""
    if stop <= start:
        return 0
    crlf = piece.count(b"\r\n", start, stop) + (before == b"\r" and piece[start] == 0x0A)
    return piece.count(b"\r", start, stop) + piece.count(b"\n", start, stop) - crlf


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

    def locate_untimed(
        self, store: Store, file: InputFile, rows: list[list[str | None]]
    ) -> list[int | None]:
        """The line of each given row of ``file`` stored without a line (CSV rows, kept as
        their values: ``raw`` with a ``raw_schema``) whose timestamp did not parse, so it is
        quarantined where it is. None where a row cannot be found; a format whose rows all
        carry their line has nothing to locate."""
        return [None] * len(rows)
