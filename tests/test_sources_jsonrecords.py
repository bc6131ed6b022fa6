"""The streaming JSON reader (``jsonrecords.iter_stream``) reads what the whole-file reader
read (issue 16: no stage holds a whole input file in Python memory).

The oracle is the whole-file reader as it was (``tests/jsonrecords_oracle.py``): for generated
pretty-printed documents — arrays, query results, single objects, several of them one after
another — intact and damaged, cut into pieces anywhere and read in blocks of a few bytes,
the same records and bad records (line, byte offset, reason, detail) in the same order. Then
end to end: files ingested into a store hold the events and quarantined records they held
when documents were read whole.
"""

from __future__ import annotations

import codecs
import gzip
import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmwatch.ingest import ingest
from crmwatch.schema import Reason
from crmwatch.sources import jsonstage
from crmwatch.sources.base import LONE_SURROGATE, Input, InputFile, Quarantine, read_input
from crmwatch.sources.jsonrecords import BadRecord, JsonRecord, iter_records, iter_stream
from crmwatch.store import Store
from tests import jsonrecords_oracle as oracle


def items(found: Any) -> list[tuple]:
    """Items as plain tuples: the oracle's classes are not the reader's."""
    return [(type(i).__name__, *vars(i).values()) for i in found]


def pieces_of(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length)."""
    at = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(at)]


def assert_streams_as_whole(data: bytes, block: int = 7, cuts: list[int] = ()) -> None:
    want = items(oracle.iter_records(data))
    assert items(iter_stream(pieces_of(data, list(cuts)), block=block)) == want
    assert items(iter_records(data)) == want


### Generated documents ###

# Strings that make a scanner's life hard: quotes, backslashes and brackets inside them, and
# characters of two, three and four bytes.
hard_text = st.text(
    alphabet=st.sampled_from([*'ab "\\[]{},:\n\té日😀', "\u2028", "\x00"]), max_size=12
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    hard_text,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hard_text, inner, max_size=4)
    ),
    max_leaves=12,
)
records = st.dictionaries(hard_text, values, min_size=1, max_size=5)
# Now and then an element that is not an object (quarantined as such).
elements = st.one_of(records, records, records, values)


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """A pretty-printed export: one array, a query result, one object, or several of them."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        indent = draw(st.sampled_from([None, 0, 1, 2, 4, "\t"]))
        ascii_only = draw(st.booleans())
        kind = draw(st.sampled_from(["array", "array", "query", "object"]))
        rows = draw(st.lists(elements, max_size=6))
        value: Any = rows
        if kind == "query":
            value = {"totalSize": len(rows), "done": True, "records": rows}
        elif kind == "object":
            value = draw(records)
        parts.append(json.dumps(value, indent=indent, ensure_ascii=ascii_only))
    sep = draw(st.sampled_from(["\n", "", " ", "\r\n", "\n\n"]))
    lead = draw(st.sampled_from(["", "\n", "  "]))
    return (lead + sep.join(parts) + draw(st.sampled_from(["", "\n"]))).encode(
        "utf-8", errors="surrogatepass"
    )


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A document with bytes deleted, inserted or replaced, garbage between its parts, or cut
    short: the reader's recovery is what the whole-file reader's was."""
    data = bytearray(draw(documents()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["delete", "insert", "garbage", "cut", "bad utf-8"]))
        if op == "delete" and data:
            del data[min(at, len(data) - 1)]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"{", b"}", b"[", b"]", b'"', b",", b"\\", b":"]))
        elif op == "garbage":
            data[at:at] = draw(st.sampled_from([b"\n  oops\n", b"\n  {\n", b"\x00", b'"records": ['
                                                ]))  # fmt: skip
        elif op == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.sampled_from([b"\xff", b"\xe6\x97", b"\xed\xa0\x80"]))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents(), st.sampled_from([1, 2, 7, 64, 1 << 20]), st.lists(st.integers(0, 10**6)))
def test_stream_documents_read_as_whole(data: bytes, block: int, cuts: list[int]):
    assert_streams_as_whole(data, block, cuts)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(damaged(), st.sampled_from([1, 3, 7, 64, 1 << 20]), st.lists(st.integers(0, 10**6)))
def test_stream_damaged_documents_read_as_whole(data: bytes, block: int, cuts: list[int]):
    assert_streams_as_whole(data, block, cuts)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=80), st.sampled_from([1, 7]))
def test_stream_any_bytes_read_as_whole(data: bytes, block: int):
    assert_streams_as_whole(data, block)


### Shapes named ###

OKTA = [
    {"uuid": f"u-{i}", "eventType": "user.session.start", "published": "2025-06-10T10:00:00Z",
     "actor": {"alternateId": f"user{i}@x.example", "displayName": 'Jo "J" [x] {y} \\'}}
    for i in range(12)
]  # fmt: skip
PRETTY = json.dumps(OKTA, indent=2).encode()
QUERY = json.dumps({"totalSize": 12, "done": True, "records": OKTA}, indent=4).encode()


def _record_at(data: bytes, n: int) -> int:
    """Where the n-th record (counting from 0) of a pretty-printed array starts."""
    at = -1
    for _ in range(n + 1):
        at = data.index(b"\n  {", at + 1)
    return at + 3


@pytest.mark.parametrize(
    "data",
    [
        PRETTY,
        QUERY,
        PRETTY + b"\n" + QUERY + b"\n" + PRETTY,
        PRETTY[: len(PRETTY) // 2],  # cut short: the array is not closed
        QUERY[:-40],  # a query result cut short: its records before the cut
        PRETTY[: _record_at(PRETTY, 3) + 20] + PRETTY[_record_at(PRETTY, 5) :],  # resync
        PRETTY.replace(b"\n  {", b"\n {", 1),  # the first element's indent: no resync
        PRETTY.replace(b",\n  {", b"\n  {", 1),  # a missing comma
        PRETTY.replace(b"u-4", b"\xff-4"),  # not UTF-8
        b"[" + b"[" * 5000 + b"]" * 5000 + b",\n" + PRETTY[1:],  # nested past the stack
        json.dumps(OKTA[0], indent=2).encode(),  # one pretty-printed object
        b'{"totalSize": 1, "done": tr' + QUERY[30:],  # a broken wrapper
        b"",
        b" \n\t",
        b'{"a": 1}\n{"b": 2}\n{bad\n',  # NDJSON after all
        b"\x0c[1]",
        b"[1.5, 1e400, -Infinity, NaN, " + b"1" * 5000 + b"]",  # digits past int's limit
    ],
    ids=[
        "array",
        "query",
        "several",
        "cut",
        "query-cut",
        "resync",
        "no-resync",
        "no-comma",
        "not-utf8",
        "deep",
        "object",
        "broken-wrapper",
        "empty",
        "blank",
        "ndjson",
        "formfeed",
        "numbers",
    ],
)
@pytest.mark.parametrize("block", [1, 5, 1 << 20])
def test_stream_shapes_read_as_whole(data: bytes, block: int):
    assert_streams_as_whole(data, block)


def test_stream_a_record_larger_than_the_block_is_read_whole():
    big = [{"uuid": "big", "blob": "x" * 50_000, "nested": [[{"a": "]"}]] * 200}, OKTA[0]]
    assert_streams_as_whole(json.dumps(big, indent=2).encode(), block=64)


def test_stream_holds_a_block_and_a_record():
    """However long the array, the window of text the reader holds stays about a block and a
    record (the whole-file reader held all of it)."""
    from crmwatch.sources import jsonrecords

    widest = 0
    real = jsonrecords._Text._more

    def watched(self: jsonrecords._Text, want: int) -> bool:
        nonlocal widest
        more = real(self, want)
        widest = max(widest, len(self.buf))
        return more

    data = json.dumps(OKTA * 2000, indent=2).encode()  # 24,000 records, 6 MB
    jsonrecords._Text._more = watched  # type: ignore[method-assign]
    try:
        found = list(iter_stream([data], block=4096))
    finally:
        jsonrecords._Text._more = real  # type: ignore[method-assign]
    assert len(found) == 24_000
    assert widest < 3 * 4096


@pytest.mark.parametrize(
    ("data", "bad"),
    [
        (b'{"a": 1}\n{"b": "x\xed\xa0\x80"}\n{"c": 3}\n', (2, 17, LONE_SURROGATE)),
        (b'{"a": 1}\n{"b": "x\xed\xb3\xbf"}\n{"c": 3}\n', (2, 17, LONE_SURROGATE)),
        (b'{"a": 1}\n{"b": "x\xff"}\n{"c": 3}\n', (2, 17, "invalid start byte")),
        (b'[{"a": 1},\n {"b": "x\xed\xa0\x80"},\n {"c": 3}]', (2, None, LONE_SURROGATE)),
        (b'[{"a": 1},\n {"b": "x\xff"},\n {"c": 3}]', (2, None, "bytes that are not UTF-8")),
    ],
)
def test_a_lone_surrogate_is_named_and_costs_its_record_only(data: bytes, bad: tuple):
    """What a lone UTF-16 surrogate becomes (``base.utf16_as_utf8``: its UTF-8 form, which is
    not UTF-8) is named in the quarantine entry; other bytes that are not UTF-8 as before."""
    found = items(iter_stream([data], block=7))
    assert [i[1:4:2] if i[0] == "JsonRecord" else None for i in found] == [
        (1, '{"a":1}'), None, (3, '{"c":3}')
    ]  # fmt: skip
    line, offset, detail = bad  # a document's records carry no offset
    assert found[1] == ("BadRecord", line, offset, Reason.INVALID_UTF8, detail)


### Input: gzip, byte-order marks, UTF-16 ###


@pytest.mark.parametrize(
    "name, content",
    [
        ("plain.json", PRETTY),
        ("bom.json", codecs.BOM_UTF8 + PRETTY),
        ("utf16.json", "\ufeff".encode("utf-16-le") + PRETTY.decode().encode("utf-16-le")),
        ("okta.json.gz", gzip.compress(PRETTY)),
        ("two.json.gz", gzip.compress(PRETTY[:300]) + gzip.compress(PRETTY[300:])),
        ("cut.json.gz", gzip.compress(PRETTY)[:-500]),
        ("trailer.json.gz", gzip.compress(PRETTY) + b"not gzip"),
    ],
)
def test_stream_of_an_input_reads_as_whole(tmp_path: Path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    data, _ = read_input(path)
    assert items(iter_stream(Input(path), block=11)) == items(oracle.iter_records(data))


### End to end: the store ###


def _old_read_document(
    self: jsonstage.JsonSource, f: InputFile, pending: jsonstage._Pending
) -> Iterator[Any]:
    """``JsonSource._read_document`` before documents were streamed (63bf403), with the
    oracle's reader: the file read whole."""
    data, problem = read_input(f.path)
    if problem:
        pending.quarantined.append(Quarantine(f, None, len(data), Reason.TRUNCATED_INPUT, problem))
    for ordinal, item in enumerate(oracle.iter_records(data)):
        ours = JsonRecord(**vars(item)) if isinstance(item, oracle.JsonRecord) else None
        pending.add(f, ours or BadRecord(**vars(item)), ordinal)
    return iter(())


