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
from collections.abc import Generator, Iterable, Iterator
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


def as_utf8(head: bytes) -> bytes:
    """A head of a file's content (cut at any byte) as UTF-8 without a byte-order mark: a
    UTF-8 BOM is dropped, UTF-16 is decoded as :func:`utf16_as_utf8` decodes the whole file
    (a lone surrogate in the head included: a header holding one is no header, as a UTF-8
    header with a byte that is not UTF-8 is none), leaving out only what the cut may have
    split: an odd last byte, and a high surrogate last, whose pair may follow."""
    if head.startswith(UTF8_BOM):
        return head[len(UTF8_BOM) :]
    if encoding_of(head) == "utf-16":
        codec = _utf16_codec(head)
        body = head[2 : len(head) - len(head) % 2]
        if len(body) >= 2 and 0xD8 <= body[-1 if codec == "utf-16-le" else -2] <= 0xDB:
            body = body[:-2]
        return b"".join(utf16_as_utf8([body], codec))
    return head


def _utf16_codec(head: bytes) -> str:
    """The codec of UTF-16 that starts with this byte-order mark."""
    return "utf-16-le" if head[:2] == b"\xff\xfe" else "utf-16-be"


# UTF-16 bytes decoded at a time: their text takes up to twice their size (four bytes a
# character once one is outside the BMP), so a file's 16 MiB pieces are decoded in parts.
DECODE_BYTES = 1 << 20


def utf16_as_utf8(pieces: Iterable[bytes], codec: str) -> Generator[bytes, None, str | None]:
    """UTF-16 after its byte-order mark, given in pieces cut anywhere, as UTF-8, decoded as it
    comes: only a piece (and a character cut between two) is held. The one UTF-16 decoder.

    A lone surrogate (a code unit of a pair without the other: a writer that cut a string
    between the two, a damaged file) is one bad unit, not the end of the file: it is carried
    through as the three bytes UTF-8 would give it (``ED A0 80`` for U+D800), which Python,
    DuckDB's CSV reader and Arrow all reject as not UTF-8, so the line holding it is
    quarantined (``invalid_utf8``, at its line: a surrogate holds no line break) like any
    line that is not UTF-8, and every other line is read.

    Args:
        codec: ``utf-16-le`` or ``utf-16-be``, as the mark said.

    Returns:
        (when exhausted) the problem: an odd byte at the end (a file cut inside a code unit),
        its offset counting the mark (what precedes it has been yielded); None when the
        content is a whole number of code units.
    """
    decoder = codecs.getincrementaldecoder(codec)("surrogatepass")
    fed = 2  # the byte-order mark
    for piece, final in _ends(_recut(pieces, DECODE_BYTES)):
        start = fed - len(decoder.buffer)  # where the undecoded bytes begin
        fed += len(piece)
        try:
            text = decoder.decode(piece, final)
        except UnicodeDecodeError as e:
            # with surrogatepass only the end can fail: a byte short of a code unit
            text = e.object[: e.start].decode(codec, errors="surrogatepass")
            yield text.encode("utf-8", errors="surrogatepass")
            return (
                f"not valid UTF-16 at byte {start + e.start}: {e.reason}; the rest of the "
                "file is not read"
            )
        yield text.encode("utf-8", errors="surrogatepass")
    return None


# How UTF-8 writes a code point of U+D800 to U+DFFF, which it forbids: what
# :func:`utf16_as_utf8` makes of a lone surrogate.
_SURROGATE_UTF8 = re.compile(rb"\xed[\xa0-\xbf][\x80-\xbf]")
LONE_SURROGATE = "a lone surrogate (a UTF-16 code unit that is no character)"


def why_not_utf8(raw: bytes, error: UnicodeDecodeError) -> str:
    """Why ``raw`` failed to decode as UTF-8 (``error``, from decoding ``raw`` itself), for a
    quarantine entry: a lone surrogate of a UTF-16 file is named as such, not as Python's
    "invalid continuation byte", which would send its reader looking for a UTF-8 problem.
    Fixed words only: no byte of the record is quoted."""
    if _SURROGATE_UTF8.match(raw, error.start):
        return LONE_SURROGATE
    return str(error.reason)


