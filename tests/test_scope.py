"""Scope accuracy: hand-computed record sets for queries replayed on tests/fixtures/snapshot,
and the whole incident of tests/breach.py scoped end to end.

Contacts are named by number (003000000000007AAA is 7). Contact 10 was created on 11 June 2025,
after every query here ran, so no replay may return it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.incidents import build_incidents
from crmwatch.ingest import ingest
from crmwatch.scope.evidence import twins
from crmwatch.scope.exposure import replay_query, scope_incident
from crmwatch.scope.snapshot import Snapshot, object_name
from crmwatch.store import Store
from tests.breach import ANNA, SNAPSHOT, write_breach

AT = dt.datetime(2025, 6, 10, 9, 10)
runner = CliRunner()


def c(*ns: int) -> set[str]:
    return {f"003000000000{n:03d}AAA" for n in ns}


@pytest.fixture
def snap(store: Store) -> Snapshot:
    return Snapshot(store, [SNAPSHOT])


def replay(store, snap, where: str, select: str = "Id", obj: str = "Contact", **kw):
    return replay_query(store, snap, f"SELECT {select} FROM {obj} {where}", AT, **kw)


@pytest.mark.parametrize(("where", "expected"), [
    ("", c(1, 2, 3, 4, 5, 6, 7, 8, 9)),  # 10 was created after the query
    ("WHERE MailingCountry = 'KR'", c(1, 2)),  # 'kr' matches: text = is case-insensitive
    ("WHERE MailingCountry IN ('KR', 'JP')", c(1, 2, 6)),
    ("WHERE MailingCountry NOT IN ('KR', 'JP')", c(3, 4, 5, 7, 8, 9)),
    ("WHERE MailingCountry != 'KR'", c(3, 4, 5, 6, 7, 8, 9)),
    ("WHERE NOT (MailingCountry = 'KR' OR MailingCountry = 'US')", c(3, 4, 5, 6, 8)),
    ("WHERE FirstName LIKE 'min%'", c(1)),
    ("WHERE FirstName LIKE 'J_-woo'", c(2)),
    ("WHERE Total_Purchases__c > 10000", c(1, 4, 5, 6)),
    ("WHERE Total_Purchases__c = null", c(9)),
    ("WHERE Total_Purchases__c != null AND MailingState = 'CA'", c(7)),
    ("WHERE Interests__c INCLUDES ('Watches;Jewellery')", c(1, 5)),
    ("WHERE Interests__c INCLUDES ('Leather', 'Watches;Jewellery')", c(1, 3, 5, 6)),
    ("WHERE Interests__c EXCLUDES ('Watches')", c(2, 3, 6, 8, 9)),
    ("WHERE CreatedDate = LAST_N_DAYS:400", c(6, 7, 8, 9)),  # from 2024-05-06 00:00 UTC
    ("WHERE CreatedDate < 2024-02-01T00:00:00Z", c(1, 4)),
    ("WHERE CreatedDate < 2024-02-01T09:00:00+09:00", c(1, 4)),
    ("WHERE CreatedDate = THIS_YEAR", set()),
    ("WHERE CreatedDate = LAST_YEAR AND MailingCountry = 'US'", c(7, 9)),  # 8: 'United States'
    ("WHERE AccountId = '001000000000002'", c(4, 5)),  # 15-character id
    ("WHERE Account.BillingCountry = 'FR'", c(4, 5)),
    ("WHERE Id IN (SELECT ContactId FROM Case WHERE Status = 'Open')", c(7)),
    ("WHERE Id NOT IN (SELECT ContactId FROM Case) AND MailingCountry = 'JP'", set()),
    ("ORDER BY Total_Purchases__c DESC NULLS LAST LIMIT 3", c(6, 4, 5)),
    ("ORDER BY Total_Purchases__c DESC NULLS LAST LIMIT 2 OFFSET 1", c(4, 5)),
    ("ORDER BY LastName LIMIT 2", c(5, 9)),  # Bernard, Brown
    ("ORDER BY Total_Purchases__c LIMIT 2", c(9, 8)),  # nulls first: Brown (null), then 500
    ("WHERE MailingCountry = 'KR' LIMIT 5", c(1, 2)),  # LIMIT above the matches: all of them
])  # fmt: skip
def test_replayed_sets(store, snap, where, expected):
    es, ids = replay(store, snap, where)
    assert es.kind == "replayed", es.note
    assert ids == expected
    assert es.records == len(expected)


@pytest.mark.parametrize(("where", "bound", "why"), [
    # nulls sort first by default, so the cut falls inside the 15000 tie (contacts 4 and 5)
    ("ORDER BY Total_Purchases__c DESC LIMIT 3", 3, "ties"),
    ("ORDER BY Total_Purchases__c DESC NULLS LAST LIMIT 2", 2, "ties"),
    ("WHERE MailingCountry = 'KR' LIMIT 1", 1, "without ORDER BY"),
    ("LIMIT 5 OFFSET 2", 5, "without ORDER BY"),
])  # fmt: skip
def test_undefined_subsets_are_bounded_not_guessed(store, snap, where, bound, why):
    es, ids = replay(store, snap, where)
    assert (es.kind, es.upper_bound, ids) == ("bounded", bound, set())
    assert why in es.note


@pytest.mark.parametrize(("where", "clause"), [
    ("WHERE CALENDAR_YEAR(CreatedDate) = 2024", "CALENDAR_YEAR"),
    ("WHERE Region__c = 'EU'", "Region__c is not in the Contact snapshot"),
    ("WHERE Email = :email", "bind variable"),
    ("WHERE CreatedDate = THIS_FISCAL_YEAR", "fiscal year"),
    ("WHERE Owner.Name = 'x'", "needs the User snapshot"),
    ("USING SCOPE team", "USING SCOPE"),
    ("WITH DATA CATEGORY Geography__c AT asia__c", "WITH"),
])  # fmt: skip
def test_unsupported_clauses_fall_back_to_bounded_and_name_the_clause(store, snap, where, clause):
    es, ids = replay(store, snap, where, rows=7)
    assert (es.kind, ids, es.upper_bound) == ("bounded", set(), 7)
    assert clause in es.note


def test_compound_relationship_and_fields_macro(store, snap):
    es, _ = replay(store, snap, "WHERE MailingCountry = 'FR'", "Name, MailingAddress, Account.Name")
    assert es.fields == ["FirstName", "LastName", "MailingStreet", "MailingCity", "MailingState",
                         "MailingPostalCode", "MailingCountry", "Account.Name"]  # fmt: skip
    es, _ = replay(store, snap, "LIMIT 200", "FIELDS(CUSTOM)")
    assert es.fields == ["Customer_Number__c", "Total_Purchases__c", "Interests__c"]


def test_counts_aggregates_and_row_mismatches(store, snap):
    assert replay(store, snap, "", "COUNT()")[0].kind == "count"
    assert replay(store, snap, "GROUP BY MailingCountry", "MailingCountry, COUNT(Id)")[0].kind == (
        "aggregate"
    )
    es, ids = replay(store, snap, "WHERE MailingCountry = 'KR'", rows=1)
    assert (es.kind, ids) == ("candidate", c(1, 2))
    assert "the log says 1" in es.note


def test_object_names_come_from_file_names():
    assert [object_name(Path(p)) for p in ("Contact.csv", "contact-2025-06-01.parquet",
            "Case.csv.gz", "Lead_20250601.csv")] == ["Contact", "Contact", "Case", "Lead"]  # fmt: skip


### the whole incident ###


@pytest.fixture
def scoped(tmp_path: Path) -> tuple[Store, str]:
    store = Store(tmp_path / "s.duckdb")
    ingest(store, [write_breach(tmp_path / "logs")])
    detect(store, load_rules(None))
    incident = next(i for i in build_incidents(store) if i.principals == [ANNA])
    yield store, incident.id
    store.close()


def test_incident_scope_counts_each_customer_once_with_the_union_of_fields(scoped):
    store, iid = scoped
    r = scope_incident(store, iid, [SNAPSHOT])
    assert r.affected_customers == 8  # contacts 1-2 (ids logged), 4-5-6, 6-7-8-9; cases → 6, 7
    assert r.affected_by_confidence == {"exact": 2, "replayed": 6, "candidate": 0}
    assert r.by_country == {"US": 3, "KR": 2, "FR": 2, "JP": 1}
    assert r.by_us_state == {"CA": 1, "NY": 1, "TX": 1}
    assert r.by_category == {"contact": 6, "phone": 3, "customer_number": 4, "identity": 2,
                             "postal_address": 2, "other": 2}  # fmt: skip
    assert r.records_by_object == {"Contact": 8, "Case": 2}
    six = store.execute(
        "SELECT list_sort(list_distinct(flatten(list(fields)))) FROM exposure_details "
        "WHERE incident_id = ? AND customer_id = ?",
        [iid, "003000000000006AAA"],
    ).rows[0][0]
    assert six == ["Customer_Number__c", "Description", "Email", "Id", "Phone", "Subject"]
    kinds = [(e.source_type, e.kind) for e in r.events]
    assert kinds == [("api:ApiEvent", "count"), ("api:ApiEvent", "exact"),
                     ("api:ApiEvent", "replayed"), ("api:ApiEvent", "replayed"),
                     ("api:BulkApiResultEventStore", "replayed")]  # fmt: skip
    # customer data stays in the snapshot: the store holds ids, field names, jurisdiction
    stored = json.dumps(store.execute("SELECT * FROM exposures").rows, default=str)
    assert "example.kr" not in stored and "Sejong" not in stored


@pytest.fixture
def scraper(tmp_path: Path) -> tuple[Path, str]:
    """The breach, and a scripted client paging through contacts one query at a time: 300
    queries with three field lists (more than 64 events that expose records)."""
    from tests.breach import api

    logs = write_breach(tmp_path / "logs")
    queries = [
        ("SELECT Id, Email FROM Contact WHERE Id = '{}'", 1),
        ("SELECT Id, Phone FROM Contact WHERE Account.BillingCountry = 'FR' AND Id != '{}'", 2),
        ("SELECT Id FROM Contact WHERE Id IN ('{}', '003000000000011AAA')", 2),
    ]
    calls = []
    for n in range(300):
        text, rows = queries[n % 3]
        ts = dt.datetime(2025, 6, 10, 9, 11) + dt.timedelta(seconds=n)
        calls.append(api(100 + n, f"{ts:%Y-%m-%dT%H:%M:%S}.000+0000",
                         text.format(f"003000000000{n % 13:03d}AAA"), rows))  # fmt: skip
    (logs / "Scraper.json").write_text(json.dumps({"totalSize": 300, "done": True,
                                                   "records": calls}))  # fmt: skip
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(store, [logs])
        detect(store, load_rules(None))
        incident = next(i for i in build_incidents(store) if i.principals == [ANNA])
    return db, incident.id


def test_a_scrapers_hundreds_of_queries_are_replayed_as_each_alone(scraper):
    """A scripted client paging through contacts one query at a time: 300 replays, run in
    batches (scope.exposure.PLAIN_BATCH), each event as replaying its query alone says —
    listed, candidate where the log's row count disagrees, bounded where nothing matched —
    and every record replayed is exposed."""
    db, iid = scraper
    with Store(db) as store:
        r = scope_incident(store, iid, [SNAPSHOT])
        by_id = {e.event_id: e for e in r.events}
        events = store.execute(
            "SELECT event_id, ts, query, rows FROM events WHERE native_id LIKE 'ApiEvent-0%' "
            "AND native_id >= 'ApiEvent-0100' ORDER BY native_id"
        ).rows
        assert len(events) == 300
        exposed: set[str] = set()
        kinds = set()
        for event_id, ts, query, rows in events:
            alone, ids = replay_query(store, Snapshot(store, [SNAPSHOT]), query, ts, rows)
            got = by_id[event_id]
            same = ("kind", "records", "upper_bound", "note")
            assert [getattr(got, a) for a in same] == [getattr(alone, a) for a in same], query
            kinds.add(got.kind)
            exposed |= ids
        assert kinds == {"replayed", "candidate"}
        stored = {x[0] for x in store.execute(
            "SELECT record_id FROM exposures WHERE incident_id = ?", [iid]).rows}  # fmt: skip
        assert exposed <= stored and c(4, 5, 11) & exposed == c(4, 5)
    # the CLI's table shows the first events and counts the rest by kind
    res = runner.invoke(app, ["scope", iid, "--customers", str(SNAPSHOT), "--db", str(db)])
    assert res.exit_code == 0, res.output
    more = len(r.events) - 50
    assert f"… {more:,} more events (" in res.output and "crmwatch scope --json" in res.output


def _scope_whole(store: Store, iid: str, snapshot: list[Path]) -> tuple:
    """Everything a scope gives and stores: the verdicts in order, the summary, the tables."""
    r = scope_incident(store, iid, snapshot)
    stored = [store.execute(f"SELECT * EXCLUDE (incident_id) FROM {t} WHERE incident_id = ? "
                            "ORDER BY ALL", [iid]).rows
              for t in ("scope_verdicts", "exposures", "exposure_events",
                        "exposure_fieldsets")]  # fmt: skip
    return [dataclasses.asdict(e) for e in r.events], r.to_dict(), stored


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_events_read_in_batches_are_scoped_as_all_at_once(scraper, monkeypatch, batch):
    """Issue 16: the events Python reads (queries, ids, field lists) come a batch at a time,
    so a scraper's million queries are never one list. Whatever the batch, the result is
    the one of reading them all at once: the breach's replays that one scan counts while
    bits may still be events, then flushed when the 65th exposing event makes them field
    lists; the snapshot loaded again when a later batch needs another column (Account's
    country, for a join), under the hits of the earlier ones."""
    import crmwatch.scope.exposure as exposure

    db, iid = scraper
    with Store(db) as store:
        whole = _scope_whole(store, iid, [SNAPSHOT])
        monkeypatch.setattr(exposure, "EVENTS_PER_BATCH", batch)
        assert _scope_whole(store, iid, [SNAPSHOT]) == whole
        # more than 64 exposing events: a record's bits are the three field lists
        masks = [m for (m,) in store.execute(
            "SELECT DISTINCT fieldset FROM exposures WHERE incident_id = ?", [iid]).rows]  # fmt: skip
        assert len(whole[0]) > 300 and max(masks) < 1 << 8


def test_scoping_again_replaces_the_previous_result(scoped):
    store, iid = scoped
    scope_incident(store, iid, [SNAPSHOT])
    scope_incident(store, iid, [SNAPSHOT])
    assert store.scalar("SELECT count(*) FROM exposures") == 10
    assert store.scalar("SELECT count(*) FROM scopes") == 1


def test_scope_cli_json(scoped):
    store, iid = scoped
    db = store.path
    store.close()
    res = runner.invoke(app, ["scope", iid, "--customers", str(SNAPSHOT), "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout)
    for key in ("incident_id", "affected_customers", "affected_by_confidence", "fields",
                "by_country", "by_category"):  # fmt: skip
        assert key in body
    assert body["affected_customers"] == 8
    # issue 19: both were null though the exposure details hold the times
    assert body["first_exposure_at"] == "2025-06-10T09:10:00Z"  # the Korean contacts' query
    assert body["last_exposure_at"] == "2025-06-10T09:20:00Z"  # the Bulk API export
    missing = runner.invoke(app, ["scope", iid, "--customers", "/nope.csv", "--db", db])
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


@pytest.mark.parametrize(("name", "cat"), [
    ("FirstName", "identity"), ("Birthdate", "identity"), ("Email", "contact"),
    ("MobilePhone", "phone"), ("MailingPostalCode", "postal_address"),
    ("Billing City", "postal_address"),  # a report column label
    ("Customer_Number__c", "customer_number"), ("Total_Purchases__c", "purchase_sales"),
    ("Watch_Serial_Number__c", "serial_number"), ("Passport_Number__c", "special_category"),
    ("Health_Notes__c", "special_category"), ("Status", "other"),
    ("E-mail", "contact"), ("Date-of-Birth", "identity"),  # hyphenated report labels
    ("Contact.Birth_Date__C", "identity"),  # a relationship path, __C in upper case
])  # fmt: skip
def test_field_categories(name, cat):
    from crmwatch.scope.fields import category

    assert category(name) == cat


def test_categories_and_breach_law_elements_read_field_names_alike():
    from crmwatch.notify.elements import elements
    from crmwatch.scope.fields import category

    # One spelling per pair is an API name, the other a report label or an export's variant.
    for a, b in [
        ("Email", "E-mail"),
        ("Birthdate", "Birth Date"),
        ("SSN__c", "ssn__C"),
        ("Contact.FirstName", "First_Name"),
        ("Passport_Number__c", "Passport-Number"),
    ]:
        assert category(a) == category(b) != "other", (a, b)
        assert elements([a]) == elements([b]) != set(), (a, b)


@pytest.mark.parametrize(("raw", "code"), [("kr", "KR"), ("Korea, Republic of", "KR"),
    ("South Korea", "KR"), ("France", "FR"), ("United States", "US"), ("USA", "US"),
    ("Atlantis", None), ("", None)])  # fmt: skip
def test_country_names_normalise(raw, code):
    from crmwatch.scope.results import country_code

    assert country_code(raw) == code


def test_parquet_and_gzip_snapshots_replay_the_same(store, tmp_path):
    import gzip

    parquet = tmp_path / "pq"
    parquet.mkdir()
    for obj in ("Contact", "Account", "Case"):
        store.execute(
            f"COPY (SELECT * FROM read_csv('{SNAPSHOT / (obj + '.csv')}', all_varchar = true)) "
            f"TO '{parquet / (obj + '.parquet')}' (FORMAT parquet)"
        )
    gz = tmp_path / "gz"
    gz.mkdir()
    for obj in ("Contact", "Account", "Case"):
        (gz / f"{obj}.csv.gz").write_bytes(gzip.compress((SNAPSHOT / f"{obj}.csv").read_bytes()))
    where = "WHERE Account.BillingCountry = 'FR' OR Total_Purchases__c > 20000"
    expected = replay(store, Snapshot(store, [SNAPSHOT]), where)[1]
    assert expected == c(4, 5, 6)
    for folder in (parquet, gz):
        assert replay(store, Snapshot(store, [folder]), where)[1] == expected


def test_snapshot_errors_name_the_file(store, tmp_path):
    from crmwatch.errors import UsageError

    bad = tmp_path / "Contact.csv"
    bad.write_text("Name,Email\nx,y\n")
    with pytest.raises(UsageError, match=r"Contact\.csv: no Id column"):
        Snapshot(store, [bad])
    with pytest.raises(UsageError, match="does not exist"):
        Snapshot(store, [tmp_path / "nope.csv"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no snapshot files"):
        Snapshot(store, [tmp_path / "empty"])
    # one object twice, by names that differ only in case (both were loaded into one table)
    twice = tmp_path / "twice"
    twice.mkdir()
    for name in ("Contact.csv", "CONTACT.csv"):
        (twice / name).write_text("Id\n003000000000001AAA\n")
    with pytest.raises(UsageError, match="two snapshot files for"):
        Snapshot(store, [twice])


def test_a_store_with_first_layout_scope_tables_opens_and_drops_them(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE exposures (incident_id VARCHAR, record_id VARCHAR, fields VARCHAR[])")
    con.execute("INSERT INTO exposures VALUES ('INC-1', '003', ['Email'])")
    con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.close()
    with Store(path) as store:  # would fail building exposure_details on the old table
        cols = [r[0] for r in store.execute("DESCRIBE exposures").rows]
        assert "fieldset" in cols and store.scalar("SELECT count(*) FROM exposures") == 0


def _snapshot_copy(tmp_path: Path, obj: str, keep_rows: int) -> Path:
    snap = tmp_path / "partial"
    snap.mkdir()
    for f in SNAPSHOT.glob("*.csv"):
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
        (snap / f.name).write_text("".join(lines[: keep_rows + 1] if f.stem == obj else lines))
    return snap


def test_an_empty_snapshot_file_gives_a_bounded_result_not_a_small_exact_one(scoped, tmp_path):
    """Issue 19: a header-only snapshot reported the few records the log names as the whole
    scope, with an upper bound of 0."""
    store, iid = scoped
    r = scope_incident(store, iid, [_snapshot_copy(tmp_path, "Contact", 0)])
    kinds = {e.ts[11:16]: (e.kind, e.upper_bound) for e in r.events}
    assert kinds["09:10"] == ("exact", None)  # the ids the log names stay listed
    assert kinds["09:12"] == ("bounded", 3)  # the top three: the log's row count
    assert kinds["09:20"] == ("bounded", None)  # the bulk job: no count anywhere
    assert r.bounded_upper_bound == 3
    assert r.unbounded_events == [e.event_id for e in r.events if e.ts[11:16] == "09:20"]
    assert "no records to replay on" in " ".join(r.notes)


def test_a_partial_snapshot_bounds_what_it_cannot_list(scoped, tmp_path):
    store, iid = scoped
    r = scope_incident(store, iid, [_snapshot_copy(tmp_path, "Case", 1)])
    [case] = [e for e in r.events if e.object == "Case"]
    assert (case.kind, case.records, case.rows_logged, case.upper_bound) == ("candidate", 1, 2, 1)
    assert r.bounded_upper_bound == 1 and r.unbounded_events == []


HOSTILE_QUERIES = {
    "parentheses": "SELECT Id FROM Contact WHERE " + "(" * 500 + "Email = 'a'" + ")" * 500,
    "negations": "SELECT Id FROM Contact WHERE " + "NOT " * 3000 + "Email = 'a'",
    "semi-joins": "SELECT Id FROM Contact WHERE "
    + "AccountId IN (SELECT Id FROM Account WHERE " * 200
    + "Name = 'x'"
    + ")" * 200,
    "days": "SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:999999999",
    "years": "SELECT Id FROM Contact WHERE CreatedDate = N_YEARS_AGO:100000",
    "months": "SELECT Id FROM Contact WHERE CreatedDate = NEXT_N_MONTHS:1000000000000",
    "month 13": "SELECT Id FROM Contact WHERE CreatedDate = 2025-13-45",
    "30 February": "SELECT Id FROM Contact WHERE CreatedDate > 2025-02-30T00:00:00Z",
    "400 digits": "SELECT Id FROM Contact WHERE Total_Purchases__c > " + "9" * 400,
    # the pattern a\ ends with LIKE's escape character: DuckDB refused the whole batch
    "escape at the end": "SELECT Id FROM Contact WHERE Email LIKE 'a\\\\'",
    "2^64 rows": "SELECT Id FROM Contact ORDER BY Email LIMIT 18446744073709551616",
    "2^63 skipped": "SELECT Id FROM Contact ORDER BY Email LIMIT 1 OFFSET 9223372036854775807",
}


def test_a_hostile_query_is_bounded_with_its_reason_and_the_rest_is_scoped(tmp_path):
    """Issue 19: one such query in the attacker's session stopped scope (RecursionError,
    OverflowError, ValueError), so notify refused the whole incident."""
    from tests.breach import api

    logs = write_breach(tmp_path / "logs")
    body = json.loads((logs / "ApiEvent.json").read_text())
    for n, q in enumerate(HOSTILE_QUERIES.values()):
        body["records"].append(api(100 + n, f"2025-06-10T09:{30 + n:02d}:00.000+0000", q, 5))
    (logs / "ApiEvent.json").write_text(json.dumps(body))
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [logs])
        detect(store, load_rules(None))
        incident = next(i for i in build_incidents(store) if i.principals == [ANNA])
        r = scope_incident(store, incident.id, [SNAPSHOT])
    late = [e for e in r.events if e.ts >= "2025-06-10T09:30"]
    assert len(late) == len(HOSTILE_QUERIES)
    for e, name in zip(late, HOSTILE_QUERIES, strict=True):
        assert e.kind == "bounded" and e.upper_bound == 5, (name, e)
        assert e.note.startswith("not replayable:"), (name, e.note)
    assert r.affected_customers == 8  # the breach's own scope, unchanged


def test_a_bulk_jobs_own_log_bounds_what_its_replay_cannot_list(tmp_path):
    """Helper audit of issue 19: with a partial snapshot the replayed Bulk API job listed 3
    records and no bound, while the job's EventLogFile row counted 99,589."""
    logs = write_breach(tmp_path / "logs")
    (logs / "BulkApi2.csv").write_text(
        '"EVENT_TYPE","TIMESTAMP","REQUEST_ID","ORGANIZATION_ID","USER_ID","JOB_ID",'
        '"JOB_STATUS","ENTITY_TYPE","OPERATION_TYPE","ROWS_PROCESSED","TIMESTAMP_DERIVED",'
        '"USER_ID_DERIVED","CLIENT_IP"\n'
        '"BulkApi2","20250610092100.000","4bk2a","00D000000000001","005000000000001",'
        '"750000000000001","JobComplete","Contact","query","10","2025-06-10T09:21:00.000Z",'
        '"005000000000001AAA","90.3.99.23"\n'
    )
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [logs])
        detect(store, load_rules(None))
        incident = next(i for i in build_incidents(store) if i.principals == [ANNA])
        r = scope_incident(store, incident.id, [SNAPSHOT])
    [job] = [e for e in r.events if e.source_type == "api:BulkApiResultEventStore"]
    [elf] = [e for e in r.events if e.source_type == "elf:BulkApi2"]
    assert elf.kind == "covered"
    assert (job.records, job.upper_bound) == (4, 6) and "counts 10 rows" in job.note
    assert r.bounded_upper_bound == 6


