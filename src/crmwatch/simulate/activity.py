"""Emitters for every record the simulated org's logs hold, in the sources' own shapes.

Each method appends one record (or the few records one action leaves: a bulk job's state
changes, an API call's EventLogFile row and its stored ApiEvent) and returns references to
them — ``(source, key, value)`` with the native unique id — so scenarios can name their
malicious events in the ground truth without knowing how crmwatch hashes event ids.

Shapes follow the references in docs/sources.md: EventLogFile column sets (Login from
elastic/beats' captured file; API, RestApi, URI, ReportExport from the Azure-Sentinel sample;
BulkApi2 from the ELF field reference), Salesforce object records as the REST query API returns
them, and Okta's LogEvent object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field

from crmwatch.simulate.volume import COMMON, HEADERS
from crmwatch.simulate.world import DOMAIN, ORG_ID

Ref = tuple[str, str, str]  # (source_type prefix, native key, value)

ELF_HEADERS: dict[str, tuple[str, ...]] = {
    **HEADERS,
    "ReportExport": (
        *COMMON,
        "URI",
        "SESSION_KEY",
        "LOGIN_KEY",
        "CLIENT_INFO",
        "REPORT_DESCRIPTION",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
        "URI_ID_DERIVED",
    ),
    "Report": (
        *COMMON,
        "URI",
        "SESSION_KEY",
        "LOGIN_KEY",
        "REQUEST_STATUS",
        "DB_TOTAL_TIME",
        "ENTITY_NAME",
        "DISPLAY_TYPE",
        "RENDERING_TYPE",
        "REPORT_ID",
        "ROW_COUNT",
        "NUMBER_EXCEPTION_FILTERS",
        "NUMBER_COLUMNS",
        "AVERAGE_ROW_SIZE",
        "SORT",
        "DB_BLOCKS",
        "DB_CPU_TIME",
        "NUMBER_BUCKETS",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
        "URI_ID_DERIVED",
        "REPORT_ID_DERIVED",
        "ORIGIN",
    ),
    # Login As event type (EventLogFile field reference): the administrator in DELEGATED_*,
    # the user they act as in USER_ID.
    "LoginAs": (
        *COMMON,
        "SESSION_KEY",
        "LOGIN_KEY",
        "DELEGATED_USER_ID",
        "DELEGATED_USER_NAME",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "DELEGATED_USER_ID_DERIVED",
        "CLIENT_IP",
    ),
    "Logout": (
        "EVENT_TYPE",
        "TIMESTAMP",
        "REQUEST_ID",
        "ORGANIZATION_ID",
        "USER_ID",
        "USER_TYPE",
        "SESSION_TYPE",
        "SESSION_LEVEL",
        "BROWSER_TYPE",
        "PLATFORM_TYPE",
        "RESOLUTION_TYPE",
        "APP_TYPE",
        "CLIENT_VERSION",
        "API_TYPE",
        "API_VERSION",
        "USER_INITIATED_LOGOUT",
        "SESSION_KEY",
        "LOGIN_KEY",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
    ),
}

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def sf_id(prefix: str, n: int) -> str:
    """An 18-character Salesforce id: key prefix, a 12-character body, and its checksum."""
    body = ""
    for _ in range(12):
        n, r = divmod(n, 62)
        body = _B62[r] + body
    return id18(prefix + body)


def id18(id15: str) -> str:
    """The 18-character form of a 15-character id: one suffix character per 5-character
    chunk, encoding which of its characters are upper case (Salesforce's case-insensitive
    id form, as the ``CASESAFEID`` formula computes it)."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        suffix += _SUFFIX[bits]
    return id15 + suffix


@dataclass
class User:
    """An employee or integration user, as Salesforce and Okta know them."""

    n: int
    first: str
    last: str
    country: str
    role: str  # advisor | manager | admin | integration
    office_ip: str
    home_ip: str
    okta_id: str
    user_agent: str
    sf_id: str = ""

    @property
    def username(self) -> str:
        return f"{self.first}.{self.last}@{DOMAIN}".lower().replace(" ", "")

    @property
    def id15(self) -> str:
        return self.sf_id[:15]


