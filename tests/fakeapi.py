"""A loopback server speaking the Okta System Log and Salesforce REST shapes the connectors
use, serving a simulated org's log files: what the tests pull from.

It answers as the documented APIs do — Okta: ``GET /api/v1/logs`` with ``since`` /
``sortOrder`` / ``limit`` / ``after``, a ``Link: <…>; rel="next"`` on every page of a polling
request, 429 with ``X-Rate-Limit-Reset``; Salesforce: the OAuth token endpoint (client
credentials, JWT bearer), ``describe``, ``query`` with ``nextRecordsUrl`` paging,
``EventLogFile`` records and their ``LogFile`` blobs, ``Sforce-Limit-Info`` — and can be told
to fail the next matching requests (429, 500, a body cut short, a connection dropped).
Log files are sent from disk with ``sendfile``, so a test can measure the client's memory
without the server's (both run in the test's process).
Its SOQL understanding is limited to the queries the connector writes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

OKTA_TOKEN = "test-okta-token"
SF_SECRET = "test-sf-secret"
SF_CLIENT = "3MVGtestclient"


def _when(text: str) -> dt.datetime:
    t = text.replace("Z", "+00:00")
    t = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", t)
    return dt.datetime.fromisoformat(t).astimezone(dt.UTC).replace(tzinfo=None)


@dataclass
class Fault:
    match: str  # a regular expression on the request path
    # 429 | 500 | 503 | 401 | truncate (a whole answer of a few bytes) | short (the real answer,
    # its Content-Length whole, cut off half-way) | drop | redirect:URL
    kind: str
    times: int = 1


@dataclass
class FakeApi:
    org: Path
    page: int = 200  # records per page (Okta's limit is honoured below it)
    public_key: str | None = None  # PEM to check JWT assertions with
    api_used: int = 0
    api_limit: int = 15000
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    kill_after: tuple[str, int] | None = None  # (path regex, n): stop answering after n hits

    def __post_init__(self) -> None:
        logs = self.org / "logs"
        okta_file = logs / "okta" / "system_log.ndjson"
        self.okta = sorted(
            (
                json.loads(line)
                for line in (okta_file.open() if okta_file.exists() else [])
                if line.strip()
            ),
            key=lambda e: (e["published"], e["uuid"]),
        )
        self.objects: dict[str, list[dict]] = {}
        for path in sorted((logs / "salesforce" / "objects").glob("*.json")) + sorted(
            logs.glob("OauthToken.json")
        ):
            self.objects[path.stem] = json.loads(path.read_text())["records"]
        self.elf = []
        for i, path in enumerate(sorted((logs / "salesforce" / "elf").glob("*.csv"))):
            day, event_type = path.stem.split("_", 1)
            self.elf.append(
                {
                    "attributes": {"type": "EventLogFile"},
                    "Id": f"0AT{i:012d}AAA",
                    "EventType": event_type,
                    "LogDate": f"{day}T00:00:00.000+0000",
                    "Interval": "Daily",
                    "Sequence": 1,
                    "LogFileLength": path.stat().st_size,
                    "CreatedDate": (
                        dt.datetime.fromisoformat(day) + dt.timedelta(days=1, hours=2)
                    ).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
                    "_path": str(path),
                }
            )
        self.cursors: dict[str, list[dict]] = {}
        self.hits: dict[str, int] = {}
        # what containment reads and changes
        self.user_logins: dict[str, dict] = {}  # UserId -> {"Id", "IsFrozen"}
        self.sessions: list[dict] = []  # {"Id", "UsersId"}
        self.okta_users: dict[str, str] = {}  # login -> Okta user id
        self.mutations: list[tuple[str, str, str]] = []  # (method, path, body)

    # --- lifecycle ---

    def start(self) -> str:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                api.handle(self, "GET")

            def do_POST(self) -> None:
                api.handle(self, "POST")

            def do_PATCH(self) -> None:
                api.handle(self, "PATCH")

            def do_DELETE(self) -> None:
                api.handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.base

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- dispatch ---

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        self.requests.append((method, h.path))
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if method in ("POST", "PATCH") else b""
        short = False
        for f in self.faults:
            if f.times and re.search(f.match, parts.path):
                f.times -= 1
                if f.kind != "short":
                    return self._fault(h, f.kind)
                short = True
                break
        try:
            status, headers, payload = self.route(
                method, parts.path, parse_qs(parts.query), h.headers, body
            )
        except PermissionError:
            status, headers, payload = 401, {}, b'[{"errorCode": "INVALID_SESSION_ID"}]'
        except LookupError as e:
            status, headers, payload = 404, {}, json.dumps({"error": str(e)}).encode()
        length = payload.stat().st_size if isinstance(payload, Path) else len(payload)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(length))
        h.end_headers()
        if short:  # what arrives is half of what Content-Length promised
            h.close_connection = True
            length //= 2
        if isinstance(payload, Path):
            with payload.open("rb") as f:
                h.connection.sendfile(f, count=length)
        else:
            h.wfile.write(payload[:length])
        if short:
            h.connection.shutdown(2)

    def _fault(self, h: BaseHTTPRequestHandler, kind: str) -> None:
        if kind == "drop":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if kind == "truncate":
            payload = b'[{"uuid": "cut-'
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            h.wfile.write(payload)
            return
        if kind.startswith("redirect:"):  # a 302 to another host
            h.send_response(302)
            h.send_header("Location", kind.removeprefix("redirect:"))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        code = int(kind)
        h.send_response(code)
        if code == 429:
            h.send_header("X-Rate-Limit-Limit", "120")
            h.send_header("X-Rate-Limit-Remaining", "0")
            h.send_header("X-Rate-Limit-Reset", str(int(time.time())))
        h.send_header("Content-Length", "2")
        h.end_headers()
        h.wfile.write(b"{}")

    def route(self, method, path, query, headers, body):
        if method in ("PATCH", "DELETE") or path.startswith(
            ("/api/v1/users", "/services/oauth2/revoke")
        ):
            return self.contain(method, path, headers, body)
        if path == "/api/v1/logs":
            self._auth(headers, (f"SSWS {OKTA_TOKEN}", "Bearer okta-access"))
            return self.okta_logs(query)
        if path == "/oauth2/v1/token":
            return self.okta_token(parse_qs(body.decode()))
        if path == "/services/oauth2/token":
            return self.sf_token(parse_qs(body.decode()))
        m = re.fullmatch(r"/services/data/v[\d.]+/(.+)", path)
        if not m:
            raise LookupError(path)
        self._auth(headers, ("Bearer sf-access",))
        self.api_used += 1
        limit = {
            "Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_limit}",
            "Content-Type": "application/json",
        }
        rest = m[1]
        if rest == "query" and " ORDER BY " not in unquote(query["q"][0]):
            return 200, limit, json.dumps(self.lookup(unquote(query["q"][0]))).encode()
        if rest == "query":
            records = self.soql(unquote(query["q"][0]))
            return 200, limit, self._page(records, 0)
        if rest.startswith("query/"):
            cursor, offset = rest.removeprefix("query/").rsplit("-", 1)
            return 200, limit, self._page(self.cursors[cursor], int(offset), cursor)
        d = re.fullmatch(r"sobjects/(\w+)/describe", rest)
        if d:
            names: dict[str, None] = {}
            for r in self.objects.get(d[1], []):
                names.update(dict.fromkeys(k for k in r if k != "attributes"))
            if not names:
                raise LookupError(d[1])
            fields = [{"name": n, "type": "string"} for n in names]
            return 200, limit, json.dumps({"name": d[1], "fields": fields}).encode()
        f = re.fullmatch(r"sobjects/EventLogFile/(\w+)/LogFile", rest)
        if f:
            rec = next(r for r in self.elf if r["Id"] == f[1])
            return 200, {**limit, "Content-Type": "text/csv"}, Path(rec["_path"])
        raise LookupError(rest)

    def _auth(self, headers, accepted) -> None:
        if headers.get("Authorization") not in accepted:
            raise PermissionError

    # --- Okta ---

    def okta_logs(self, q):
        limit = min(int(q.get("limit", ["100"])[0]), self.page)
        if "after" in q:
            start = int(q["after"][0])
        else:
            since = _when(q["since"][0])
            start = next(
                (i for i, e in enumerate(self.okta) if _when(e["published"]) >= since),
                len(self.okta),
            )
        events = self.okta[start : start + limit]
        nxt = f"{self.base}/api/v1/logs?after={start + len(events)}&limit={limit}"
        headers = {
            "Content-Type": "application/json",
            "Link": f'<{self.base}/api/v1/logs?after={start}&limit={limit}>; rel="self", '
            f'<{nxt}>; rel="next"',
        }
        return 200, headers, json.dumps(events).encode()

    def okta_token(self, form):
        assertion = form.get("client_assertion", [""])[0]
        claims = jwt.decode(
            assertion,
            self.public_key,
            algorithms=["RS256"],
            audience=f"{self.base}/oauth2/v1/token",
        )
        if claims["iss"] != claims["sub"] or form.get("scope") != ["okta.logs.read"]:
            raise PermissionError
        return (
            200,
            {},
            json.dumps(
                {"access_token": "okta-access", "token_type": "Bearer", "expires_in": 3600}
            ).encode(),
        )

    # --- Salesforce ---

    def sf_token(self, form):
        grant = form.get("grant_type", [""])[0]
        if grant == "client_credentials":
            if form.get("client_id") != [SF_CLIENT] or form.get("client_secret") != [SF_SECRET]:
                return 400, {}, b'{"error": "invalid_client"}'
        elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            claims = jwt.decode(
                form["assertion"][0], self.public_key, algorithms=["RS256"], audience=self.base
            )
            if claims["iss"] != SF_CLIENT or not claims.get("sub"):
                return 400, {}, b'{"error": "invalid_grant"}'
        else:
            return 400, {}, b'{"error": "unsupported_grant_type"}'
        return (
            200,
            {},
            json.dumps(
                {"access_token": "sf-access", "instance_url": self.base, "token_type": "Bearer"}
            ).encode(),
        )

    def soql(self, text: str) -> list[dict]:
        m = re.fullmatch(r"SELECT (.+?) FROM (\w+)(?: WHERE (.+?))? ORDER BY (\w+), (\w+)", text)
        if not m:
            raise LookupError(f"unsupported SOQL: {text}")
        fields = [f.strip() for f in m[1].split(",")]
        obj, where, tf, idf = m[2], m[3] or "", m[4], m[5]
        rows = self.elf if obj == "EventLogFile" else self.objects.get(obj, [])
        lo = re.search(r"(\w+) >= (\S+Z)", where)
        hw = re.search(
            r"\((\w+) > (\S+Z) OR \(\w+ = \S+Z AND (\w+) > '((?:[^'\\]|\\.)*)'\)\)", where
        )
        interval = re.search(r"Interval = '(\w+)'", where)

        def keep(r: dict) -> bool:
            t = _when(r[tf])
            if lo and t < _when(lo[2]):
                return False
            if hw:
                mark = _when(hw[2])
                if t < mark or (t == mark and r[idf] <= hw[4]):
                    return False
            return not (interval and r.get("Interval") != interval[1])

        out = sorted((r for r in rows if keep(r)), key=lambda r: (_when(r[tf]), r[idf]))
        return [{"attributes": r["attributes"], **{f: r[f] for f in fields if f in r}} for r in out]

    def _page(self, records: list[dict], offset: int, cursor: str | None = None) -> bytes:
        if cursor is None:
            cursor = f"01g{len(self.cursors):06d}"
            self.cursors[cursor] = records
        chunk = records[offset : offset + self.page]
        done = offset + len(chunk) >= len(records)
        body = {"totalSize": len(records), "done": done, "records": chunk}
        if not done:
            body["nextRecordsUrl"] = f"/services/data/v62.0/query/{cursor}-{offset + len(chunk)}"
        return json.dumps(body).encode()

    # --- what containment reads and changes ---

    def lookup(self, text: str) -> dict:
        """``SELECT … FROM UserLogin | AuthSession | OauthToken WHERE A = 'x' [AND B = 'y']``"""
        m = re.fullmatch(r"SELECT (.+?) FROM (\w+) WHERE (.+)", text)
        if not m:
            raise LookupError(f"unsupported SOQL: {text}")
        where = dict(re.findall(r"(\w+) = '((?:[^'\\]|\\.)*)'", m[3]))

        def same(a: str | None, b: str | None) -> bool:  # SOQL takes 15- or 18-character ids
            return bool(a and b) and (a == b or (len(a) in (15, 18) and a[:15] == b[:15]))

        if m[2] == "UserLogin":
            rows = [r for uid, r in self.user_logins.items() if same(uid, where.get("UserId"))]
        elif m[2] == "AuthSession":
            rows = [r for r in self.sessions if same(r["UsersId"], where.get("UsersId"))]
        elif m[2] == "OauthToken":
            rows = [
                {"Id": r["Id"], "DeleteToken": f"del-{r['Id']}"}
                for r in self.objects.get("OauthToken", [])
                if r.get("AppName") == where.get("AppName")
                and same(r.get("UserId"), where.get("UserId"))
            ]
        else:
            raise LookupError(m[2])
        return {"totalSize": len(rows), "done": True, "records": rows}

    def contain(self, method, path, headers, body):
        text = body.decode()
        if path.startswith("/api/v1/users"):
            self._auth(headers, (f"SSWS {OKTA_TOKEN}", "Bearer okta-access"))
            login = unquote(path.removeprefix("/api/v1/users/"))
            if method == "GET":
                if login not in self.okta_users:
                    raise LookupError(login)
                return 200, {}, json.dumps({"id": self.okta_users[login]}).encode()
        else:
            self._auth(headers, ("Bearer sf-access",))
        self.mutations.append((method, path, text))
        m = re.search(r"/sobjects/UserLogin/(\w+)$", path)
        if m and method == "PATCH":
            for r in self.user_logins.values():
                if r["Id"] == m[1]:
                    r.update(json.loads(text))
            return 204, {}, b""
        m = re.search(r"/sobjects/AuthSession/(\w+)$", path)
        if m and method == "DELETE":
            self.sessions = [r for r in self.sessions if r["Id"] != m[1]]
            return 204, {}, b""
        return 200, {"Content-Type": "application/json"}, b"{}"
