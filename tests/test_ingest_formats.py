"""Object types and ELF event types that the public samples lack, in their documented shapes."""

from __future__ import annotations

import json

import pytest

from crmwatch.ingest import ingest
from crmwatch.store import Store
from tests.conftest import ROOT

INPUTS = ROOT / "tests" / "fixtures" / "ingest"


@pytest.fixture(scope="module")
def formats_store(tmp_path_factory) -> Store:
    with Store(tmp_path_factory.mktemp("formats") / "s.duckdb") as s:
        summary = ingest(s, [INPUTS])
        assert summary.total("quarantined") == 0
        yield s


CASES = [
    # ApiEvent with SOQL: object and fields from the query, record ids from Records.
    ("api:ApiEvent", "2025-08-12 10:20:01", {
        "category": "api_query", "object": "Contact", "operation": "query", "rows": 2,
        "fields": ["Id", "FirstName", "LastName", "Email", "MailingAddress", "Account.Name"],
        "record_ids": ["0035j00000AbCdEAAZ", "0035j00000AbCdFAAZ"], "ip_class": "hosting",
        "ua_class": "script", "client_app": "Drift",
        "query": "SELECT Id, FirstName, LastName, Email, MailingAddress, Account.Name FROM Contact "
                 "WHERE MailingCountry = 'KR' LIMIT 10000"}),
    # COUNT() reconnaissance exposes a number, not fields.
    ("api:ApiEvent", "2025-08-12 10:19:30", {
        "object": "Account", "fields": None, "ua_class": "salesforce-tool", "rows": 48112}),
    ("api:BulkApiResultEventStore", "2025-08-12 10:25:00", {
        "category": "bulk_export", "object": "Case", "job_id": "7505j00000Job01",
        "fields": ["Id", "Subject", "Description", "ContactEmail"], "login_key": "Lk0000000000001A"}),
    ("api:ReportEvent", "2025-08-13 08:00:00", {
        "category": "report_export", "object": "Contact", "rows": 1200,
        "fields": ["Contact Name", "Email", "Phone", "Mailing Country"],
        "record_ids": ["0035j00000AbCdEAAZ", "0035j00000AbCdGAAZ"], "country": "KR"}),
    ("api:ListViewEvent", "2025-08-13 08:05:00", {
        "category": "list_view", "object": "Lead", "rows": 25, "fields": ["Name", "Email"]}),
    ("api:LoginAsEvent", "2025-08-13 09:00:00", {
        "category": "authentication", "operation": "login_as", "user_name": "admin@retail.example",
        # DelegatedUsername is the administrator who logged in as Username (Platform Events
        # Developer Guide, LoginAsEvent): the actor, and the user acted as
        "target_user": "cfo@retail.example"}),
    ("api:UriEvent", "2025-08-13 09:10:00", {
        "category": "record_view", "object": "Contact", "record_ids": ["0035j00000AbCdHAAZ"]}),
    # The UNC6040 shape: a look-alike app authorised over Tor by a scripted client.
    ("api:LoginHistory", "2025-08-12 10:18:00", {
        "category": "authentication", "outcome": "success", "client_app": "My Ticket Portal",
        "ip_class": "tor", "ua_class": "script", "mfa": None, "user_id": "0055j00000Adv01AAA"}),
    ("api:LoginHistory", "2025-08-11 01:00:00", {"mfa": True, "country": "KR", "ua_class": "browser"}),
    # A failed sign-in: Salesforce writes "N/A" where a field does not apply; it is no app.
    ("api:LoginHistory", "2025-08-12 09:59:00", {
        "outcome": "failure", "status_detail": "Invalid Password", "client_app": None}),
    ("api:OauthToken", "2025-08-12 10:17:30", {
        "category": "oauth_grant", "client_app": "My Ticket Portal", "operation": "token_granted"}),
    ("elf:BulkApi2", "2025-08-12 10:24:00", {
        "category": "bulk_export", "object": "Contact", "operation": "query", "rows": 48112,
        "status_detail": "JobComplete", "job_id": "7505j00000Job02"}),
    ("elf:BulkApi2", "2025-08-12 10:24:24", {"category": "bulk_export", "status_detail": "Deleted"}),
    # A bulk upsert writes data; it is not an export.
    ("elf:BulkApi2", "2025-08-12 10:30:00", {"category": "other", "operation": "upsert"}),
    ("elf:LightningURI", "2025-08-13 09:10:00", {
        "category": "record_view", "object": "Account", "record_ids": ["0015j00000Acc01AAA"]}),
    ("elf:ApiTotalUsage", "2025-08-12 10:19:30", {
        "category": "api_query", "client_app": "Drift", "operation": "get", "outcome": "success",
        "user_name": "drift.integration@retail.example"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("source_type", "ts", "expected"), CASES, ids=[f"{c[0]}@{c[1][-8:]}" for c in CASES]
)
def test_documented_shapes_normalise(
    formats_store: Store, source_type: str, ts: str, expected: dict
):
    rows = formats_store.execute(
        f"SELECT {', '.join(expected)} FROM events WHERE source_type = ? AND ts = CAST(? AS TIMESTAMP)",
        [source_type, ts],
    ).dicts()
    assert len(rows) == 1
    assert rows[0] == expected


def test_stored_event_placeholder_ids_do_not_collapse_records(formats_store: Store):
    # Every stored event has Id 000000000000000AAA; EventIdentifier is the identity.
    path = INPUTS / "rtem_query_result.json"
    records = json.loads(path.read_text())["records"]
    assert {r["Id"] for r in records} == {"000000000000000AAA"}
    stored = formats_store.scalar(
        "SELECT count(*) FROM events WHERE ingest_file = ?", [str(path.absolute())]
    )
    assert stored == len(records) == 7


def test_query_results_on_one_line_are_unwrapped(store: Store, tmp_path):
    """``json.dumps`` / ``sf data query --json`` style: the whole response on one line, or one
    paginated response per line. Each record is an event, not the wrapper."""
    import json

    def page(ids: range) -> str:
        return json.dumps({"totalSize": 3, "done": False, "records": [
            {"attributes": {"type": "OauthToken"}, "Id": f"0CJ00000000000{i}AAA", "AppName": "X",
             "UserId": "005000000000001AAA", "CreatedDate": "2025-06-10T08:55:00.000+0000",
             "UseCount": 1} for i in ids]})  # fmt: skip

    (tmp_path / "one.json").write_text(page(range(1, 3)))
    (tmp_path / "pages.json").write_text(page(range(3, 5)) + "\n" + page(range(5, 6)) + "\n")
    summary = ingest(store, [tmp_path])
    assert summary.total("quarantined") == 0
    assert store.scalar("SELECT count(*) FROM events WHERE source_type = 'api:OauthToken'") == 5


def test_a_zone_abbreviation_is_its_fixed_offset(store: Store, tmp_path):
    """Issue 19: "PST" was read as America/Los_Angeles, so a June time was stored at UTC-7.
    An abbreviation with more than one meaning (IST) is not guessed: the record is quarantined."""
    times = {"1": "2025-06-10 10:00:00 PST", "2": "2025-01-10 10:00:00 PST",
             "3": "2025-06-10 10:00:00 CET", "4": "2025-06-10 19:00:00 KST",
             "5": "2025-06-10 10:00:00 America/New_York", "6": "2025-06-10 10:00:00 IST",
             "7": "2025-06-10 10:00:00 XYZ"}  # fmt: skip
    records = [{"attributes": {"type": "OauthToken"}, "Id": f"0CJ00000000000{n}AAA",
                "AppName": "X", "UserId": "005000000000001AAA", "CreatedDate": t, "UseCount": 1}
               for n, t in times.items()]  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps({"totalSize": 7, "done": True, "records": records}))
    summary = ingest(store, [tmp_path])
    stored = dict(store.execute(
        "SELECT json_extract_string(raw, '$.Id')[15:15], strftime(ts, '%Y-%m-%d %H:%M') "
        "FROM events").rows)  # fmt: skip
    assert stored == {"1": "2025-06-10 18:00", "2": "2025-01-10 18:00", "3": "2025-06-10 09:00",
                      "4": "2025-06-10 10:00", "5": "2025-06-10 14:00"}  # fmt: skip
    assert summary.total("quarantined") == 2  # IST, and XYZ (read as UTC for its Z)
    assert store.execute("SELECT DISTINCT reason FROM quarantine").rows == [("bad_timestamp",)]


def _ingest_records(store: Store, tmp_path, name: str, records: list[dict]) -> list[dict]:
    (tmp_path / name).write_text(json.dumps(records))
    summary = ingest(store, [tmp_path / name])
    assert summary.total("quarantined") == 0, summary
    return store.execute(
        "SELECT native_id, category, outcome, object, query, record_ids, asn, as_org "
        "FROM events ORDER BY native_id"
    ).dicts()


@pytest.mark.parametrize(("status", "outcome"), [
    ("Succeeded", "success"), ("AutomatedSuccess", "success"), ("TwoFASucceeded", "success"),
    ("InProgress", "unknown"), ("Initiated", "unknown"), ("RecoverableError", "unknown"),
    ("FailedInvalidCode", "failure"), ("Denied", "failure"), ("ReportedDenied", "failure"),
    ("TwoFAFailedTooManyAttempts", "failure"), ("Success", "success"),
])  # fmt: skip
def test_identity_verification_status_is_its_outcome(store: Store, tmp_path, status, outcome):
    """Issue 13: Succeeded came out as failure, and InProgress too (the Status picklist of
    VerificationHistory / IdentityVerificationEvent, Object Reference)."""
    record = {"attributes": {"type": "IdentityVerificationEvent"}, "EventIdentifier": "iv-1",
              "EventDate": "2025-06-10T08:00:00.000+0000", "UserId": "005000000000001AAA",
              "Username": "a@x.example", "Status": status, "Activity": "Login",
              "VerificationMethod": "Totp", "SourceIp": "90.3.10.10"}  # fmt: skip
    [row] = _ingest_records(store, tmp_path, "iv.json", [record])
    assert row["outcome"] == outcome


@pytest.mark.parametrize(("operation", "category"), [
    ("Read", "record_view"), ("Create", "record_change"), ("Update", "record_change"),
    ("Delete", "record_change"),
])  # fmt: skip
def test_a_page_event_that_changes_a_record_is_no_view(store: Store, tmp_path, operation, category):
    record = {"attributes": {"type": "LightningUriEvent"}, "EventIdentifier": "u-1",
              "EventDate": "2025-06-10T08:00:00.000+0000", "Username": "a@x.example",
              "Operation": operation, "RecordId": "0035j00000AbCdEAAZ",
              "QueriedEntities": "Contact"}  # fmt: skip
    [row] = _ingest_records(store, tmp_path, "uri.json", [record])
    assert row["category"] == category


@pytest.mark.parametrize(("event_type", "category"), [
    ("iam.role.create", "config_change"), ("iam.resourceset.bindings.add", "config_change"),
    ("zone.update", "config_change"), ("zone.delete", "config_change"),
    ("system.push.send_factor_verify_push", "authentication"),
    ("system.sms.send_factor_verify_message", "authentication"),
    ("system.org.rate_limit.warning", "config_change"), ("user.session.start", "authentication"),
])  # fmt: skip
def test_okta_event_types_fall_in_their_category(store: Store, tmp_path, event_type, category):
    from tests.breach import okta_event

    event = okta_event("o-1", "2025-06-10T08:00:00.000Z", event_type, "a@x.example", "90.3.10.10")
    [row] = _ingest_records(store, tmp_path, "okta.json", [event])
    assert row["category"] == category


def test_okta_asn_and_as_org_are_one_pair(store: Store, tmp_path):
    """Issue 13: asn came from Okta and as_org from the bundled database."""
    from tests.breach import okta_event

    events = []
    for n, ip in enumerate(("90.3.10.10", "10.1.2.3")):  # Orange France; a private address
        e = okta_event(
            f"o-{n}", "2025-06-10T08:00:00.000Z", "user.session.start", "a@x.example", ip
        )
        e["securityContext"] = {"asNumber": 64500 + n, "asOrg": f"okta says {n}"}
        events.append(e)
    public, private = _ingest_records(store, tmp_path, "okta.json", events)
    assert public["as_org"] != "okta says 0" and public["asn"] != 64500  # the database's pair
    assert (private["asn"], private["as_org"]) == (64501, "okta says 1")  # the log's pair


def test_unique_query_and_aura_page_rows_name_their_query_and_object(store: Store, tmp_path):
    """Issue 13: UniqueQuery's SOQL was not read; an AuraRequest on a record page had no
    object. Field names per the Unique Query and Aura Request event types."""
    header = ["EVENT_TYPE", "TIMESTAMP", "TIMESTAMP_DERIVED", "USER_ID", "QUERY_TYPE",
              "QUERY_IDENTIFIER", "URI", "PAGE_URL"]  # fmt: skip
    rows = [
        ["UniqueQuery", "20250610080000.000", "2025-06-10T08:00:00.000Z", "0055j00000Adv01",
         "soql", "SELECT Id, Email FROM Contact WHERE MailingCountry = 'KR'", "", ""],
        ["UniqueQuery", "20250610080100.000", "2025-06-10T08:01:00.000Z", "0055j00000Adv01",
         "report", "00O5j000000Rep1", "", ""],
        ["AuraRequest", "20250610080200.000", "2025-06-10T08:02:00.000Z", "0055j00000Adv01",
         "", "", "/aura", "/lightning/r/Account/0015j00000AcCoUAAA/view"],
    ]  # fmt: skip
    import csv as csv_module
    import io

    out = io.StringIO()
    csv_module.writer(out).writerows([header, *rows])
    (tmp_path / "elf.csv").write_text(out.getvalue())
    ingest(store, [tmp_path / "elf.csv"])
    got = store.execute(
        "SELECT source_type, query, object, record_ids FROM events ORDER BY ts"
    ).rows
    assert got == [
        ("elf:UniqueQuery", rows[0][5], "Contact", None),
        ("elf:UniqueQuery", None, None, None),
        ("elf:AuraRequest", None, "Account", ["0015j00000AcCoUAAA"]),
    ]
