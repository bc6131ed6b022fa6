"""Benchmark: `crmwatch scope` on a Kering-sized Contact snapshot against one scan of it.

The snapshot is 7.4 million contacts (the number Kering reported in 2025) as a Data Loader
style CSV, made once under ``--out``. The incident is a Tor sign-in whose session ran two Bulk
API exports: the whole Contact table, and the Korean customers only. Measured in one run:
- baseline: one DuckDB query reading every column of the snapshot CSV;
- crmwatch: ``crmwatch scope`` in a child process — both queries replayed, every exposure
  stored, the summary by country, state and category computed.

Targets (issue 4): scope at most 3x the scan; peak RSS under 4 GB.

``--queries N`` adds N one-record queries to the session (``WHERE Id = '…'``, a scripted
client reading contacts one by one): each is replayed, 20,000 of them as one join.
``--pages N`` adds N pages of 2,000 contacts read in id order (``WHERE Id > '…' ORDER BY Id
LIMIT 2000``, how a scripted client pages past SOQL's OFFSET cap): each ranks only its page.

Usage: python bench/scope.py [--contacts 7400000] [--out bench/out] [--queries 0] [--pages 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb
from child import finish, run_crmwatch

TARGET_RATIO = 3.0
TARGET_RSS_MB = 4096
COUNTRIES = ["KR", "US", "FR", "JP", "CN", "GB", "DE", "IT", "SG", "AU", "CA", "AE"]


def snapshot(out: Path, contacts: int) -> Path:
    """A Contact.csv with ``contacts`` rows, written once by DuckDB and reused."""
    folder = out / f"scope-{contacts}"
    path = folder / "Contact.csv"
    marker = folder / ".complete"
    if not marker.exists():
        folder.mkdir(parents=True, exist_ok=True)
        countries = "[" + ", ".join(f"'{c}'" for c in COUNTRIES) + "]"
        duckdb.sql(f"""COPY (
            SELECT '003' || lpad(to_base(i, 36), 12, '0') || 'AAA' AS Id,
                'First' || (i % 5003) AS FirstName, 'Last' || (i % 7919) AS LastName,
                'c' || i || '@example.com' AS Email, '+1 555 ' || lpad((i % 10000)::VARCHAR, 4,
                '0') AS Phone, (i % 997) || ' Main St' AS MailingStreet,
                'City' || (i % 311) AS MailingCity,
                CASE WHEN {countries}[i % 12 + 1] = 'US' THEN 'CA' END AS MailingState,
                lpad((i % 99991)::VARCHAR, 5, '0') AS MailingPostalCode,
                {countries}[i % 12 + 1] AS MailingCountry,
                'C-' || i AS Customer_Number__c, (i % 50000)::VARCHAR AS Total_Purchases__c,
                strftime(TIMESTAMP '2020-01-01' + to_minutes(i % 2000000), '%Y-%m-%dT%H:%M:%S.000Z')
                    AS CreatedDate
            FROM range({contacts}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
        marker.write_text("ok")
    return path


def contact_id(i: int) -> str:
    """The id :func:`snapshot` gives contact ``i`` (DuckDB's to_base: upper-case digits)."""
    digits, text = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", ""
    while True:
        i, d = divmod(i, 36)
        text = digits[d] + text
        if not i:
            return "003" + text.rjust(12, "0") + "AAA"


def _api_queries(path: Path, hour: int, every_ms: int, calls: list, common: dict) -> None:
    """ApiEvent records of ``calls`` (identifier, SOQL, rows logged), one every ``every_ms``
    from ``hour``:00, written to ``path`` as one query response; none: no file."""
    path.unlink(missing_ok=True)
    if not calls:
        return
    records = []
    for n, (name, query, rows) in enumerate(calls):
        ms = n * every_ms
        at = f"2025-06-10T{hour}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}+0000"
        records.append({
            "attributes": {"type": "ApiEvent"}, "EventIdentifier": name, "EventDate": at,
            "Query": query, "QueriedEntities": "Contact", "RowsProcessed": rows,
            "Operation": "Query", **common,
        })  # fmt: skip
    path.write_text(json.dumps({"totalSize": len(records), "done": True, "records": records}))


def scraper_queries(logs: Path, contacts: int, queries: int, common: dict) -> None:
    """``queries`` one-record REST queries in the session (a scripted client reading
    contacts one by one, every 50 ms from 10:00), in ``logs/queries.json``."""
    if queries > 72_000:
        raise SystemExit("--queries: at most 72,000 (one hour of queries)")
    step = max(contacts // queries, 1) if queries else 1
    calls = [(f"Q{n}", f"SELECT Id, Email FROM Contact WHERE Id = '{contact_id(n * step)}'", 1)
             for n in range(queries)]  # fmt: skip
    _api_queries(logs / "queries.json", 10, 50, calls, common)


def scraper_pages(logs: Path, pages: int, common: dict) -> None:
    """``pages`` queries of the next 2,000 contacts by id (a scripted client paging through
    the table every 500 ms from 11:00), in ``logs/pages.json``."""
    if pages > 7200:
        raise SystemExit("--pages: at most 7,200 (one hour of pages)")
    calls = [(f"P{n}", "SELECT Id, Email FROM Contact WHERE Id > "
              f"'{contact_id(n * 2000 - 1) if n else '000000000000000AAA'}' ORDER BY Id LIMIT 2000",
              2000) for n in range(pages)]  # fmt: skip
    _api_queries(logs / "pages.json", 11, 500, calls, common)


def incident_store(out: Path, contacts: int, queries: int = 0, pages: int = 0) -> tuple[Path, str]:
    """A store holding the incident: a Tor sign-in and two bulk exports in its session, and
    ``queries`` one-record queries and ``pages`` pages by id after them."""
    db = out / f"scope-{contacts}" / "store.duckdb"
    logs = out / f"scope-{contacts}" / "logs"
    logs.mkdir(exist_ok=True)
    db.unlink(missing_ok=True)
    common = {"Username": "svc.loader@maison.example", "UserId": "005000000000009AAA",
              "SourceIp": "185.220.101.7", "LoginKey": "LK-BENCH"}  # fmt: skip
    records = [
        {"attributes": {"type": "LoginEvent"}, "EventIdentifier": "L1", "LoginUrl": "x",
         "EventDate": "2025-06-10T08:50:00.000+0000", "Status": "Success", **common},
        {"attributes": {"type": "BulkApiResultEventStore"}, "EventIdentifier": "B1",
         "EventDate": "2025-06-10T09:20:00.000+0000", "JobId": "750000000000001AAA",
         "Query": "SELECT Id, Name, Email, Phone, MailingAddress FROM Contact", **common},
        {"attributes": {"type": "BulkApiResultEventStore"}, "EventIdentifier": "B2",
         "EventDate": "2025-06-10T09:40:00.000+0000", "JobId": "750000000000002AAA",
         "Query": "SELECT Id, Email, Customer_Number__c FROM Contact "
                  "WHERE MailingCountry = 'KR'", **common},
    ]  # fmt: skip
    (logs / "events.json").write_text(json.dumps({"totalSize": 3, "done": True,
                                                  "records": records}))  # fmt: skip
    scraper_queries(logs, contacts, queries, common)
    scraper_pages(logs, pages, common)
    run_crmwatch("ingest", str(logs), "--db", str(db), "--json")
    run_crmwatch("detect", "--db", str(db), "--json")
    listed = json.loads(run_crmwatch("incidents", "--db", str(db), "--json").stdout)
    return db, listed[0]["id"]


def scan_baseline(path: Path) -> tuple[float, int]:
    """Seconds for one DuckDB query reading every column of the snapshot."""
    con = duckdb.connect()
    start = time.perf_counter()
    rows = con.execute(
        f"SELECT count(*), min(COLUMNS(*)) FROM read_csv('{path}', header = true, "
        "all_varchar = true)"
    ).fetchone()[0]
    seconds = time.perf_counter() - start
    con.close()
    return seconds, rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contacts", type=int, default=7_400_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--queries", type=int, default=0,
                    help="one-record queries a scraper ran too (each replayed)")  # fmt: skip
    ap.add_argument("--pages", type=int, default=0,
                    help="pages of 2,000 contacts by id a scraper read too")  # fmt: skip
    args = ap.parse_args()
    path = snapshot(args.out, args.contacts)
    db, iid = incident_store(args.out, args.contacts, args.queries, args.pages)
    child = run_crmwatch("scope", iid, "--customers", str(path), "--db", str(db), "--json")
    result = json.loads(child.stdout)
    scan_s, rows = scan_baseline(path)
    ratio = child.seconds / scan_s
    report = {
        "contacts": rows, "queries": args.queries, "pages": args.pages,
        "affected_customers": result["affected_customers"],
        "korean_customers": result["by_country"].get("KR"),
        "scan_seconds": round(scan_s, 2), "scope_seconds": round(child.seconds, 2),
        "ratio_to_scan": round(ratio, 2), "target_ratio": TARGET_RATIO,
        "peak_rss_mb": child.peak_rss_mb, "target_rss_mb": TARGET_RSS_MB,
        "pass": ratio <= TARGET_RATIO and child.peak_rss_mb < TARGET_RSS_MB
        and result["affected_customers"] == rows,
    }  # fmt: skip
    return finish(report, args.out / "scope.json")


if __name__ == "__main__":
    sys.exit(main())
