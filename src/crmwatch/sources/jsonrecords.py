"""Read JSON inputs record by record, with the line of every record and of every error.

Handles the shapes logs are exported in: NDJSON (one object per line), a JSON array (Okta's
``/api/v1/logs``, SIEM exports), a SOQL/REST query result (``{"records": [...]}``) and a
single pretty-printed object. A bad record never costs the good ones around it: NDJSON
recovers at the next line; arrays recover at the next element that starts at the same
indentation as the first one (pretty-printed exports), otherwise the rest of the array is
quarantined as one span with its byte offset.

The input is read as a stream (:func:`iter_stream`), a block at a time: a pretty-printed
export of any size holds a block of it and one record in memory (issue 16). Python's own
decoder finds where each record ends: a record is decoded from the text read so far, and
when the result could depend on text not read yet (it ends, or fails, within a few
characters of what was read, or at an unterminated string) more is read and it is decoded
again. What is read is what the whole file decoded at once would have given: the same
records, the same bad records with the same lines and byte offsets.

Held whole all the same: a top-level value that is not an array (one pretty-printed object,
a query result ``{"totalSize": .., "records": [...]}``) until its end, because whether it is
a query result to unwrap or one record depends on keys that may follow its records, and
whether it is valid JSON on all of it. A query result page from the API is a few MB (2,000
records); an export of millions of records is an array, and streamed.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from crmwatch.schema import Reason
from crmwatch.sources.base import LONE_SURROGATE, why_not_utf8

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")
# What ``bytes.lstrip`` strips: the whitespace that makes a file empty.
_LSTRIP = re.compile(r"[ \t\n\r\x0b\x0c]*")

BLOCK = 1 << 20  # bytes of input decoded at a time
# A decoded value (or a decoding error) this many characters or more before the end of the
# text read so far is what the whole text gives: the decoder looks at most a few characters
# past where it stops (a number's end, a literal such as -Infinity, a \uXXXX escape).
_MARGIN = 32


@dataclass
class JsonRecord:
    line: int
    obj: dict[str, Any]
    text: str  # compact JSON of the record, keys sorted, as it is stored in ``raw``


@dataclass
class BadRecord:
    line: int | None
    byte_offset: int | None
    reason: Reason
    detail: str


Item = JsonRecord | BadRecord


def iter_records(data: bytes) -> Iterator[Item]:
    """Yield every record of a JSON input, or a ``BadRecord`` for each part that is not one."""
    return iter_stream((data,))


def iter_stream(pieces: Iterable[bytes], block: int = BLOCK) -> Iterator[Item]:
    """:func:`iter_records` of the content ``pieces`` make up, read a block at a time.

    Args:
        pieces: the content (UTF-8, as :class:`crmwatch.sources.base.Input` yields it), cut
            anywhere.
        block: bytes decoded at a time; tests use a few to cut records anywhere.
    """
    text = _Text(pieces, block)
    start = text.skip(_LSTRIP, 0)
    if text.end(start):
        yield BadRecord(None, 0, Reason.EMPTY_FILE, "file holds no data")
        return
    if text.char(start) == "[" or _is_document(text, start):
        yield from _iter_document(text)
    else:
        yield from _iter_ndjson(text)


def is_document(data: bytes, start: int) -> bool:
    """One JSON value spread over lines (pretty object, query result) rather than NDJSON.

    NDJSON's records each sit on one line; a document's first value runs past its first line.
    When the start does not decode at all (a cut-off file), a second line that starts with
    "{" at column 0 marks NDJSON, an indented one a pretty-printed document.
    """
    first_end = data.find(b"\n", start)
    if first_end < 0:
        return False
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        _, end = _decode(text, start)
    except ValueError:
        rest = data[first_end + 1 :].lstrip(b"\r\n")
        return not rest.startswith(b"{")
    return end > len(data[:first_end].decode("utf-8", errors="surrogateescape"))


def _is_document(text: _Text, start: int) -> bool:
    """:func:`is_document` of the stream (its first value is held to decode it)."""
    first_end = text.search(_NEWLINE, start)
    if first_end is None:
        return False
    try:
        _, end = text.decode(start)
    except ValueError:
        rest = text.skip(_CRLF, first_end[1])
        return text.end(rest) or text.char(rest) != "{"
    return end > first_end[0]


def _decode(text: str, pos: int) -> tuple[Any, int]:
    """``raw_decode``, where a value nested deeper than Python's stack is a ``ValueError``
    like any other undecodable one: one hostile record costs itself, not the file."""
    try:
        return _DECODER.raw_decode(text, pos)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def _compact(obj: Any) -> str:
    """The record as stored in ``raw``, keys sorted: the same record written with its keys in
    another order is the same text, and so the same content id."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def record(line: int, obj: Any, byte_offset: int | None = None) -> Item:
    """A decoded value as a record, or why it is none (sources that build records from other
    shapes, like a CSV download, use this too)."""
    return _record(line, obj, byte_offset)


