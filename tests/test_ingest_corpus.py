"""Issue 14: no good record lost, no traceback. Each case of the generated bad-input corpus
(tests/corpus.py) keeps every good record, quarantines the bad ones with a reason, and exits as
documented (0, or 1 with --strict); random corrupt regions never cost a good row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.ingest import ingest
from crmwatch.store import Store
from tests.corpus import Case, build, csv_bytes, good_rows, request_id, with_region

runner = CliRunner()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Case]:
    return {c.name: c for c in build(tmp_path_factory.mktemp("corpus"))}


CASES = ["random_512_bytes", "random_64_kb", "gzip_cut_in_half", "folder_with_bad_files",
         "duplicated_header_name", "ndjson_with_a_50_mb_value", "ndjson_nested_100000_deep"]  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_every_good_record_is_kept_and_every_bad_one_said(corpus, name, tmp_path: Path):
    case = corpus[name]
    db = str(tmp_path / "s.duckdb")
    res = runner.invoke(app, ["ingest", *map(str, case.paths), "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    summary = json.loads(res.stdout)
    assert not [f for f in summary["files"] if f["error"]]
    assert sum(f["inserted"] for f in summary["files"]) == case.good
    with Store(tmp_path / "s.duckdb") as store:
        if case.good_ids:
            stored = {r[0] for r in store.execute(
                "SELECT json_extract_string(raw, '$.REQUEST_ID') FROM events").rows}  # fmt: skip
            assert stored == case.good_ids
        quarantined = store.execute("SELECT path, line, byte_offset, reason FROM quarantine").rows
    damaged = name not in ("duplicated_header_name", "ndjson_with_a_50_mb_value")
    assert bool(quarantined) == damaged
    assert all(r[3] and (r[1] is not None or r[2] is not None) for r in quarantined)
    strict = runner.invoke(app, ["ingest", *map(str, case.paths), "--db", db, "--strict",
                                 "--rescan"])  # fmt: skip
    assert strict.exit_code == (1 if damaged else 0), strict.output


def test_a_duplicated_header_name_is_renamed_and_said(corpus, tmp_path: Path):
    res = runner.invoke(app, ["ingest", str(corpus["duplicated_header_name"].paths[0]),
                              "--db", str(tmp_path / "s.duckdb"), "--json"])  # fmt: skip
    [f] = json.loads(res.stdout)["files"]
    assert f["notes"] == ["repeated column names in the header renamed: USER_ID → USER_ID_2"]


# Bytes a CSV reader trips on, mixed with arbitrary ones.
_NASTY = st.lists(st.one_of(st.sampled_from([b'"', b",", b"\r", b"\n", b"\x00", b"\xff", b'""',
                                             b'"EVENT_TYPE"', b"\xe2\x82"]),
                            st.binary(min_size=1, max_size=40)),
                  min_size=1, max_size=30).map(b"".join)  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(regions=st.lists(st.tuples(st.integers(2, 301), _NASTY), min_size=1, max_size=4))
def test_random_corrupt_regions_cost_no_good_row(tmp_path_factory, regions):
    """Regions of random bytes inserted as lines of their own anywhere in a good file: every
    good row is still stored, whatever the bytes (quotes, NULs, CRs, invalid UTF-8)."""
    folder = tmp_path_factory.mktemp("prop")
    data = csv_bytes(good_rows(300, 5))
    for line, region in sorted(regions, reverse=True):  # from the end: line numbers hold
        data = with_region(data, line, region)
    (folder / "login.csv").write_bytes(data)
    with Store(folder / "s.duckdb") as store:
        [f] = ingest(store, [folder / "login.csv"]).files
        assert f.error is None and f.records == f.inserted + f.duplicates + f.quarantined
        stored = {r[0] for r in store.execute(
            "SELECT json_extract_string(raw, '$.REQUEST_ID') FROM events").rows}  # fmt: skip
    assert {request_id(5, i) for i in range(300)} <= stored
