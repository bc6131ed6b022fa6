"""The same records in the other shapes files arrive in (issue 19): several gzip members,
several JSON documents one after another, a byte-order mark, UTF-16, CR line ends, columns or
keys in another order. Each is read whole and gives the very events the plain file gives;
what follows the data and is not data is reported."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import pytest

from crmwatch.ingest import ingest
from crmwatch.sources.base import LONE_SURROGATE
from crmwatch.stats import store_stats
from crmwatch.store import Store
from tests.breach import okta_event
from tests.conftest import REAL
from tests.corpus import HEADER, csv_bytes, good_rows

OKTA = REAL / "okta" / "elastic_test-okta-system-events.log"  # NDJSON, 20 lines
ELF = REAL / "salesforce" / "beats_login_eventlogfile.csv"


def _events(path: Path, tmp_path: Path) -> tuple[set[str], object]:
    with Store(tmp_path / f"{path.name}.duckdb") as store:
        summary = ingest(store, [path])
        ids = {r[0] for r in store.execute("SELECT event_id FROM events").rows}
    return ids, summary


def _okta_lines() -> list[bytes]:
    return [line for line in OKTA.read_bytes().splitlines() if line.strip()]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _json_shapes(tmp_path: Path) -> dict[str, Path]:
    lines = _okta_lines()
    objects = [json.loads(x) for x in lines]
    ndjson = b"\n".join(lines) + b"\n"
    half = len(lines) // 2
    text = ndjson.decode("utf-8")
    return {
        "gzip members": _write(tmp_path, "members.ndjson.gz",
                               gzip.compress(b"\n".join(lines[:half]) + b"\n")
                               + gzip.compress(b"\n".join(lines[half:]) + b"\n")),
        "two arrays": _write(tmp_path, "arrays.json", (json.dumps(objects[:half])
                                                       + json.dumps(objects[half:])).encode()),
        "pretty stream": _write(tmp_path, "stream.json", "\n".join(
            json.dumps(o, indent=2) for o in objects).encode()),
        "UTF-8 BOM": _write(tmp_path, "bom.ndjson", b"\xef\xbb\xbf" + ndjson),
        "UTF-8 BOM array": _write(tmp_path, "bom.json",
                                  b"\xef\xbb\xbf" + json.dumps(objects).encode()),
        "UTF-16 LE": _write(tmp_path, "le.ndjson", text.encode("utf-16")),  # BOM, little-endian
        "UTF-16 BE": _write(tmp_path, "be.ndjson", b"\xfe\xff" + text.encode("utf-16-be")),
        "keys reordered": _write(tmp_path, "keys.ndjson", b"\n".join(
            json.dumps(dict(reversed(list(o.items())))).encode() for o in objects)),
    }  # fmt: skip


def test_json_in_every_shape_gives_the_same_events(tmp_path: Path):
    plain, _ = _events(OKTA, tmp_path)
    assert len(plain) > 1
    for shape, path in _json_shapes(tmp_path).items():
        ids, summary = _events(path, tmp_path)
        assert ids == plain, shape
        assert summary.total("quarantined") == 0 and not summary.errors, shape


def test_what_follows_a_json_array_and_is_not_json_is_reported(tmp_path: Path):
    objects = [json.loads(x) for x in _okta_lines()]
    path = _write(tmp_path, "tail.json", json.dumps(objects, indent=1).encode() + b"\n<html>")
    ids, summary = _events(path, tmp_path)
    assert ids == _events(OKTA, tmp_path)[0]
    [f] = summary.files
    assert f.reasons == {"invalid_json": 1}
    with Store(tmp_path / "tail.json.duckdb") as store:
        line, detail = store.execute("SELECT line, detail FROM quarantine").rows[0]
    assert line == path.read_text().count("\n") + 1 and "not read" in detail


def test_bytes_after_the_gzip_data_are_reported(tmp_path: Path):
    path = _write(tmp_path, "x.ndjson.gz", gzip.compress(OKTA.read_bytes()) + b"trailer")
    ids, summary = _events(path, tmp_path)
    assert ids == _events(OKTA, tmp_path)[0]
    assert summary.files[0].reasons == {"truncated_input": 1}


def _csv_rows() -> list[list[str]]:
    return list(csv.reader(io.StringIO(ELF.read_text(encoding="utf-8"), newline="")))


def _csv(rows: list[list[str]], line_end: str = "\r\n") -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=line_end).writerows(rows)
    return out.getvalue()


@pytest.mark.parametrize("shape", ["UTF-8 BOM", "UTF-16 LE", "UTF-16 BE", "CR line ends",
                                   "columns reordered", "gzip members"])  # fmt: skip
def test_eventlogfile_csv_in_every_shape_gives_the_same_events(tmp_path: Path, shape: str):
    plain, _ = _events(ELF, tmp_path)
    assert len(plain) == 1
    rows = _csv_rows()
    text = _csv(rows)
    data = {
        "UTF-8 BOM": b"\xef\xbb\xbf" + text.encode(),
        "UTF-16 LE": text.encode("utf-16"),
        "UTF-16 BE": b"\xfe\xff" + text.encode("utf-16-be"),
        "CR line ends": _csv(rows, "\r").encode(),
        "columns reordered": _csv([list(reversed(r)) for r in rows]).encode(),
        "gzip members": gzip.compress(_csv(rows[:1]).encode()) + gzip.compress(
            _csv(rows[1:]).encode()),
    }[shape]  # fmt: skip
    ids, summary = _events(_write(tmp_path, "login.csv", data), tmp_path)
    assert summary.files[0].format == "elf-csv", shape
    assert ids == plain and summary.total("quarantined") == 0, shape


def test_reordered_columns_are_duplicates_of_the_stored_rows(store: Store, tmp_path: Path):
    """Issue 19: the same rows with reordered columns added 17,230 duplicate events."""
    ingest(store, [ELF])
    rows = _csv_rows()
    again = _write(tmp_path, "again.csv", _csv([r[::-1] for r in rows]).encode())
    [f] = ingest(store, [again]).files
    assert (f.inserted, f.duplicates) == (0, 1)
    raw = json.loads(store.scalar("SELECT raw FROM events"))
    assert raw["USER_NAME"] == rows[1][rows[0].index("USER_NAME")]  # the raw row reads back


def test_what_follows_a_one_line_export_on_its_line_costs_none_of_it(tmp_path: Path):
    """Helper audit: `{"records": [...]} xyz` on one line lost all its records as
    unknown_format."""
    objects = [json.loads(x) for x in _okta_lines()]
    body = {"totalSize": len(objects), "done": True, "records": objects}
    for tail in (" xyz", "}", "\x00\x00"):
        path = _write(tmp_path, "one.json", (json.dumps(body) + tail).encode())
        ids, summary = _events(path, tmp_path)
        assert ids == _events(OKTA, tmp_path)[0], tail
        assert summary.files[0].reasons == {"invalid_json": 1}, tail


def test_file_names_with_glob_characters_name_one_file(tmp_path: Path):
    """Helper audit: DuckDB expanded `API*.csv`, reading its neighbour too (a KeyError), and
    `Login?.csv` read `LoginX.csv` twice."""
    logs = tmp_path / "logs"
    logs.mkdir()
    rows = _csv_rows()
    (logs / "API*.csv").write_bytes(_csv(rows).encode())
    other = [rows[0], [v.replace(rows[1][2], "other-request") for v in rows[1]]]
    (logs / "API_login.csv").write_bytes(_csv(other).encode())
    (logs / "Login?.csv").write_bytes(_csv(rows).encode())
    with Store(tmp_path / "s.duckdb") as store:
        summary = ingest(store, [logs])
        assert not summary.errors
        counts = {f.path.name: (f.records, f.inserted) for f in summary.files}
        assert counts.keys() == {"API*.csv", "API_login.csv", "Login?.csv"}
        assert all(records == 1 for records, _ in counts.values())
        # API*.csv and Login?.csv hold the same row: one is new, the other its duplicate
        assert counts["API_login.csv"][1] == 1 and summary.total("inserted") == 2


def test_records_sharing_a_line_are_quarantined_one_by_one(tmp_path: Path):
    """Helper audit: five records without a timestamp on one line were five in the summary
    and one row of the quarantine table."""
    objects = [
        dict(json.loads(x), published=f"not a time {i}") for i, x in enumerate(_okta_lines()[:5])
    ]
    path = _write(tmp_path, "untimed.json", json.dumps(objects).encode())
    _, summary = _events(path, tmp_path)
    with Store(tmp_path / "untimed.json.duckdb") as store:
        stored = store.scalar("SELECT count(*) FROM quarantine")
    assert summary.total("quarantined") == stored == 5


def test_a_repeated_native_id_with_other_content_is_kept_and_counted(tmp_path: Path):
    """Issue 13: two Okta failed sign-ins, and 11 of 20 real-time event payloads, were dropped
    as duplicates because a re-exported file repeated their ids with other content."""
    first = json.loads(_okta_lines()[0])
    other = dict(first, outcome={"result": "FAILURE", "reason": "INVALID_CREDENTIALS"})
    same = json.loads(json.dumps(first))
    path = _write(tmp_path, "reexport.ndjson",
                  b"\n".join(json.dumps(o).encode() for o in (first, other, same)))  # fmt: skip
    _, summary = _events(path, tmp_path)
    [f] = summary.files
    assert (f.records, f.inserted, f.duplicates, f.id_collisions) == (3, 2, 1, 1)
    with Store(tmp_path / "reexport.ndjson.duckdb") as store:
        assert store.execute("SELECT DISTINCT native_id FROM events").rows == [(first["uuid"],)]
        assert store_stats(store)["id_collisions"] == 1


def test_streamed_real_time_events_are_read_from_their_envelope(tmp_path: Path):
    """Issue 13: a streaming client's messages ({"channel", "data": {"payload"}}) were not
    read. The envelope per the Streaming API (CometD) as clients save it."""
    payload = {"EventDate": "2025-06-10T08:50:00.000Z", "EventIdentifier": "e-1",
               "Username": "anna@x.example", "UserId": "005000000000001AAA",
               "SourceIp": "185.220.101.7", "Status": "Success", "LoginKey": "LK-1",
               "LoginUrl": "login.salesforce.com"}  # fmt: skip
    message = {
        "channel": "/event/LoginEventStream",
        "data": {"schema": "rWwE1", "payload": payload, "event": {"replayId": 1234}},
    }
    path = _write(tmp_path, "stream.ndjson", json.dumps(message).encode())
    _, summary = _events(path, tmp_path)
    assert summary.files[0].format == "sf-object"
    with Store(tmp_path / "stream.ndjson.duckdb") as store:
        row = store.execute("SELECT source_type, category, outcome, user_name, src_ip, "
                            "login_key, native_id FROM events").rows  # fmt: skip
    assert row == [("api:LoginEventStream", "authentication", "success", "anna@x.example",
                    "185.220.101.7", "LK-1", "e-1")]  # fmt: skip


def _lower_keys(value):
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


def test_okta_events_with_lower_cased_keys_read_like_the_api_s(tmp_path: Path):
    """Issue 13: Okta exports as SIEMs store them (lower-case keys) were unknown_format."""
    events = [json.loads(x) for x in _okta_lines()]
    path = _write(tmp_path, "siem.ndjson",
                  b"\n".join(json.dumps(_lower_keys(e)).encode() for e in events))  # fmt: skip
    _, summary = _events(path, tmp_path)
    assert summary.files[0].format == "okta" and summary.total("quarantined") == 0
    columns = "source_type, ts, category, outcome, user_name, src_ip, session_key, user_agent"
    with Store(tmp_path / "siem.ndjson.duckdb") as store:
        lowered = sorted(store.execute(f"SELECT {columns} FROM events").rows, key=str)
    with Store(tmp_path / "api.duckdb") as store:
        ingest(store, [OKTA])
        api = sorted(store.execute(f"SELECT {columns} FROM events").rows, key=str)
    assert lowered == api


def test_the_setup_audit_trail_download_is_read_with_its_local_times(tmp_path: Path):
    """Issue 13: the Setup page's "Download setup audit trail" CSV, with times like
    9/10/2026, 4:21:14 AM PDT: the zone's fixed offset, or quarantined with the reason."""
    path = _write(tmp_path, "SetupAuditTrail.csv", (
        b'"Date","User","Source Namespace Prefix","Action","Section","Delegate User"\n'
        b'"9/10/2026, 4:21:14 AM PDT","admin@x.example","","Changed password for user '
        b'anna@x.example","Manage Users",""\n'
        b'"9/10/2026, 4:25:00 AM IST","admin@x.example","","Reset a password","Manage Users",""\n'
        b'"12/1/2026, 1:05:00 PM PST","admin@x.example","","Installed My Ticket Portal",'
        b'"Connected Apps",""\n'))  # fmt: skip
    _, summary = _events(path, tmp_path)
    [f] = summary.files
    assert (f.format, f.inserted, f.reasons) == ("sf-setup-csv", 2, {"bad_timestamp": 1})
    with Store(tmp_path / "SetupAuditTrail.csv.duckdb") as store:
        rows = store.execute("SELECT strftime(ts, '%Y-%m-%d %H:%M:%S'), category, user_name "
                             "FROM events ORDER BY ts").rows  # fmt: skip
        detail = store.scalar("SELECT detail FROM quarantine")
    assert rows == [("2026-09-10 11:21:14", "config_change", "admin@x.example"),
                    ("2026-12-01 21:05:00", "oauth_grant", "admin@x.example")]  # fmt: skip
    assert "IST" in detail and "no single offset" in detail