def _record(line: int, obj: Any, byte_offset: int | None) -> Item:
    if not isinstance(obj, dict):
        return BadRecord(line, byte_offset, Reason.NOT_AN_OBJECT, f"a JSON {type(obj).__name__}")
    text = _compact(obj)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        why = LONE_SURROGATE if _ESCAPED_SURROGATE.search(text) else "bytes that are not UTF-8"
        return BadRecord(line, byte_offset, Reason.INVALID_UTF8, why)
    return JsonRecord(line, obj, text)


# A lone UTF-16 surrogate as it reaches a document's records: the three bytes
# ``base.utf16_as_utf8`` carries it through as, each kept by the surrogateescape decoding.
_ESCAPED_SURROGATE = re.compile("\udced[\udca0-\udcbf][\udc80-\udcbf]")


def _iter_ndjson(text: _Text) -> Iterator[Item]:
    pos, offset = 0, 0
    for line_no in itertools.count(1):
        found = text.search(_NEWLINE, pos)
        stop = text.total if found is None else found[0]
        # the line's bytes as they are: :func:`iter_line` reports bytes that are not UTF-8
        raw_line = text.slice(pos, stop).encode("utf-8", errors="surrogateescape")
        yield from iter_line(line_no, offset, raw_line)
        if found is None:
            return
        offset += len(raw_line) + 1
        pos = found[1]
        text.keep_from(pos)


def iter_line(line_no: int, line_offset: int, raw_line: bytes) -> Iterator[Item]:
    """The records of one NDJSON line (none for a blank one), or why it holds none.

    Usually one value per line; values written one after another on a line are each read, and
    what follows the last one is reported, not allowed to cost them.

    Args:
        line_offset: the line's byte offset in the file, for the offsets of bad records.
    """
    if not raw_line.strip():
        return
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as e:
        why = why_not_utf8(raw_line, e)
        yield BadRecord(line_no, line_offset + e.start, Reason.INVALID_UTF8, why)
        return
    pos = _WS.match(text).end()
    while pos < len(text):
        try:
            obj, end = _decode(text, pos)
        except ValueError as e:
            detail = _json_msg(e)
            if pos > _WS.match(text).end():
                detail = f"data after the JSON value at column {pos + 1}: {detail}"
            yield BadRecord(line_no, line_offset + len(text[:pos].encode()),
                            Reason.INVALID_JSON, detail)  # fmt: skip
            break
        if _is_query_result(obj):
            # Paginated query results saved one response per line.
            for rec in obj["records"]:
                yield _record(line_no, rec, line_offset)
        else:
            yield _record(line_no, obj, line_offset)
        pos = _WS.match(text, end).end()


def _is_query_result(obj: Any) -> bool:
    """A SOQL/REST query response: ``{"totalSize": n, "done": b, "records": [...]}``."""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("records"), list)
        and ("totalSize" in obj or "done" in obj)
    )


_RECORDS_KEY = re.compile(r'"records"\s*:\s*\[')


def _iter_document(text: _Text) -> Iterator[Item]:
    """Every top-level value in turn: one array, one object, or several of them written one
    after another (`cat a.json b.json`, jq's pretty-printed stream). Whatever follows the last
    value that is not JSON is reported, never silently dropped."""
    pos = text.ws(0)
    while not text.end(pos):
        text.keep_from(pos)
        if text.char(pos) == "[":
            end = yield from _iter_array(text, pos)
            if end is None:
                return  # cut short or unrecoverable: already reported
            pos = text.ws(end)
            continue
        try:
            obj, end = text.decode(pos)
        except ValueError as e:
            line, offset = text.line(pos), text.byte(pos)
            # A wrapper that broke part-way still has good records before the break.
            records_at = text.search(_RECORDS_KEY, pos, _records_key_tail, let_go=True)
            if records_at:
                yield from _iter_array(text, records_at[1] - 1)
                return
            yield BadRecord(
                line, offset, Reason.INVALID_JSON,
                f"{_json_msg(e)} (the rest of the file, from here, is not read)",
            )  # fmt: skip
            return
        if _is_query_result(obj):
            del obj  # its records are decoded again one at a time
            records_at = text.search(_RECORDS_KEY, pos, stop=end)
            assert records_at is not None  # the key is there: we just decoded it
            yield from _iter_array(text, records_at[1] - 1)
        else:
            yield _record(text.line(pos), obj, text.byte(pos))
        pos = text.ws(end)


