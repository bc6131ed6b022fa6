"""JSON staged by DuckDB (issue 16) stores what Python's json module reads in the same files.

Each test reads its files a second time with the json module, independently of crmwatch, and
compares: the records and the lines they are on, their canonical text (``raw``: compact, keys
sorted, as crmwatch always wrote it), their event ids (the md5 old stores hold, so a file
ingested again by this version adds no duplicate), and the lines quarantined.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmwatch.ingest import ingest
from crmwatch.simulate.org import simulate
from crmwatch.sources import jsonstage
from crmwatch.store import Store
from tests.conftest import REAL

OKTA_SAMPLES = sorted((REAL / "okta").glob("elastic_*.log"))


def canonical(obj: object) -> str:
    """A record as crmwatch has always stored it in ``raw``."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def event_id(prefix: str, rtype: str, obj: object) -> str:
    return hashlib.md5((prefix + rtype + "\x1f" + canonical(obj)).encode()).hexdigest()


def ndjson_records(path: Path) -> tuple[dict[str, int], list[int]]:
    """The file's records (canonical text → first line it is on) and its lines that are not
    one JSON object, read line by line with the json module."""
    records: dict[str, int] = {}
    bad: list[int] = []
    for n, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line.decode("utf-8"))
            canonical(obj).encode("utf-8")  # a lone surrogate (\ud800) is no UTF-8
        except ValueError:  # UnicodeError included
            bad.append(n)
            continue
        if not isinstance(obj, dict):
            bad.append(n)
            continue
        records.setdefault(canonical(obj), n)
    return records, bad


def stored(store: Store) -> dict[str, int]:
    return dict(store.execute("SELECT raw::VARCHAR, ingest_line FROM events").rows)


def quarantined_lines(store: Store) -> list[int]:
    return [r[0] for r in store.execute("SELECT line FROM quarantine ORDER BY line").rows]


### The real samples and the simulated org ###


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("org")
    simulate(out, customers=1000, employees=40, days=14, seed=16)
    return out


@pytest.mark.parametrize("path", OKTA_SAMPLES, ids=lambda p: p.name)
def test_okta_samples_store_what_python_reads(path: Path, store: Store):
    ingest(store, [path])
    expected, bad = ndjson_records(path)
    assert bad == []
    assert stored(store) == expected
    rows = store.execute(
        "SELECT raw::VARCHAR, event_id, native_id, user_name, strftime(ts, '%Y-%m-%dT%H:%M:%S.%g') "
        "FROM events"
    ).rows
    for raw, eid, native_id, user_name, ts in rows:
        obj = json.loads(raw)
        assert eid == event_id("okta:", obj["eventType"], obj)
        assert native_id == obj["uuid"]
        assert user_name == obj["actor"]["alternateId"]
        assert ts == obj["published"].removesuffix("Z")


def test_simulated_okta_log_stores_what_python_reads(org: Path, store: Store):
    path = org / "logs" / "okta" / "system_log.ndjson"
    ingest(store, [path])
    expected, bad = ndjson_records(path)
    assert bad == [] and len(expected) > 1000
    assert stored(store) == expected
    ids = {r[0] for r in store.execute("SELECT event_id FROM events").rows}
    assert ids == {event_id("okta:", json.loads(r)["eventType"], json.loads(r)) for r in expected}


def test_simulated_salesforce_objects_store_what_python_reads(org: Path, store: Store):
    """Query results as the API returns them (pretty-printed documents: read by Python)."""
    folder = org / "logs" / "salesforce" / "objects"
    ingest(store, [folder])
    expected = set()
    for path in folder.glob("*.json"):
        for record in json.loads(path.read_text())["records"]:
            rtype = record["attributes"]["type"]
            expected.add((event_id("api:", rtype, record), f"api:{rtype}"))
    assert set(store.execute("SELECT event_id, source_type FROM events").rows) == expected


