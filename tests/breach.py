"""A small hand-written breach in real formats, shared by the incident and scope tests.

Salesforce event objects as a SOQL query returns them (``{"records": [...]}`` with
``attributes.type``) and Okta System Log NDJSON. Every fact the tests assert is visible here.

Story (UTC, June 2025): anna works at a retailer from 90.3.10.10 (history from 1 June). On
10 June at 08:50 an attacker signs in as her from 90.3.99.23 (login key LK-ATT), authorises
"My Ticket Portal" at 08:55, counts Contacts at 09:05, pulls Korean contacts at 09:10 (the log
lists their ids), the three biggest spenders at 09:12, every case at 09:15, and US and Japanese
contacts through a Bulk API job at 09:20. Separately, on 12 June bob signs in from a Tor exit. tests/fixtures/snapshot holds the
customers those queries ran against.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ANNA = "anna.k@maison.example"
ANNA_ID = "005000000000001AAA"
BOB = "bob.t@maison.example"
ATTACKER_IP = "90.3.99.23"  # Orange, France: the office's own ISP, not a new network
OFFICE_IP = "90.3.10.10"
APP = "My Ticket Portal"
SNAPSHOT = Path(__file__).parent / "fixtures" / "snapshot"


def contact(n: int) -> str:
    return f"003000000000{n:03d}AAA"


def _sf(rtype: str, n: int, **fields) -> dict:
    return {"attributes": {"type": rtype, "url": f"/services/data/v64.0/sobjects/{rtype}/{n}"},
            "EventIdentifier": f"{rtype}-{n:04d}", **fields}  # fmt: skip


def login(n: int, ts: str, user: str, ip: str, key: str, status: str = "Success") -> dict:
    return _sf("LoginEvent", n, EventDate=ts, Username=user, UserId=ANNA_ID if user == ANNA
               else "005000000000002AAA", SourceIp=ip, LoginKey=key, Status=status,
               LoginUrl="login.salesforce.com", Browser="Chrome 125", Platform="Mac OSX",
               LoginType="Application")  # fmt: skip


def api(n: int, ts: str, query: str, rows: int, records: list[str] | None = None,
        key: str = "LK-ATT", ip: str = ATTACKER_IP, app: str = APP) -> dict:  # fmt: skip
    body = None
    if records is not None:
        body = json.dumps({"totalSize": len(records), "done": True, "records": [
            {"attributes": {"type": "Contact"}, "Id": r} for r in records]})  # fmt: skip
    return _sf("ApiEvent", n, EventDate=ts, Username=ANNA, UserId=ANNA_ID, SourceIp=ip,
               LoginKey=key, SessionKey=f"S-{key}", Application=app, Client=app,
               Operation="Query", Query=query, QueriedEntities=re.search(r"FROM (\w+)", query)[1], RowsProcessed=rows,
               RowsReturned=rows, Records=body)  # fmt: skip


def write_breach(out: Path) -> Path:
    """Write the story's files into ``out`` and return it."""
    out.mkdir(parents=True, exist_ok=True)
    logins = [login(d, f"2025-06-{d:02d}T07:30:00.000+0000", ANNA, OFFICE_IP, f"LK-{d}")
              for d in range(1, 10)]  # fmt: skip
    logins.append(login(50, "2025-06-10T08:50:00.000+0000", ANNA, ATTACKER_IP, "LK-ATT"))
    logins.append(login(60, "2025-06-12T22:00:00.000+0000", BOB, "185.220.101.7", "LK-BOB"))
    calls = [
        # anna's own small daily queries: her history for the first-large-query baseline
        *(api(d, f"2025-06-{d:02d}T08:00:00.000+0000", "SELECT Id FROM Contact LIMIT 5", 5,
              key=f"LK-{d}", ip=OFFICE_IP, app="Salesforce Mobile") for d in range(1, 10)),
        api(20, "2025-06-10T09:05:00.000+0000", "SELECT COUNT() FROM Contact", 1),
        api(21, "2025-06-10T09:10:00.000+0000",
            "SELECT Id, Name, Email, MailingAddress FROM Contact WHERE MailingCountry = 'KR'", 2,
            [contact(1), contact(2)]),
        api(22, "2025-06-10T09:12:00.000+0000",
            "SELECT Id, Phone FROM Contact ORDER BY Total_Purchases__c DESC NULLS LAST LIMIT 3", 3),
        api(23, "2025-06-10T09:15:00.000+0000", "SELECT Id, Subject, Description FROM Case", 2),
    ]  # fmt: skip
    bulk = _sf("BulkApiResultEventStore", 1, EventDate="2025-06-10T09:20:00.000+0000",
               Username=ANNA, UserId=ANNA_ID, SourceIp=ATTACKER_IP, LoginKey="LK-ATT",
               SessionKey="S-LK-ATT", JobId="750000000000001AAA",
               Query="SELECT Id, Email, Customer_Number__c FROM Contact "
                     "WHERE MailingCountry IN ('US', 'United States', 'JP')")  # fmt: skip
    grant = {"attributes": {"type": "OauthToken"}, "Id": "0CJ000000000001AAA", "AppName": APP,
             "UserId": ANNA_ID, "CreatedDate": "2025-06-10T08:55:00.000+0000", "UseCount": 3,
             "LastUsedDate": "2025-06-10T09:10:00.000+0000"}  # fmt: skip
    files = (("LoginEvent", logins), ("ApiEvent", calls), ("OauthToken", [grant]),
             ("BulkApiResultEventStore", [bulk]))  # fmt: skip
    for name, records in files:
        (out / f"{name}.json").write_text(json.dumps({"totalSize": len(records), "done": True,
                                                      "records": records}))  # fmt: skip
    return out