def _ev(n: int, second: float, obj: str | None = "Contact", user: str = "005000000000001AAA"):
    return {
        "event_id": f"e{n}",
        "category": "report_export",
        "user_id": user,
        "ts": dt.datetime(2025, 6, 10, 9, 0) + dt.timedelta(seconds=second),
        "object": obj,
    }


def _twins(store: Store, bounded: list[dict], listed: list[dict]) -> dict[int, str]:
    """:func:`twins` of events numbered as given, the listed after the bounded."""
    for name, events, first in (("tb", bounded, 0), ("tl", listed, 100)):
        store.execute(f"CREATE OR REPLACE TEMP TABLE {name} (ix BIGINT, category VARCHAR, "
                      "user_id VARCHAR, ts TIMESTAMP, object VARCHAR, event_id VARCHAR)")  # fmt: skip
        store.insert(name, [(first + i, e["category"], e["user_id"], e["ts"], e["object"],
                             e["event_id"]) for i, e in enumerate(events)])  # fmt: skip
    twins(store, "SELECT * EXCLUDE (event_id) FROM tb", "SELECT * FROM tl")
    return dict(store.execute("SELECT ix, other FROM scope_twins").rows)


def test_twins_are_one_to_one_nearest_first(store: Store):
    """Two separate exports a second apart, and one event object describing one of them: only
    the nearer is that event seen by another log; the other stays an export of its own."""
    listed = [_ev(10, 1.2)]
    bounded = [_ev(1, 0), _ev(2, 1), _ev(3, 1, user="005000000000002AAA"), _ev(4, 30)]
    assert _twins(store, bounded, listed) == {1: "e10"}
    # with a second listed event, the earlier export finds its own twin
    listed.append(_ev(11, 0.1, obj=None))
    assert _twins(store, bounded, listed) == {0: "e11", 1: "e10"}
    # an object both name must agree
    assert _twins(store, bounded, [_ev(12, 0, obj="Case")]) == {}