def test_eventlogfile_json_stores_what_python_reads(store: Store):
    """SIEM exports of EventLogFile rows: upper-case keys one per line, lower-case keys in a
    pretty-printed array with a header row carried into it."""
    paths = sorted((REAL / "salesforce").glob("elastic_*eventlogfile*.log"))
    sentinel = REAL / "salesforce" / "sentinel_SalesforceServiceCloud_CL.json"
    summary = ingest(store, [*paths, sentinel])
    expected = set()
    for path in paths:
        for raw in ndjson_records(path)[0]:
            expected.add((raw, "elf:" + json.loads(raw)["EVENT_TYPE"]))
    headers = 0
    for record in json.loads(sentinel.read_text()):
        if record["event_type"] == "EVENT_TYPE":
            headers += 1
        else:
            expected.add((canonical(record), "elf:" + record["event_type"]))
    assert set(store.execute("SELECT raw::VARCHAR, source_type FROM events").rows) == expected
    assert summary.total("skipped_headers") == headers == 1


### Canonical text: what DuckDB writes and what Python writes ###

# Values whose canonical text DuckDB writes otherwise than Python, or not at all.
AWKWARD = [1e20, 1e-7, 0.00001, 1.5e300, 5e-324, -0.0, 0.1, 123456789.123456789, 1e16,
           12345678901234567890123, -9223372036854775809, "\x1f\x0b\x00 ctl", "é😀\u2028\u2029",
           "a\\u001f b", 'quote " and \\ backslash', "", None, True, [], {}, {"b": 1, "a": [1.0]},
           float("nan"), float("inf"), "1e5", ":1e5,"]  # fmt: skip

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.sampled_from(AWKWARD),
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
BAD_LINES = [b"{bad", b"[1, 2]", b'"text"', b'{"a": 1} {"b": 2}', b"\xff\xfe{}", b'{"a": nan}',
             b'{"a": "\\ud800"}', b"   ", b'{"a": 1}}']  # fmt: skip


def okta(i: int, value: object) -> dict:
    return {"uuid": f"u-{i}", "published": f"2025-06-10T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
            "eventType": "user.session.start", "actor": {"alternateId": f"user{i}@x.example"},
            "debugContext": {"debugData": {"value": value}}}  # fmt: skip


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.one_of(values, st.sampled_from(BAD_LINES)), min_size=1, max_size=40),
    st.sampled_from([64, 1 << 20]),
)
def test_every_line_is_stored_or_quarantined_as_python_reads_it(
    tmp_path_factory: pytest.TempPathFactory, lines: list, chunk: int
):
    """NDJSON with any values, good and bad lines mixed, read in chunks of a few lines or
    whole: each good record stored with Python's canonical text, each bad line quarantined
    at its line. (The first line is a record: a file that starts broken may be a broken
    pretty-printed document, and is read as one.)"""
    folder = tmp_path_factory.mktemp("lines")
    path = folder / "okta.ndjson"
    path.write_bytes(b"\n".join(
        ln if isinstance(ln, bytes) else json.dumps(okta(i, ln), ensure_ascii=False).encode()
        for i, ln in enumerate(["first", *lines])
    ))  # fmt: skip
    expected, bad = ndjson_records(path)
    original = jsonstage.CHUNK_BYTES
    jsonstage.CHUNK_BYTES = chunk
    try:
        with Store(folder / "s.duckdb") as store:
            [f] = ingest(store, [path], fmt="okta").files
            assert stored(store) == expected
            lines_out = set(quarantined_lines(store))
    finally:
        jsonstage.CHUNK_BYTES = original
    assert lines_out - {None} == set(bad)  # None: a file of blank lines is an empty file
    assert f.records == f.inserted + f.duplicates + f.quarantined


@pytest.mark.parametrize("value", AWKWARD, ids=repr)
def test_awkward_values_keep_python_s_canonical_text(value: object, tmp_path: Path):
    records = [okta(i, value) for i in range(3)]
    (tmp_path / "okta.ndjson").write_text("\n".join(json.dumps(r) for r in records))
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [tmp_path / "okta.ndjson"])
        got = {r[0] for r in store.execute("SELECT event_id FROM events").rows}
    want = {event_id("okta:", "user.session.start", json.loads(json.dumps(r))) for r in records}
    assert got == want


### Streaming ###


