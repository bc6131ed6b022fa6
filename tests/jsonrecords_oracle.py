"""The whole-file JSON reader as it was before documents were streamed (crmwatch 63bf403,
``sources/jsonrecords.py``), kept verbatim as the oracle the streaming reader is compared
with: for every input, the same records and bad records, in the same order.

Changed on purpose since, and marked: the detail of a record or line that is not UTF-8 because
it holds a lone UTF-16 surrogate (its UTF-8 form, ``ED A0 80``) names it."""

# ruff: noqa
from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from crmwatch.schema import Reason
from crmwatch.sources.base import LONE_SURROGATE, why_not_utf8

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")


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
    start = len(data) - len(data.lstrip())
    if start == len(data):
        yield BadRecord(None, 0, Reason.EMPTY_FILE, "file holds no data")
        return
    if data[start : start + 1] == b"[":
        yield from _iter_document(data)
        return
    if is_document(data, start):
        yield from _iter_document(data)
    else:
        yield from _iter_ndjson(data)


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
        # changed on purpose: a lone surrogate named (it was "bytes that are not UTF-8")
        lone = re.search("\udced[\udca0-\udcbf][\udc80-\udcbf]", text)
        why = LONE_SURROGATE if lone else "bytes that are not UTF-8"
        return BadRecord(line, byte_offset, Reason.INVALID_UTF8, why)
    return JsonRecord(line, obj, text)


def _iter_ndjson(data: bytes) -> Iterator[Item]:
    offset = 0
    for line_no, raw_line in enumerate(data.split(b"\n"), start=1):
        yield from iter_line(line_no, offset, raw_line)
        offset += len(raw_line) + 1


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
        # changed on purpose: a lone surrogate named (it was str(e.reason))
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


def _iter_document(data: bytes) -> Iterator[Item]:
    """Every top-level value in turn: one array, one object, or several of them written one
    after another (`cat a.json b.json`, jq's pretty-printed stream). Whatever follows the last
    value that is not JSON is reported, never silently dropped."""
    text = data.decode("utf-8", errors="surrogateescape")
    lines = _LineCounter(text)
    pos = _WS.match(text, 0).end()
    while pos < len(text):
        if text[pos] == "[":
            end = yield from _iter_array(text, pos, lines)
            if end is None:
                return  # cut short or unrecoverable: already reported
            pos = _WS.match(text, end).end()
            continue
        try:
            obj, end = _decode(text, pos)
        except ValueError as e:
            # A wrapper that broke part-way still has good records before the break.
            records_at = _RECORDS_KEY.search(text, pos)
            if records_at:
                yield from _iter_array(text, records_at.end() - 1, lines)
                return
            yield BadRecord(
                lines.line(pos), _byte_offset(text, pos), Reason.INVALID_JSON,
                f"{_json_msg(e)} (the rest of the file, from here, is not read)",
            )  # fmt: skip
            return
        if _is_query_result(obj):
            records_at = _RECORDS_KEY.search(text, pos, end)
            assert records_at is not None  # the key is there: we just decoded it
            yield from _iter_array(text, records_at.end() - 1, lines)
        else:
            yield _record(lines.line(pos), obj, _byte_offset(text, pos))
        pos = _WS.match(text, end).end()


def _iter_array(
    text: str, open_bracket: int, lines: _LineCounter
) -> Generator[Item, None, int | None]:
    """The array's elements; returns the position after its ``]``, or None when it has none."""
    pos = _WS.match(text, open_bracket + 1).end()
    indent: int | None = None
    while pos < len(text):
        if text[pos] == "]":
            return pos + 1
        if indent is None:
            indent = pos - (text.rfind("\n", 0, pos) + 1)
        try:
            obj, end = _decode(text, pos)
        except ValueError as e:
            yield BadRecord(
                lines.line(pos), _byte_offset(text, pos), Reason.INVALID_JSON, _json_msg(e)
            )
            resume = _resync(text, pos + 1, indent)
            if resume is None:
                return None
            pos = resume
            continue
        yield _record(lines.line(pos), obj, None)
        pos = _WS.match(text, end).end()
        if pos < len(text) and text[pos] == ",":
            pos = _WS.match(text, pos + 1).end()
        elif pos < len(text) and text[pos] != "]":
            yield BadRecord(
                lines.line(pos), _byte_offset(text, pos), Reason.INVALID_JSON, "expected , or ]"
            )
            resume = _resync(text, pos, indent)
            if resume is None:
                return None
            pos = resume
    # Reaching the end without "]" means the file was cut short; every complete record is kept.
    yield BadRecord(
        lines.line(len(text)),
        _byte_offset(text, len(text)),
        Reason.INVALID_JSON,
        "JSON array is not closed (file truncated?)",
    )
    return None


def _resync(text: str, pos: int, indent: int | None) -> int | None:
    """The start of the next array element at the first element's indentation, if any."""
    if not indent:
        return None
    m = re.compile(r"\n" + " " * indent + r"\{").search(text, pos)
    return m.end() - 1 if m else None


class _LineCounter:
    """Line numbers for increasing positions without rescanning the text each time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.count = 1

    def line(self, pos: int) -> int:
        if pos < self.pos:
            return self.text.count("\n", 0, pos) + 1
        self.count += self.text.count("\n", self.pos, pos)
        self.pos = pos
        return self.count


def _byte_offset(text: str, pos: int) -> int:
    return len(text[:pos].encode("utf-8", errors="surrogateescape"))


def _json_msg(e: ValueError) -> str:
    """The decoder's reason, without the dangling "at" Python's position follows ("Unterminated
    string starting at"): the quarantine record carries the line and byte instead."""
    if isinstance(e, json.JSONDecodeError):
        return e.msg.removesuffix(" at").removesuffix(" starting")
    return str(e)