def _plain_and_their_rivals(store: Store, iid: str) -> None:
    """Events beside the breach's: API log rows with an object and a row count only (plain),
    one with a field list (judged in Python) racing a plain one for the same twin, and plain
    ones with no object, no count, more rows than the snapshot holds, another case of the
    object's name, or an object the snapshot lacks."""
    t = dt.datetime(2025, 6, 10, 9, 0)
    user = "005000000000001AAA"
    rows = [  # event id, seconds after 09:00, object, rows, fields
        ("p0-rival", 601, "Contact", 2, ["Email"]),  # ties with p1 for the 09:10 event
        ("p1-plain", 601, "Contact", 2, None),
        ("p2-twin", 722, "Contact", 3, None),  # the 09:12 event, 2 s later
        ("p3-nothing", 1500, None, None, None),
        ("p4-huge", 1510, "Contact", 10**6, None),
        ("p5-lower", 1520, "contact", 10**6, []),
        ("p6-lead", 1530, "Lead", 5, None),
        ("p7-uncounted", 1540, "Contact", None, None),  # no count: no bound from the snapshot
        ("p8-dotted", 1550, "CONT\u0130", 50, None),  # Python's lower() is not DuckDB's
    ]
    for eid, second, obj, n, fields in rows:
        store.execute(
            "INSERT INTO events_base (event_id, ts, source, source_type, category, outcome, "
            "user_id, user_name, object, rows, fields) VALUES (?, ?, 'salesforce', 'elf:API', "
            "'api_query', 'success', ?, ?, ?, ?, ?)",
            [eid, t + dt.timedelta(seconds=second), user, ANNA, obj, n, fields],
        )
        store.execute("INSERT INTO incident_events VALUES (?, ?, 'session')", [iid, eid])