def test_a_file_read_in_many_chunks_is_stored_as_read_whole(tmp_path: Path):
    """Chunk boundaries fall between good lines, bad lines and blank lines alike: the store
    (events, their lines, the quarantine and its ids) is the same as from one chunk."""
    lines = [json.dumps(okta(i, i / 7)) for i in range(60)]
    for at, bad in ((5, "{bad"), (6, ""), (17, "[1]"), (18, json.dumps(okta(99, 1e20))),
                    (40, "  "), (41, '{"x": 1} {"y": 2}')):  # fmt: skip
        lines.insert(at, bad)
    path = tmp_path / "okta.ndjson.gz"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))

    def store_of(chunk: int) -> dict[str, list]:
        original, jsonstage.CHUNK_BYTES = jsonstage.CHUNK_BYTES, chunk
        try:
            with Store(tmp_path / f"{chunk}.duckdb") as store:
                ingest(store, [path])
                return {
                    t: sorted(map(str, store.execute(f"SELECT * EXCLUDE (file_id) FROM {t}").rows))
                    for t in ("events_base", "quarantine")
                }
        finally:
            jsonstage.CHUNK_BYTES = original

    whole = store_of(1 << 20)
    assert len(whole["events_base"]) == 61 and len(whole["quarantine"]) == 4
    assert store_of(100) == whole


def test_an_array_with_a_broken_element_keeps_the_elements_after_it(store: Store, tmp_path):
    """Written one element per line, an array is read line by line: a broken element costs
    itself (the whole-document reader stopped at it: the rest was lost)."""
    records = [okta(i, i) for i in range(10)]
    lines = [json.dumps(r) for r in records]
    lines[4] = lines[4][:30]
    path = tmp_path / "okta.json"
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n")
    [f] = ingest(store, [path]).files
    kept = {canonical(r): n for n, r in enumerate(records, start=2) if n != 6}
    assert stored(store) == kept
    assert quarantined_lines(store) == [6]
    assert (f.records, f.inserted, f.quarantined) == (10, 9, 1)


def test_an_array_cut_after_a_comma_is_reported_unclosed(store: Store, tmp_path: Path):
    lines = [json.dumps(okta(i, i)) for i in range(5)]
    path = tmp_path / "okta.json"
    path.write_text("[\n" + ",\n".join(lines) + ",\n")
    [f] = ingest(store, [path]).files
    assert f.inserted == 5 and f.reasons == {"invalid_json": 1}
    detail = store.scalar("SELECT detail FROM quarantine")
    assert "not closed" in detail


def test_a_corrupt_gzip_member_takes_back_what_was_stored_from_it(tmp_path: Path):
    """NDJSON in two gzip members, the second corrupt (found only at its end, once its lines
    are stored): its lines are taken back — the first member's are the events, the damage one
    truncated_input record — whatever the chunk size. (The member starts past the head read
    for the file's shape, and the format is named: detection reads a file this small whole,
    and refuses the damage.)"""
    first = "\n".join(json.dumps(okta(i, i)) for i in range(40)) + "\n"
    noise = random.Random(1)  # lines that compress badly: the member spans several reads
    second = gzip.compress(
        (
            "\n".join(json.dumps(okta(i, noise.randbytes(4096).hex())) for i in range(40, 80))
            + "\n"
        ).encode()
    )
    # its checksum wrong: the member's lines are all read before the damage shows
    broken = second[:-8] + bytes(b ^ 0xFF for b in second[-8:-4]) + second[-4:]
    padding = json.dumps(okta(999, "x" * (1 << 21)))  # the member starts past the head
    path = tmp_path / "okta.ndjson.gz"
    path.write_bytes(gzip.compress((padding + "\n" + first).encode()) + broken)
    for chunk in (1 << 20, 300):
        original, jsonstage.CHUNK_BYTES = jsonstage.CHUNK_BYTES, chunk
        try:
            with Store(tmp_path / f"{chunk}.duckdb") as store:
                ingest(store, [path], fmt="okta")
                users = {r[0] for r in store.execute("SELECT user_name FROM events").rows}
                reasons = store.execute("SELECT reason FROM quarantine").rows
        finally:
            jsonstage.CHUNK_BYTES = original
        assert users == {f"user{i}@x.example" for i in (*range(40), 999)}
        assert reasons == [("truncated_input",)]