### A bad UTF-16 unit costs its line only ###


def _utf16_with_lone_surrogate(text: str, line: int, order: str) -> bytes:
    """``text`` as UTF-16 with its byte-order mark and a lone high surrogate (U+D800) put
    inside line ``line`` (1-based), five characters in (``iconv -t utf-16`` of the text and
    one damaged code unit)."""
    at = sum(len(x) + 1 for x in text.split("\n")[: line - 1]) + 5
    codec, bom, unit = {"LE": ("utf-16-le", b"\xff\xfe", b"\x00\xd8"),
                        "BE": ("utf-16-be", b"\xfe\xff", b"\xd8\x00")}[order]  # fmt: skip
    return bom + text[:at].encode(codec) + unit + text[at:].encode(codec)


def _elf_text(n: int) -> tuple[str, list[str]]:
    rows = good_rows(n)
    rid = HEADER.index("REQUEST_ID")
    return csv_bytes(rows).decode("utf-8"), [r[rid] for r in rows]


def _okta_text(n: int) -> tuple[str, list[str]]:
    uuids = [f"u16-{i:06d}" for i in range(n)]
    lines = [json.dumps(okta_event(u, f"2024-03-01T10:{i // 60 % 60:02d}:{i % 60:02d}.000Z",
                                   "user.session.start", "anna@example.com", "198.51.100.7"))
             for i, u in enumerate(uuids)]  # fmt: skip
    return "\n".join(lines) + "\n", uuids


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
@pytest.mark.parametrize("order", ["LE", "BE"])
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_lone_surrogate_in_utf16_quarantines_its_line_and_keeps_the_rest(
    tmp_path: Path, fmt: str, order: str, gz: bool
):
    """The user's report: one invalid unit a third of the way into a UTF-16 EventLogFile of
    3,873 rows kept only the 1,288 rows before it ("not valid UTF-16 ...; the rest of the file
    is not read"). Now only the damaged line is quarantined, as a line that is not UTF-8 is."""
    n = 3872  # rows after the CSV header: 3,873 lines
    text, ids = _elf_text(n) if fmt == "csv" else _okta_text(n)
    bad_line = 1291  # a third of the way; for CSV the header is line 1, so row 1290
    bad_id = ids[bad_line - 2] if fmt == "csv" else ids[bad_line - 1]
    data = _utf16_with_lone_surrogate(text, bad_line, order)
    path = _write(tmp_path, f"u16.{fmt}" + (".gz" if gz else ""),
                  gzip.compress(data) if gz else data)  # fmt: skip
    # a CSV row's raw holds its values (by column name), an Okta event's its JSON
    key = r"regexp_extract(raw::VARCHAR, 'REQ\d+-\d+')" if fmt == "csv" else "raw->>'uuid'"
    with Store(tmp_path / "s.duckdb") as store:
        [f] = ingest(store, [path]).files
        assert (f.error, f.format) == (None, "elf-csv" if fmt == "csv" else "okta")
        assert (f.records, f.inserted, f.duplicates, f.quarantined) == (n, n - 1, 0, 1)
        assert f.records == f.inserted + f.duplicates + f.quarantined
        stored = store.execute(f"SELECT {key} FROM events_base").rows
        assert sorted(r[0] for r in stored) == sorted(set(ids) - {bad_id})
        quarantine = "SELECT line, reason, detail, records FROM quarantine ORDER BY ALL"
        [(line, reason, detail, records)] = store.execute(quarantine).rows
        assert (line, reason, records) == (bad_line, "invalid_utf8", 1)
        # five characters into the line; no customer data in it
        assert detail == (f"byte 5: {LONE_SURROGATE}" if fmt == "csv" else LONE_SURROGATE)
        before = store.execute("SELECT * FROM quarantine ORDER BY ALL").rows
        [again] = ingest(store, [path], rescan=True).files
        assert (again.records, again.inserted, again.duplicates, again.quarantined) == (
            n, 0, n - 1, 1)  # fmt: skip
        assert store.execute("SELECT * FROM quarantine ORDER BY ALL").rows == before
        assert store.scalar("SELECT count(*) FROM events_base") == n - 1


@pytest.mark.parametrize("order", ["LE", "BE"])
def test_a_lone_surrogate_in_a_utf16_header_is_read_as_bad_bytes_in_a_utf8_one(
    tmp_path: Path, order: str
):
    """A header holding a lone surrogate is not left to read as a good header with the unit
    dropped (a head once left it out): the file is what the same header with its UTF-8 form,
    bytes that are not UTF-8, gives."""
    text, _ = _elf_text(20)
    utf16 = _write(tmp_path, "u16.csv", _utf16_with_lone_surrogate(text, 1, order))
    utf8 = _write(tmp_path, "u8.csv", text[:5].encode() + b"\xed\xa0\x80" + text[5:].encode())
    got = {}
    for path in (utf16, utf8):
        with Store(tmp_path / f"{path.stem}.duckdb") as store:
            [f] = ingest(store, [path]).files
            got[path.stem] = (f.format, f.records, f.inserted, dict(f.reasons), f.error)
    assert got["u16"] == got["u8"] == (None, 21, 0, {"unknown_format": 21}, None)
