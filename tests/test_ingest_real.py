"""Every public real-format sample ingests cleanly, into the values its source carries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from crmwatch.ingest import SKIPPED, ingest
from crmwatch.store import Store
from tests.conftest import REAL, real_files


def test_real_samples_are_present():
    assert len(real_files()) == 18, "tests/fixtures/real changed: update these tests"


@pytest.mark.parametrize("path", real_files(), ids=lambda p: p.name)
def test_real_file_ingests_with_nothing_quarantined(path: Path, store: Store):
    summary = ingest(store, [path])
    [f] = summary.files
    assert f.error is None
    assert f.quarantined == 0, f.reasons
    assert f.records > 0
    assert f.inserted + f.duplicates == f.records
    assert store.scalar("SELECT count(*) FROM quarantine") == 0


def test_sentinel_header_row_is_skipped_and_counted(store: Store):
    [f] = ingest(store, [REAL / "salesforce" / "sentinel_SalesforceServiceCloud_CL.json"]).files
    assert (f.records, f.skipped_headers, f.inserted) == (37, 1, 37)
    assert store.scalar("SELECT count(*) FROM events WHERE source_type = 'elf:EVENT_TYPE'") == 0


def test_reingest_adds_nothing(real_store: Store):
    before = real_store.scalar("SELECT count(*) FROM events_base")
    # Read again (event ids dedupe), then as a plain re-run would (files unchanged: not read).
    for summary in (ingest(real_store, [REAL], rescan=True), ingest(real_store, [REAL])):
        assert summary.total("inserted") == 0
        assert summary.total("duplicates") == summary.total("records")
        assert real_store.scalar("SELECT count(*) FROM events_base") == before
    assert all(f.unchanged for f in summary.files if f.format != SKIPPED)


def test_quarantine_is_empty_for_the_real_samples(real_store: Store):
    assert real_store.scalar("SELECT count(*) FROM quarantine") == 0
    assert real_store.scalar("SELECT count(*) FROM events WHERE ts IS NULL") == 0


### Specific normalised values ###

EXPECTED = [
    # beats Login CSV: token login from a Go script; CLIENT_IP "Salesforce.com IP" is not an IP.
    (
        "elf:Login",
        dt.datetime(2023, 12, 18, 5, 48, 31, 655000),
        {
            "category": "authentication",
            "outcome": "success",
            "user_name": "salesforceinstance@devtest.in",
            "user_id": "0055j00000AT6I1AAL",
            "src_ip": "103.108.207.58",
            "country": "IN",
            "user_agent": "Go-http-client/1.1",
            "ua_class": "script",
            "operation": "login",
            "login_key": "bY5Wfv8t/Ith7WVE",
        },
    ),
    # Sentinel API row: query on PromptVersion by an internal client.
    (
        "elf:API",
        dt.datetime(2020, 10, 16, 10, 0, 0, 49000),
        {
            "category": "api_query",
            "client_app": "SfdcInternalAPI/",
            "object": "PromptVersion",
            "operation": "query",
            "rows": 0,
            "src_ip": None,
            "ip_class": "unknown",
        },
    ),
    # Sentinel BulkApi row from AWS: hosting network, job id kept.
    (
        "elf:BulkApi",
        dt.datetime(2020, 10, 16, 10, 0, 10, 809000),
        {
            "category": "bulk_export",
            "src_ip": "34.240.243.167",
            "country": "IE",
            "as_org": "AMAZON-02",
            "ip_class": "hosting",
            "job_id": "7503X00000as1sz",
        },
    ),
    # ReportExport: object from the report type, exported columns from REPORT_DESCRIPTION.
    (
        "elf:ReportExport",
        dt.datetime(2020, 10, 16, 10, 2, 51, 470000),
        {
            "category": "report_export",
            "object": "Case",
            "fields": ["CASE_ID", "OWNER"],
            "operation": "export",
            "ua_class": "browser",
            "country": "NL",
        },
    ),
    # Report run: rows from ROW_COUNT.
    (
        "elf:Report",
        dt.datetime(2020, 10, 16, 10, 0, 7, 949000),
        {"category": "record_view", "operation": "report_run", "rows": 544},
    ),
    # URI view of a Case: the record id comes from REFERRER_URI.
    (
        "elf:URI",
        dt.datetime(2020, 10, 16, 10, 0, 0, 11000),
        {
            "category": "record_view",
            "object": "Case",
            "record_ids": ["5003X00001ygItmQAE"],
            "operation": "view",
        },
    ),
    # RestApi carries a numeric user-agent code, which is not a user agent. This row is a POST
    # to a chatbot session (/support/chatbots/…): a write, not a query of records.
    (
        "elf:RestApi",
        dt.datetime(2020, 10, 16, 10, 0, 2, 405000),
        {
            "category": "other",
            "outcome": "success",
            "user_agent": None,
            "operation": "post",
            "ip_class": "hosting",
        },
    ),
    # Logout rows: TIMESTAMP "…07.13" trims zeros; TIMESTAMP_DERIVED's .128 is preferred.
    (
        "elf:Logout",
        dt.datetime(2021, 10, 19, 5, 7, 7, 128000),
        {"category": "logout", "operation": "logout", "login_key": "OK123uSUIZVr9YzF"},
    ),
    # LoginEvent object that failed: Status text kept, outcome failure.
    (
        "api:LoginEvent",
        dt.datetime(2024, 7, 8, 7, 26, 18, 239000),
        {
            "category": "authentication",
            "outcome": "failure",
            "user_name": "salesforceinstance@devtest.in",
            "client_app": "testing_salesforce",
            "src_ip": "89.160.20.112",
            "country": "SE",
        },
    ),
    # SetupAuditTrail in section "Connected Apps": an OAuth app was authorised.
    (
        "api:SetupAuditTrail",
        dt.datetime(2022, 8, 16, 9, 26, 38),
        {
            "category": "oauth_grant",
            "operation": "insertConnectedApplication",
            "user_id": "0055j000000utlPAAQ",
        },
    ),
    # Okta MFA verification from a private address, AS number from securityContext.
    (
        "okta:user.authentication.auth_via_mfa",
        dt.datetime(2023, 2, 6, 8, 56, 36, 909000),
        {
            "category": "authentication",
            "outcome": "success",
            "user_name": "user@domain.com",
            "src_ip": "127.0.0.1",
            "ip_class": "private",
            "mfa": True,
        },
    ),
    # OCSF Okta sample: sign-on to the Admin Console (an AppInstance target).
    (
        "okta:user.session.start",
        dt.datetime(2024, 8, 13, 15, 58, 20, 353000),
        {
            "category": "authentication",
            "user_name": "john.doe@example.com",
            "client_app": "Okta Admin Console",
            "ua_class": "browser",
            "ip_class": "private",
        },
    ),
]


@pytest.mark.parametrize(
    ("source_type", "ts", "expected"),
    EXPECTED,
    ids=[f"{e[0]}@{e[1]:%Y%m%d%H%M%S}" for e in EXPECTED],
)
def test_normalised_values(real_store: Store, source_type: str, ts: dt.datetime, expected: dict):
    rows = real_store.execute(
        f"SELECT {', '.join(expected)} FROM events WHERE source_type = ? AND ts = ?",
        [source_type, ts],
    ).dicts()
    assert rows, f"no {source_type} event at {ts}"
    assert rows[0] == expected


def test_okta_asn_comes_from_the_source(real_store: Store):
    asns = real_store.execute(
        "SELECT DISTINCT asn FROM events WHERE source = 'okta' AND asn IS NOT NULL ORDER BY asn"
    ).rows
    assert (394089,) in asns  # ocsf sample securityContext.asNumber


def test_csv_raw_round_trips_to_the_source_row(real_store: Store):
    [(raw,)] = real_store.execute(
        "SELECT raw::VARCHAR FROM events WHERE source_type = 'elf:Login' AND "
        "ts = TIMESTAMP '2023-12-18 05:48:31.655'"
    ).rows
    import json

    obj = json.loads(raw)
    assert obj["CLIENT_IP"] == "Salesforce.com IP"
    assert obj["SOURCE_IP"] == "103.108.207.58"
    assert obj["CIPHER_SUITE"] == "ECDHE-RSA-AES256-GCM-SHA384"
    assert len(obj) == 28


def test_enrichment_records_database_date(real_store: Store):
    assert "20240618" in real_store.meta("geoip_database")