def is_gzip(path: Path) -> bool:
    """True when the file is gzip, whatever its name says."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


HEAD_BYTES = 1 << 20


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of the (decompressed) file, as UTF-8 (:func:`as_utf8`)."""
    return as_utf8(_head(path, size))


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
    UTF-8 without a byte-order mark (UTF-16 decoded as it is read: :func:`utf16_as_utf8`).
    What went wrong is known once the pieces are read.

    Log shippers append: ``cat a.gz b.gz`` is one valid gzip file of several members (RFC
    1952, 2.2), and every member is read; some writers pad members with zeros.

    A corrupt member is known only at its end (its checksum), its output read by then. UTF-8
    is read once, and the member reported (``corrupt_from``) for its reader to take back.
    UTF-16 cannot be taken back so: what its decoding reports depends on where the content
    ends (a code unit cut at the member's start is damage to report; a surrogate pair cut
    there becomes a lone surrogate, a line quarantined). So gzip in UTF-16 (rare, and small:
    PowerShell and Excel exports) is inflated once beforehand to find where such a member
    begins, and is decoded up to there, the member left out here.

    Attributes:
        problem: a gzip stream corrupt or cut short, bytes after the gzip data that are not
            gzip, or UTF-16 that ends with an odd byte; None when the file read cleanly (a
            lone surrogate in UTF-16 is no problem here: it reaches its line's reader as
            bytes that are not UTF-8, :func:`utf16_as_utf8`).
        corrupt_from: where (in the content) the corrupt gzip member began: what was read from
            there on is not the file's content and is to be left out. None when there is no
            such member, or its output was left out here (UTF-16, ``whole_members``).
        size: the content's bytes read so far.

    Args:
        raw: yield the decompressed bytes as they are (no byte-order mark removed, no UTF-16
            converted), for reading a head.
        read_bytes: the bytes of a file that is not gzip read at a time.
        whole_members: leave a corrupt member's output out of UTF-8 too, as of UTF-16 (at
            the cost of inflating a gzip file twice): what :func:`read_input` returns.
    """

    def __init__(
        self, path: Path, raw: bool = False, read_bytes: int = 1 << 24, whole_members: bool = False
    ) -> None:
        self.path, self.raw, self.read_bytes = path, raw, read_bytes
        self.whole_members = whole_members
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
                yield from (pieces if self.raw else self._as_utf8(pieces, gz))
        except OSError as e:
            raise SourceFormatError(f"cannot read file: {e.strerror}", Location(self.path)) from e

    def _as_utf8(self, pieces: Iterator[bytes], gz: bool) -> Iterator[bytes]:
        # The encoding is judged on the first bytes inflated, before any corrupt member is
        # left out (read_input's content: as it always was).
        first = b""
        for piece in pieces:
            first += piece
            if len(first) >= 3:
                break
        utf16 = encoding_of(first) == "utf-16"
        content: Iterator[bytes] = itertools.chain([first], pieces)
        if gz and (utf16 or self.whole_members):
            probe = Input(self.path, raw=True)  # inflates alike: its member is this one's
            for _ in probe:
                pass
            if probe.corrupt_from is not None:
                content, self._dropped = upto(content, probe.corrupt_from), True
                self.problem = probe.problem  # reading stops before the member shows it
                utf16 = utf16 and probe.corrupt_from >= 2  # else no byte-order mark is left
        if utf16:
            out = self._from_utf16(_skip(content, 2), _utf16_codec(first))
        elif first.startswith(UTF8_BOM):
            self._skipped = len(UTF8_BOM)
            out = _skip(content, self._skipped)
        else:
            out = content
        for piece in out:
            if piece:
                self.size += len(piece)
                yield piece

    def _from_utf16(self, raw: Iterator[bytes], codec: str) -> Iterator[bytes]:
        if problem := (yield from utf16_as_utf8(raw, codec)):
            self.problem = problem

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
    gzip stream is corrupt or cut short, or UTF-16 ends with an odd byte: what could be read is
    still returned, so its records count (a corrupt gzip member's output is left out).
    :class:`Content` gives the same in pieces."""
    stream = Input(path)
    data = b"".join(stream)
    if stream.corrupt_from is not None:
        data = data[: stream.corrupt_from]
    return data, stream.problem


class Content(Input):
    """What :func:`read_input` returns, in pieces: the file is never held whole, UTF-16
    included. The same bytes, the same ``problem`` and the same ``size``, also for a corrupt
    gzip member, whose output ``read_input`` leaves out (``Input``'s ``whole_members``: a gzip
    file is inflated once beforehand, which the readers using this, fallbacks, can afford).

    Attributes:
        problem: as ``read_input``'s; known once the pieces are read.
        size: the bytes yielded so far (``len(data)`` of ``read_input`` once read).

    Args:
        piece_bytes: the bytes of a file that is not gzip read at a time.
    """

    def __init__(self, path: Path, piece_bytes: int = 1 << 24) -> None:
        super().__init__(path, read_bytes=piece_bytes, whole_members=True)


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


def _recut(pieces: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The pieces, those longer than ``size`` cut in parts of ``size`` bytes."""
    for piece in pieces:
        if len(piece) <= size:
            yield piece
        else:
            yield from (piece[at : at + size] for at in range(0, len(piece), size))


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

    def locate_untimed(self, store: Store, file: InputFile, untimed: str) -> list[int | None]:
        """The lines of ``file``'s rows stored without a line (CSV rows, kept as their values:
        ``raw`` with a ``raw_schema``) whose timestamp did not parse, so that each is
        quarantined where it is: one per row of ``untimed`` (SQL of those rows' ``raw``), in
        no order. None where a row cannot be found; a format whose rows all carry their line
        has nothing to locate."""
        return [None] * store.scalar(f"SELECT count(*) FROM {untimed}")