def okta_event(uuid: str, ts: str, event_type: str, user: str, ip: str) -> dict:
    """One Okta System Log LogEvent with the fields crmwatch reads."""
    return {"uuid": uuid, "published": ts, "eventType": event_type, "severity": "INFO",
            "displayMessage": event_type, "actor": {"id": "00u1anna", "type": "User",
            "alternateId": user, "displayName": "Anna K"},
            "client": {"ipAddress": ip, "userAgent": {"rawUserAgent": "Mozilla/5.0"}},
            "outcome": {"result": "SUCCESS"},
            "authenticationContext": {"rootSessionId": "okta-root-1"}, "target": []}  # fmt: skip


# Payloads for the console's escaping tests: markup that runs if a page pastes it unescaped, a
# script URL, and a right-to-left override that reverses what follows it on screen.
HOSTILE_UA = 'Chrome 125 "><img src=x onerror=alert(1)> \u202egnp.exe'
HOSTILE_SOQL = (
    "SELECT Id, Subject, Description FROM Case WHERE Subject != '<script>alert(1)</script>'"
)
HOSTILE_APP = "javascript:alert(1)//"
HOSTILE_FILE = "ApiEvent <img src=x onerror=alert(2)>.json"


def write_hostile_breach(out: Path) -> Path:
    """The same story two months later (August, so it joins no incident of a June demo org
    using the same app), with the attacker's user agent, the case query, the count's client
    app and the API log's file name carrying the payloads above (the replay is unchanged:
    no case has that subject)."""
    write_breach(out)
    for path in out.glob("*.json"):
        path.write_text(path.read_text().replace('"2025-06-', '"2025-08-'))
    logins = json.loads((out / "LoginEvent.json").read_text())
    for r in logins["records"]:
        if r["LoginKey"] == "LK-ATT":
            r["Browser"] = HOSTILE_UA
    (out / "LoginEvent.json").write_text(json.dumps(logins))
    api = json.loads((out / "ApiEvent.json").read_text())
    for r in api["records"]:
        if r["EventIdentifier"] == "ApiEvent-0023":
            r["Query"] = HOSTILE_SOQL
        if r["EventIdentifier"] == "ApiEvent-0020":
            r["Application"] = r["Client"] = HOSTILE_APP
    (out / "ApiEvent.json").unlink()
    (out / HOSTILE_FILE).write_text(json.dumps(api))
    return out