def store_rows(path: Path, files: list[Path], fmt: str | None = None) -> dict[str, list]:
    with Store(path) as store:
        ingest(store, files, fmt=fmt)
        return {
            "events": sorted(store.execute(
                "SELECT event_id, ingest_line, raw::VARCHAR FROM events_base").rows),
            "quarantine": sorted(map(str, store.execute(
                "SELECT * EXCLUDE (file_id) FROM quarantine").rows)),
            "files": sorted(map(str, store.execute(
                "SELECT records, quarantined FROM ingest_files").rows)),
        }  # fmt: skip


def assert_stores_as_whole(tmp_path: Path, files: list[Path], fmt: str | None = None) -> None:
    streamed = store_rows(tmp_path / "streamed.duckdb", files, fmt)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(jsonstage.JsonSource, "_read_document", _old_read_document)
        whole = store_rows(tmp_path / "whole.duckdb", files, fmt)
    assert streamed == whole


def okta_event(i: int) -> dict:
    return {
        "uuid": f"uuid-{i}",
        "published": f"2025-06-10T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
        "eventType": "user.session.start",
        "actor": {"alternateId": f"user{i % 7}@acme.example", "displayName": 'A "q" [b]'},
        "client": {"ipAddress": f"203.0.113.{i % 250}", "userAgent": {"rawUserAgent": "x"}},
        "outcome": {"result": "SUCCESS"},
    }


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.integers(1, 40),
    st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from([b"", b"}", b'"', b"\xff"])),
             max_size=2),
    st.sampled_from(["okta.json", "okta.json.gz"]),
    st.sampled_from([1, 2, 1 << 20]),
)  # fmt: skip
def test_ingest_pretty_okta_stores_as_whole(
    tmp_path_factory: pytest.TempPathFactory, n: int, damage: list, name: str, rows: int
):
    """A ``jq .`` export of the System Log, now and then damaged, staged in units of a few
    rows: the store is the one reading it whole made."""
    folder = tmp_path_factory.mktemp("pretty")
    data = bytearray(json.dumps([okta_event(i) for i in range(n)], indent=2).encode())
    for at, insert in damage:
        at %= len(data)
        data[at : at + 1] = insert
    path = folder / name
    path.write_bytes(gzip.compress(bytes(data)) if name.endswith(".gz") else bytes(data))
    original = jsonstage.ROWS_PER_UNIT
    jsonstage.ROWS_PER_UNIT = rows
    try:
        assert_stores_as_whole(folder, [path], fmt="okta")
    finally:
        jsonstage.ROWS_PER_UNIT = original