def test_plain_events_judged_in_sql_are_judged_as_python_judges_them(scoped, monkeypatch, tmp_path):
    """Issue 16: events with an object and a row count only (an insider's two million report
    exports) are judged in SQL, never read into Python. The whole result — every verdict in
    order, the summary, what is stored — is what judging them in Python gives, twins raced
    across both kinds (a tie goes to the earlier event) included."""
    import crmwatch.scope.exposure as exposure

    store, iid = scoped
    _plain_and_their_rivals(store, iid)
    # "CONTİ" is not "Conti" in Python's lower case, and is in DuckDB's
    conti = tmp_path / "Conti.csv"
    conti.write_text("Id\n0XX000000000001\n0XX000000000002\n")

    in_sql = _scope_whole(store, iid, [SNAPSHOT, conti])
    monkeypatch.setattr(exposure, "PLAIN", "false")
    assert _scope_whole(store, iid, [SNAPSHOT, conti]) == in_sql
    verdicts = {v["event_id"]: v for v in in_sql[0]}
    assert verdicts["p0-rival"]["kind"] == "covered"  # the tie: the earlier event id
    assert (verdicts["p1-plain"]["kind"], verdicts["p1-plain"]["upper_bound"]) == ("bounded", 2)
    assert verdicts["p2-twin"]["kind"] == "covered"
    assert verdicts["p2-twin"]["note"].startswith("the same api_query as event ")
    assert verdicts["p3-nothing"]["note"] == "no object in the log"
    assert in_sql[1]["unbounded_events"] == ["p3-nothing", "p7-uncounted"]
    assert verdicts["p8-dotted"]["upper_bound"] == 50  # no snapshot file of that name
    contacts = sum(1 for _ in SNAPSHOT.joinpath("Contact.csv").open()) - 1
    assert verdicts["p4-huge"]["upper_bound"] == verdicts["p5-lower"]["upper_bound"] == contacts
    assert verdicts["p6-lead"]["upper_bound"] == 5