def _iter_array(text: _Text, open_bracket: int) -> Generator[Item, None, int | None]:
    """The array's elements; returns the position after its ``]``, or None when it has none."""
    pos = text.ws(open_bracket + 1)
    indent: int | None = None
    while not text.end(pos):
        if text.char(pos) == "]":
            return pos + 1
        if indent is None:
            indent = text.column(pos)
        text.keep_from(pos)
        try:
            obj, end = text.decode(pos)
        except ValueError as e:
            yield BadRecord(text.line(pos), text.byte(pos), Reason.INVALID_JSON, _json_msg(e))
            resume = _resync(text, pos + 1, indent)
            if resume is None:
                return None
            pos = resume
            continue
        yield _record(text.line(pos), obj, None)
        pos = text.ws(end)
        if not text.end(pos) and text.char(pos) == ",":
            pos = text.ws(pos + 1)
        elif not text.end(pos) and text.char(pos) != "]":
            yield BadRecord(text.line(pos), text.byte(pos), Reason.INVALID_JSON, "expected , or ]")
            resume = _resync(text, pos, indent)
            if resume is None:
                return None
            pos = resume
    # Reaching the end without "]" means the file was cut short; every complete record is kept.
    yield BadRecord(
        text.line(text.total),
        text.byte(text.total),
        Reason.INVALID_JSON,
        "JSON array is not closed (file truncated?)",
    )
    return None


def _resync(text: _Text, pos: int, indent: int | None) -> int | None:
    """The start of the next array element at the first element's indentation, if any."""
    if not indent:
        return None
    found = text.search(_element_start(indent), pos, lambda _: indent + 1, let_go=True)
    return found[1] - 1 if found else None


@functools.lru_cache(maxsize=64)
def _element_start(indent: int) -> re.Pattern[str]:
    return re.compile(r"\n" + " " * indent + r"\{")


_NEWLINE = re.compile(r"\n")
_CRLF = re.compile(r"[\r\n]*")
# The start of ``"records": [`` cut by the end of what was read so far.
_RECORDS_KEY_START = re.compile(r'"(?:records"\s*(?::\s*)?|r(?:e(?:c(?:o(?:r(?:d(?:s)?)?)?)?)?)?)?')


def _records_key_tail(buf: str) -> int:
    """How much of the end of ``buf`` may be the start of ``"records": [``."""
    keep = 0
    at = len(buf)
    for _ in range(2):  # the key's quotes: the last two
        at = buf.rfind('"', 0, at)
        if at < 0:
            break
        if _RECORDS_KEY_START.fullmatch(buf, at):
            keep = len(buf) - at
    return keep