def test_ingest_query_results_and_documents_store_as_whole(tmp_path: Path):
    contacts = [
        {"attributes": {"type": "LoginHistory", "url": f"/x/{i}"}, "Id": f"0Ya{i:015d}",
         "LoginTime": f"2025-06-10T10:00:{i % 60:02d}.000+0000", "UserId": "005x",
         "SourceIp": "198.51.100.7", "Status": "Success"}
        for i in range(30)
    ]  # fmt: skip
    page = {"totalSize": 30, "done": True, "records": contacts}
    files = {
        "page.json": json.dumps(page, indent=4),
        "pages.json": json.dumps(page, indent=2) + "\n" + json.dumps(page, indent=2),
        "cut.json": json.dumps(page, indent=2)[:-700],
        "one.json": json.dumps(contacts[0], indent=2),
    }
    paths = []
    for name, text in files.items():
        paths.append(tmp_path / name)
        paths[-1].write_text(text)
    assert_stores_as_whole(tmp_path, paths)


def test_ingest_corrupt_gzip_member_stores_as_whole(tmp_path: Path):
    """A second member whose checksum is wrong, found once all its output was read and
    staged: what was read of it is taken back, the file read again up to it, as reading it
    whole left its output out. (The first member holds the head, which must read cleanly.)"""
    rng = random.Random(16)  # not to compress much: the member is read in several pieces
    events = [{**okta_event(i), "blob": rng.randbytes(150).hex()} for i in range(4000)]
    data = json.dumps(events, indent=2).encode()
    cut = _record_at(data, 2000) + 10  # inside a record: the array is cut there
    second = bytearray(gzip.compress(data[cut:]))
    second[-6] ^= 0xFF  # its CRC-32
    path = tmp_path / "okta.json.gz"
    path.write_bytes(gzip.compress(data[:cut]) + bytes(second))
    stream = Input(path)
    assert sum(map(len, stream)) > cut + 100_000 and stream.corrupt_from == cut
    original = jsonstage.ROWS_PER_UNIT
    jsonstage.ROWS_PER_UNIT = 1000
    try:
        assert_stores_as_whole(tmp_path, [path], fmt="okta")
        with Store(tmp_path / "streamed.duckdb") as store:
            reasons = store.execute("SELECT reason, count(*) FROM quarantine GROUP BY 1").rows
            assert sorted(reasons) == [("invalid_json", 1), ("truncated_input", 1)]
            assert store.scalar("SELECT count(*) FROM events_base") == 2000
    finally:
        jsonstage.ROWS_PER_UNIT = original