@dataclass
class Log:
    """Everything the org logged, grouped the way the files will be written."""

    seed: int
    elf: dict[tuple[str, dt.date], list[dict]] = field(default_factory=lambda: defaultdict(list))
    objects: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    okta: list[dict] = field(default_factory=list)
    # (username, ISO date) → the noise sources that shaped that person's day (realistic mode)
    noise: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    _n: int = 0

    def label(self, user: User, ts: dt.datetime | dt.date, source: str) -> None:
        """Record that ``source`` shaped ``user``'s activity on that (UTC) day."""
        day = ts.date() if isinstance(ts, dt.datetime) else ts
        self.noise[(user.username, day.isoformat())].add(source)

    def _next(self, what: str) -> str:
        self._n += 1
        return hashlib.sha256(f"{self.seed}/{what}/{self._n}".encode()).hexdigest()

    def key(self, length: int = 16) -> str:
        """A session or login key, Salesforce-style (base64-ish, 16 characters)."""
        h = self._next("key")
        return "".join(_B62[int(h[i : i + 2], 16) % 62] for i in range(0, 2 * length, 2))

    # --- EventLogFile ---

    def _elf(self, etype: str, ts: dt.datetime, user: User, ip: str, **cols: object) -> Ref:
        rid = "4" + self.key(21)
        header = ELF_HEADERS[etype]
        unknown = set(cols) - set(header)
        if unknown:
            raise ValueError(f"{etype} has no column {sorted(unknown)[0]}")
        row = {
            "EVENT_TYPE": etype,
            "TIMESTAMP": ts.strftime("%Y%m%d%H%M%S.") + f"{ts.microsecond // 1000:03d}",
            "REQUEST_ID": rid,
            "ORGANIZATION_ID": ORG_ID,
            "USER_ID": user.id15,
            "USER_ID_DERIVED": user.sf_id,
            "TIMESTAMP_DERIVED": ts.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{ts.microsecond // 1000:03d}Z",
            "CLIENT_IP": ip,
            "RUN_TIME": str(40 + self._n % 300),
            "CPU_TIME": str(10 + self._n % 90),
            **{k: "" if v is None else str(v) for k, v in cols.items()},
        }
        self.elf[(etype, ts.date())].append({k: v for k, v in row.items() if k in header})
        return ("elf", "REQUEST_ID", rid)

    def login(
        self,
        ts: dt.datetime,
        user: User,
        ip: str,
        key: str,
        session: str,
        *,
        ok: bool = True,
        ua: str | None = None,
        login_type: str = "SAML Sfdc Initiated SSO",
        uri: str = "/saml/SSO",
        amr: str = "",
        app: str | None = None,
    ) -> list[Ref]:
        """A Salesforce sign-in: its Login EventLogFile row and its LoginHistory record."""
        ref = self._elf(
            "Login", ts, user, ip, URI=uri, SESSION_KEY=session if ok else "", LOGIN_KEY=key,
            USER_TYPE="Standard", REQUEST_STATUS="S" if ok else "F", LOGIN_TYPE=login_type,
            BROWSER_TYPE=ua or user.user_agent, API_TYPE="", API_VERSION="",
            USER_NAME=user.username, TLS_PROTOCOL="TLSv1.3", CIPHER_SUITE="TLS_AES_256_GCM_SHA384",
            AUTHENTICATION_METHOD_REFERENCE=amr, LOGIN_SUB_TYPE="",
            LOGIN_STATUS="LOGIN_NO_ERROR" if ok else "LOGIN_ERROR_INVALID_PASSWORD",
            SOURCE_IP=ip, URI_ID_DERIVED="",
        )  # fmt: skip
        hid = sf_id("0Ya", int(self._next("loginhistory")[:10], 16))
        self.objects["LoginHistory"].append({
            "attributes": {"type": "LoginHistory"}, "Id": hid, "UserId": user.sf_id,
            "LoginTime": _sf_time(ts), "LoginType": login_type, "SourceIp": ip,
            "LoginUrl": "maison.my.salesforce.com", "Browser": _browser(ua or user.user_agent),
            "Platform": "Unknown", "Status": "Success" if ok else "Invalid Password",
            "Application": app or ("Browser" if uri.startswith("/saml") else "N/A"),
            "ApiType": "N/A", "ApiVersion": "N/A", "TlsProtocol": "TLS 1.3",
            "CipherSuite": "TLS_AES_256_GCM_SHA384", "AuthenticationServiceId": None,
        })  # fmt: skip
        return [ref, ("api:LoginHistory", "Id", hid)]

    def edit(
        self, ts: dt.datetime, user: User, ip: str, key: str, session: str, obj: str, record_id: str
    ) -> Ref:
        """A record saved from the mobile app: a REST PATCH."""
        return self._elf(
            "RestApi", ts, user, ip, URI=f"/services/data/v62.0/sobjects/{obj}/{record_id}",
            SESSION_KEY=session, LOGIN_KEY=key, REQUEST_STATUS="S", METHOD="PATCH",
            MEDIA_TYPE="application/json", STATUS_CODE=204, USER_AGENT=9999, ROWS_PROCESSED=1,
            ENTITY_NAME=obj, URI_ID_DERIVED=record_id,
        )  # fmt: skip

    def rest_get(
        self, ts: dt.datetime, user: User, ip: str, key: str, session: str, *, uri: str,
        obj: str, rows: int,
    ) -> Ref:  # fmt: skip
        """A REST read, as the mobile app makes them (UI API record and list requests)."""
        return self._elf(
            "RestApi", ts, user, ip, URI=uri, SESSION_KEY=session, LOGIN_KEY=key,
            REQUEST_STATUS="S", METHOD="GET", MEDIA_TYPE="application/json", STATUS_CODE=200,
            USER_AGENT=9999, ROWS_PROCESSED=rows, ENTITY_NAME=obj, URI_ID_DERIVED="",
        )  # fmt: skip

    def login_as(
        self, ts: dt.datetime, admin: User, target: User, ip: str, key: str, session: str
    ) -> list[Ref]:
        """An administrator logging in as another user: the LoginAs EventLogFile row and the
        setup audit entry Salesforce writes for it."""
        ref = self._elf(
            "LoginAs", ts, target, ip, SESSION_KEY=session, LOGIN_KEY=key,
            DELEGATED_USER_ID=admin.id15, DELEGATED_USER_ID_DERIVED=admin.sf_id,
            DELEGATED_USER_NAME=admin.username,
        )  # fmt: skip
        audit = self.setup_change(
            ts, admin, "suOrgAdminLogin", "Manage Users",
            f"Logged in using Login-As access for {target.username}", delegate=admin.username,
        )  # fmt: skip
        return [ref, audit]

    def describe(
        self, ts: dt.datetime, user: User, ip: str, key: str, session: str, *, method: str,
        obj: str, app: str,
    ) -> Ref:  # fmt: skip
        """A SOAP describe call (describeGlobal, describeSObjects), as tools make on start."""
        return self._elf(
            "API", ts, user, ip, SESSION_KEY=session, LOGIN_KEY=key, REQUEST_STATUS="S",
            API_TYPE="P", API_VERSION="62.0", CLIENT_NAME=app, METHOD_NAME=method,
            ENTITY_NAME=obj, ROWS_PROCESSED=0, REQUEST_SIZE=300, RESPONSE_SIZE=90_000,
            URI_ID_DERIVED="",
        )  # fmt: skip

    def report_run(
        self, ts: dt.datetime, user: User, ip: str, key: str, session: str, *, report_id: str,
        obj: str, rows: int,
    ) -> Ref:  # fmt: skip
        """A report run on screen (not exported)."""
        return self._elf(
            "Report", ts, user, ip, URI=f"/{report_id}", SESSION_KEY=session, LOGIN_KEY=key,
            REQUEST_STATUS="S", ENTITY_NAME=obj, DISPLAY_TYPE="D", RENDERING_TYPE="W",
            REPORT_ID=report_id[:15], ROW_COUNT=rows, NUMBER_COLUMNS=6,
            REPORT_ID_DERIVED=report_id, ORIGIN="ReportRunFromLightning",
        )  # fmt: skip

    def logout(
        self, ts: dt.datetime, user: User, ip: str, key: str, session: str, ua: str | None = None
    ) -> Ref:
        return self._elf(
            "Logout",
            ts,
            user,
            ip,
            USER_TYPE="Standard",
            SESSION_TYPE="UI",
            SESSION_LEVEL="STANDARD",
            BROWSER_TYPE=ua or user.user_agent,
            USER_INITIATED_LOGOUT="1",
            SESSION_KEY=session,
            LOGIN_KEY=key,
        )

    def view(
        self, ts: dt.datetime, user: User, ip: str, key: str, session: str, obj: str, record_id: str
    ) -> Ref:
        page = f"https://maison.lightning.force.com/lightning/r/{obj}/{record_id}/view"
        return self._elf(
            "URI",
            ts,
            user,
            ip,
            URI="/aura",
            SESSION_KEY=session,
            LOGIN_KEY=key,
            REQUEST_STATUS="S",
            DB_TOTAL_TIME=str(2_000_000 + self._n % 900_000),
            REFERRER_URI=page,
            URI_ID_DERIVED="",
        )

    def api_call(
        self,
        ts: dt.datetime,
        user: User,
        ip: str,
        key: str,
        session: str,
        *,
        query: str,
        obj: str,
        rows: int,
        app: str,
        ua: str,
        records: list[str] | None = None,
    ) -> list[Ref]:
        """A SOQL query through the API: its API EventLogFile row and its stored ApiEvent."""
        refs = [
            self._elf(
                "API",
                ts,
                user,
                ip,
                SESSION_KEY=session,
                LOGIN_KEY=key,
                REQUEST_STATUS="S",
                API_TYPE="R",
                API_VERSION="62.0",
                CLIENT_NAME=app,
                METHOD_NAME="query",
                ENTITY_NAME=obj,
                ROWS_PROCESSED=rows,
                REQUEST_SIZE=len(query),
                RESPONSE_SIZE=rows * 180,
                URI_ID_DERIVED="",
            )
        ]
        refs.append(
            self.api_event(
                ts,
                user,
                ip,
                key,
                session,
                query=query,
                obj=obj,
                rows=rows,
                app=app,
                ua=ua,
                records=records,
            )
        )
        return refs

    def bulk_job(
        self,
        ts: dt.datetime,
        user: User,
        ip: str,
        key: str,
        session: str,
        *,
        query: str,
        obj: str,
        rows: int,
        ua: str,
        delete_after: float | None = None,
    ) -> tuple[list[Ref], dt.datetime]:
        """A Bulk API 2.0 query job: its state rows, its result event (with the query), and
        optionally its deletion. Returns the refs and the completion time."""
        n = int(self._next("job")[:10], 16)
        job = sf_id("750", n)[:15]
        done = ts + dt.timedelta(seconds=20 + rows // 2000)
        common = {
            "SESSION_KEY": session,
            "LOGIN_KEY": key,
            "JOB_ID": job,
            "ENTITY_TYPE": obj,
            "OPERATION_TYPE": "query",
        }
        refs = [
            self._elf(
                "BulkApi2", ts, user, ip, JOB_STATUS="UploadComplete", ROWS_PROCESSED=0, **common
            )
        ]
        refs.append(
            self._elf(
                "BulkApi2", done, user, ip, JOB_STATUS="JobComplete", ROWS_PROCESSED=rows, **common
            )
        )
        eid = self.event_identifier()
        self.objects["BulkApiResultEventStore"].append(
            {
                "attributes": {"type": "BulkApiResultEventStore"},
                "EventIdentifier": eid,
                "EventDate": _sf_time(done + dt.timedelta(seconds=2)),
                "JobId": job,
                "Query": query,
                "Username": user.username,
                "UserId": user.sf_id,
                "SourceIp": ip,
                "LoginKey": key,
                "SessionKey": session,
                "UserAgent": ua,
            }
        )
        refs.append(("api:BulkApiResultEventStore", "EventIdentifier", eid))
        if delete_after is not None:
            gone = done + dt.timedelta(seconds=delete_after)
            refs.append(
                self._elf(
                    "BulkApi2", gone, user, ip, JOB_STATUS="Deleted", ROWS_PROCESSED=0, **common
                )
            )
        return refs, done

    def report_export(
        self,
        ts: dt.datetime,
        user: User,
        ip: str,
        key: str,
        session: str,
        *,
        report: str,
        columns: list[tuple[str, str]],
        obj: str,
        records: list[str],
        report_id: str | None = None,
    ) -> list[Ref]:
        """A report exported to CSV: the ReportExport EventLogFile row (columns in
        REPORT_DESCRIPTION) and the stored ReportEvent (column labels and record ids). A
        team's recurring report keeps its ``report_id``; without one, a report of its own."""
        report_id = report_id or sf_id("00O", int(self._next("report")[:8], 16))
        meta = {
            "reportMetadata": {
                "name": report,
                "id": report_id,
                "detailColumns": [c for c, _ in columns],
                "reportType": {"type": f"{obj}List", "label": obj},
                "reportFormat": "TABULAR",
            }
        }
        desc = (
            "?jsonFormat=api&isdtp=p1&enc=UTF-8&skipFooter=true&lexExport=true&export=Export"
            "&xf=csv&runReportJson=" + urllib.parse.quote(json.dumps(meta))
        )
        refs = [
            self._elf(
                "ReportExport",
                ts,
                user,
                ip,
                URI=f"/{report_id}",
                SESSION_KEY=session,
                LOGIN_KEY=key,
                CLIENT_INFO=user.user_agent,
                REPORT_DESCRIPTION=desc,
                URI_ID_DERIVED=report_id,
            )
        ]
        eid = self.event_identifier()
        self.objects["ReportEvent"].append(
            {
                "attributes": {"type": "ReportEvent"},
                "EventIdentifier": eid,
                "EventDate": _sf_time(ts),
                "ReportId": report_id,
                "Name": report,
                "Username": user.username,
                "UserId": user.sf_id,
                "SourceIp": ip,
                "LoginKey": key,
                "SessionKey": session,
                "ExportFileFormat": "CSV",
                "Operation": "ReportExported",
                "QueriedEntities": obj,
                "RowsProcessed": len(records),
                "ColumnHeaders": "[" + ", ".join(label for _, label in columns) + "]",
                "Records": _records_json(obj, records),
            }
        )
        refs.append(("api:ReportEvent", "EventIdentifier", eid))
        return refs

    # --- stored event objects and setup records ---

    def event_identifier(self) -> str:
        h = self._next("event")
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    def api_event(
        self,
        ts: dt.datetime,
        user: User,
        ip: str,
        key: str,
        session: str,
        *,
        query: str,
        obj: str,
        rows: int,
        app: str,
        ua: str,
        records: list[str] | None = None,
    ) -> Ref:
        eid = self.event_identifier()
        rec = {
            "attributes": {"type": "ApiEvent"},
            "EventIdentifier": eid,
            "EventDate": _sf_time(ts),
            "Username": user.username,
            "UserId": user.sf_id,
            "SourceIp": ip,
            "LoginKey": key,
            "SessionKey": session,
            "Application": app,
            "Client": app,
            "UserAgent": ua,
            "ApiType": "REST API",
            "ApiVersion": 62.0,
            "Operation": "Query",
            "Query": query,
            "QueriedEntities": obj,
            "RowsProcessed": rows,
            "RowsReturned": rows,
            "SessionLevel": "STANDARD",
            "Records": None,
        }
        if records is not None:
            rec["Records"] = _records_json(obj, records)
        self.objects["ApiEvent"].append(rec)
        return ("api:ApiEvent", "EventIdentifier", eid)

    def oauth_token(
        self, ts: dt.datetime, user: User, app: str, last_used: dt.datetime, uses: int
    ) -> Ref:
        tid = sf_id("0CJ", int(self._next("token")[:10], 16))
        self.objects["OauthToken"].append(
            {
                "attributes": {"type": "OauthToken"},
                "Id": tid,
                "AppName": app,
                "UserId": user.sf_id,
                "CreatedDate": _sf_time(ts),
                "LastUsedDate": _sf_time(last_used),
                "UseCount": uses,
                "AppMenuItemId": None,
            }
        )
        return ("api:OauthToken", "Id", tid)

    def setup_change(
        self,
        ts: dt.datetime,
        user: User,
        action: str,
        section: str,
        display: str,
        delegate: str | None = None,
    ) -> Ref:
        sid = sf_id("0Ym", int(self._next("audit")[:10], 16))
        self.objects["SetupAuditTrail"].append(
            {
                "attributes": {"type": "SetupAuditTrail"},
                "Id": sid,
                "Action": action,
                "Section": section,
                "Display": display,
                "CreatedDate": _sf_time(ts),
                "CreatedById": user.sf_id,
                "CreatedBy": {"Username": user.username},
                "DelegateUser": delegate,
            }
        )
        return ("api:SetupAuditTrail", "Id", sid)

    def okta_event(
        self,
        ts: dt.datetime,
        user: User,
        event_type: str,
        ip: str,
        *,
        as_org: str,
        country: str,
        session: str,
        result: str = "SUCCESS",
        ua: str | None = None,
        target_app: str | None = None,
        reason: str | None = None,
    ) -> Ref:
        uuid = self.event_identifier()
        targets = []
        if target_app:
            targets.append(
                {
                    "id": "0oa1salesforce",
                    "type": "AppInstance",
                    "alternateId": "Salesforce",
                    "displayName": target_app,
                }
            )
        self.okta.append(
            {
                "uuid": uuid,
                "published": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
                "eventType": event_type,
                "version": "0",
                "severity": "INFO",
                "displayMessage": _OKTA_MESSAGES.get(event_type, event_type),
                "actor": {
                    "id": user.okta_id,
                    "type": "User",
                    "alternateId": user.username,
                    "displayName": f"{user.first} {user.last}",
                },
                "client": {
                    "ipAddress": ip,
                    "userAgent": {"rawUserAgent": ua or user.user_agent},
                    "zone": "null",
                    "device": "Computer",
                    "geographicalContext": {"country": country},
                },
                "outcome": {"result": result, "reason": reason},
                "authenticationContext": {"externalSessionId": session, "rootSessionId": session},
                "securityContext": {"asOrg": as_org, "isProxy": False},
                "target": targets,
            }
        )
        return ("okta", "uuid", uuid)


_OKTA_MESSAGES = {
    "user.session.start": "User login to Okta",
    "user.authentication.sso": "User single sign on to app",
    "user.authentication.auth_via_mfa": "Authentication of user via MFA",
    "user.mfa.factor.activate": "User set up MFA factor",
    "user.session.end": "User logout from Okta",
}


def _browser(ua: str) -> str:
    """LoginHistory's Browser: a name and major version, not the user-agent string."""
    if ua.startswith("SalesforceMobileSDK/"):
        return "Unknown"
    for name in ("Chrome", "Safari", "Firefox", "Edge"):
        if name + "/" in ua:
            return f"{name} {ua.split(name + '/')[-1].split('.')[0]}"
    return "Unknown"


def _sf_time(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}+0000"


def _records_json(obj: str, ids: list[str]) -> str:
    """The event's ``Records`` field: the returned ids in the REST query-result shape."""
    records = [{"attributes": {"type": obj}, "Id": r} for r in ids]
    return json.dumps({"totalSize": len(ids), "done": True, "records": records})