class _Text:
    """The decoded content, read a block at a time: a window of it, addressed by positions in
    the whole (``str`` indices, as if it had been decoded at once). Text before the position
    given to ``keep_from`` is let go of when more is read; what it held is counted (line
    breaks, bytes) so that lines and byte offsets stay those of the whole."""

    def __init__(self, pieces: Iterable[bytes], block: int) -> None:
        self._blocks = _blocks(pieces, block)
        self.block = block
        # Bytes that are not UTF-8 become lone surrogates, as ``bytes.decode`` with
        # ``surrogateescape`` makes them, and are written back as they were.
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")
        self.buf = ""
        self.base = 0  # the position of buf[0]
        self.eof = False
        self._keep = 0
        self._lines = 0  # line breaks before base
        self._bytes = 0  # bytes before base
        self._last_nl = -1  # the position of the last line break before base
        self._cur, self._cur_lines = 0, 0  # a position, and the line breaks before it

    @property
    def total(self) -> int:
        """The content's length; only once it is read to its end (``end`` is true)."""
        return self.base + len(self.buf)

    def keep_from(self, pos: int) -> None:
        self._keep = max(self._keep, pos)

    def _more(self, want: int) -> bool:
        """Read at least ``want`` more characters, or to the end; False at the end."""
        if self.eof:
            return False
        got: list[str] = []
        n = 0
        for piece in self._blocks:
            got.append(self._utf8.decode(piece))
            n += len(got[-1])
            if n >= want:
                break
        else:
            got.append(self._utf8.decode(b"", final=True))
            self.eof = True
        drop = self._keep - self.base
        if drop > 0:
            dropped = self.buf[:drop]
            self._lines += dropped.count("\n")
            nl = dropped.rfind("\n")
            if nl >= 0:
                self._last_nl = self.base + nl
            self._bytes += len(dropped) if dropped.isascii() else len(_utf8(dropped))
            self.base += drop
            self.buf = self.buf[drop:]
            if self._cur < self.base:
                self._cur, self._cur_lines = self.base, self._lines
        self.buf += "".join(got)
        return True

    def end(self, pos: int) -> bool:
        """True when ``pos`` is at or past the content's end (reading on to know)."""
        while pos >= self.base + len(self.buf):
            if not self._more(pos - self.base - len(self.buf) + 1):
                return True
        return False

    def char(self, pos: int) -> str:
        return self.buf[pos - self.base]

    def slice(self, start: int, stop: int) -> str:
        return self.buf[start - self.base : stop - self.base]

    def skip(self, chars: re.Pattern[str], pos: int) -> int:
        """The position after the run of ``chars`` (a pattern such as ``[ ]*``) at ``pos``."""
        while True:
            pos = self.base + chars.match(self.buf, pos - self.base).end()
            if pos < self.base + len(self.buf) or not self._more(self.block):
                return pos

    def ws(self, pos: int) -> int:
        return self.skip(_WS, pos)

    def search(
        self,
        pattern: re.Pattern[str],
        pos: int,
        tail: Callable[[str], int] = lambda _: 0,
        stop: int | None = None,
        let_go: bool = False,
    ) -> tuple[int, int] | None:
        """Start and end of the first match of ``pattern`` at or after ``pos`` (before
        ``stop``: text already read). ``tail`` says how much of the end of what was read may
        begin a match; ``let_go``: the text searched is not needed after (else it is kept:
        the caller reads it next)."""
        if stop is not None:
            m = pattern.search(self.buf, pos - self.base, stop - self.base)
            return None if m is None else (self.base + m.start(), self.base + m.end())
        while True:
            m = pattern.search(self.buf, pos - self.base)
            if m is not None:
                return self.base + m.start(), self.base + m.end()
            pos = max(pos, self.base + len(self.buf) - tail(self.buf))
            if let_go:
                self.keep_from(pos)
            if not self._more(self.block if let_go else max(self.block, len(self.buf))):
                return None

    def decode(self, pos: int) -> tuple[Any, int]:
        """The value at ``pos`` and the position after it, as ``raw_decode`` of the whole
        content gives them (:func:`_decode`), reading on until it is sure to."""
        unsure: str | None = None
        while True:
            at = pos - self.base
            try:
                obj, end = _decode(self.buf, at)
            except json.JSONDecodeError as e:
                if (self.eof or e.pos + _MARGIN <= len(self.buf)) and not e.msg.startswith(
                    "Unterminated string"
                ):
                    raise
                if self.eof:
                    raise
            except ValueError as e:
                # Nested too deeply: so it is in any longer text. A number too long to
                # convert (its digits in the message) is what it is once more text left it
                # unchanged.
                if self.eof or str(e) == unsure or e.args == ("JSON nested too deeply to read",):
                    raise
                unsure = str(e)
            else:
                if self.eof or end + _MARGIN <= len(self.buf) or self.buf[end - 1] in '"]}':
                    return obj, self.base + end
            # the value runs on past what was read: read as much again
            self._more(max(len(self.buf) - at, self.block))

    def line(self, pos: int) -> int:
        """The line of ``pos``: one more than the line breaks before it."""
        if pos >= self._cur:
            self._cur_lines += self.buf.count("\n", self._cur - self.base, pos - self.base)
        else:
            self._cur_lines = self._lines + self.buf.count("\n", 0, pos - self.base)
        self._cur = pos
        return self._cur_lines + 1

    def column(self, pos: int) -> int:
        """Characters between the line break before ``pos`` and ``pos``."""
        nl = self.buf.rfind("\n", 0, pos - self.base)
        return pos - (self.base + nl + 1 if nl >= 0 else self._last_nl + 1)

    def byte(self, pos: int) -> int:
        """``pos`` as a byte offset in the content."""
        return self._bytes + len(_utf8(self.buf[: pos - self.base]))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _blocks(pieces: Iterable[bytes], block: int) -> Iterator[bytes]:
    """The pieces cut to at most ``block`` bytes."""
    for piece in pieces:
        if len(piece) <= block:
            yield piece
            continue
        for at in range(0, len(piece), block):
            yield piece[at : at + block]


def _json_msg(e: ValueError) -> str:
    """The decoder's reason, without the dangling "at" Python's position follows ("Unterminated
    string starting at"): the quarantine record carries the line and byte instead."""
    if isinstance(e, json.JSONDecodeError):
        return e.msg.removesuffix(" at").removesuffix(" starting")
    return str(e)
