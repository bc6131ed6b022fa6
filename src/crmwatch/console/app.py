"""The console's routes. Each handler asks the stage functions for what it shows and hands
it to a template; nothing here builds SQL, and request parameters are only ever values
(a page number, a filter compared in Python, a name looked up in a listing).

Handlers are ``async`` and call the store directly: DuckDB's connection is used by one
request at a time on the event loop, never from several threads at once.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

import anyio
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from crmwatch.connectors.state import last_pulls
from crmwatch.console import accounts, charts
from crmwatch.console.accounts import Session
from crmwatch.detect.rules import RuleFile, load_rules
from crmwatch.detect.testing import run_tests
from crmwatch.errors import UsageError
from crmwatch.evaluate import last_evaluation, rule_scores
from crmwatch.incidents import (
    Incident,
    activity,
    evidence_page,
    get_incident,
    incident_event,
    stored_incidents,
    timeline,
)
from crmwatch.markup import visible
from crmwatch.notify.package import StoredPackage, stored_package
from crmwatch.posture.results import on_path
from crmwatch.respond import contain
from crmwatch.schema import LEVELS
from crmwatch.scope.results import exposed_by_ref, exposed_page, stored_scope, verdict_page
from crmwatch.stats import ingest_health
from crmwatch.store import Store
from crmwatch.timeutil import parse_utc

SESSION_COOKIE = "crmwatch_session"
LOGIN_COOKIE = "crmwatch_login"  # the login form's CSRF token, before there is a session
PAGE = 50
TIMELINE_BINS = 60
VERDICTS = 200  # exposing events listed on the incident's page
# No script, no plugin, no frame, no form posting elsewhere: the console sends none, so a
# payload that slipped past escaping still could not run.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")  # fmt: skip
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    # same-origin: our own form posts carry our Origin (no-referrer would make it "null",
    # which cannot be told from a forged post); nothing is sent to other sites
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def _finalize(value: Any) -> Any:
    """Every ``{{ value }}``: control and direction characters shown as escapes, then
    escaped by autoescape (markup the templates build themselves passes through)."""
    if value is None:
        return ""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return visible(value)


def _when(value: Any) -> str:
    """A time as people read it here: ``2025-06-10 14:54:00 UTC``."""
    if value is None or value == "":
        return "-"
    t = value if isinstance(value, dt.datetime) else parse_utc(str(value))
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def _delay(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(abs(seconds))
    days, hours, minutes = s // 86400, s % 86400 // 3600, s % 3600 // 60
    text = (f"{days}d {hours}h" if days else f"{hours}h {minutes:02d}m" if hours
            else f"{minutes}m")  # fmt: skip
    return text


def _countdown(deadline: str | None, now: dt.datetime) -> str:
    if not deadline:
        return "-"
    left = (parse_utc(deadline) - now).total_seconds()
    return f"in {_delay(left)}" if left >= 0 else f"overdue by {_delay(left)}"


def _mask(record_id: str | None) -> str:
    """A Salesforce id as the console shows it by default: its object prefix (003 is a
    Contact) and four characters of its own, enough to tell rows apart, not to look one up."""
    if not record_id:
        return "-"
    # the last four of the 15-character id (an 18-character id ends in a case checksum)
    return f"{record_id[:3]}•••••{record_id[:15][-4:]}" if len(record_id) > 8 else "•••"


def _block(value: Any) -> Markup:
    """Text for a ``<pre>``: each line escaped like any value, the line breaks kept."""
    return Markup("\n").join(escape(visible(line)) for line in str(value).split("\n"))


def _environment() -> Environment:
    folder = resources.files("crmwatch.console") / "templates"
    env = Environment(loader=FileSystemLoader(str(folder)), autoescape=True,
                      finalize=_finalize)  # fmt: skip
    env.filters.update(url=lambda v: quote(str(v), safe=""), when=_when, delay=_delay,
                       mask=_mask, block=_block)  # fmt: skip
    env.globals.update(levels=LEVELS, countdown=lambda d: _countdown(d, _now()))
    return env


@dataclass
class Console:
    store: Store
    # the rules page's files (None: the built-in pack, loaded on first view)
    rules: list[RuleFile] | None
    secure_cookies: bool
    # Keys the ``ref`` of an exposed record (scope.results.exposed_page) and signs the
    # login form's token, for this run only.
    ref_key: str = ""

    def __post_init__(self) -> None:
        self.ref_key = secrets.token_hex(16)
        self.templates = Jinja2Templates(env=_environment())
        self.limiter = accounts.Limiter()
        # argon2 runs off the event loop, two at a time: a flood of logins queues there
        # instead of stopping every other page
        self.hashing = anyio.Semaphore(2)
        self._tests: dict[str, list] = {}

    def rule_files(self) -> list[RuleFile]:
        if self.rules is None:
            self.rules = load_rules(None, collect_errors=True)
        return self.rules

    # --- plumbing ---

    def page(self, request: Request, name: str, who: Session | None, status: int = 200,
             **context: Any) -> Response:  # fmt: skip
        return self.templates.TemplateResponse(
            request, name, {"who": who, "now": _now(), **context}, status_code=status
        )

    def who(self, request: Request) -> Session:
        s = accounts.session(self.store, request.cookies.get(SESSION_COOKIE))
        if s is None:
            raise HTTPException(303, headers={"location": "/login"})
        return s

    async def form(self, request: Request, who: Session) -> dict[str, str]:
        """The posted form, refused (403) unless it carries this session's CSRF token."""
        _same_origin(request)
        form = await request.form()
        if not _same(form.get("csrf"), who.csrf):
            raise HTTPException(403, "missing or wrong CSRF token")
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def login_token(self) -> str:
        """A login form's CSRF token: random, and signed, so a cookie set by another page on
        this host (another port shares its cookies) cannot be paired with a field it chose."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{hmac.new(self.ref_key.encode(), nonce.encode(), 'sha256').hexdigest()}"

    def login_token_ok(self, token: object, cookie: str) -> bool:
        if not isinstance(token, str) or not _same(token, cookie):
            return False
        nonce, _, mac = token.partition(".")
        good = hmac.new(self.ref_key.encode(), nonce.encode(), "sha256").hexdigest()
        return _same(mac, good)

    def incident(self, incident_id: str) -> Incident:
        try:
            return get_incident(self.store, incident_id)
        except UsageError as e:
            raise HTTPException(404, "no such incident") from e

    # --- pages ---

    async def login_form(self, request: Request) -> Response:
        token = self.login_token()
        resp = self.page(request, "login.html", None, csrf=token, failed=False)
        self._cookie(resp, LOGIN_COOKIE, token, 600)
        return resp

    async def login(self, request: Request) -> Response:
        _same_origin(request)
        form = await request.form()
        if not self.login_token_ok(form.get("csrf"), request.cookies.get(LOGIN_COOKIE, "")):
            raise HTTPException(403, "missing or wrong CSRF token")
        name, password = form.get("name"), form.get("password")
        if not isinstance(name, str) or not isinstance(password, str):
            raise HTTPException(400, "a name and a password are needed")
        remote = _remote(request)
        if self.limiter.blocked(remote, name):
            raise HTTPException(429, "too many failed logins: wait a minute")
        stored = accounts.password_hash(self.store, name)
        async with self.hashing:
            ok = await run_in_threadpool(accounts.verify, stored, password)
        if not ok:
            self.limiter.failed(remote, name)
            fresh = self.login_token()
            resp = self.page(request, "login.html", None, 401, csrf=fresh, failed=True)
            self._cookie(resp, LOGIN_COOKIE, fresh, 600)
            return resp
        self.limiter.clear(remote, name)
        resp = RedirectResponse("/incidents", status_code=303)
        self._cookie(resp, SESSION_COOKIE, accounts.open_session(self.store, name),
                     accounts.SESSION_HOURS * 3600)  # fmt: skip
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    async def logout(self, request: Request) -> Response:
        who = self.who(request)
        await self.form(request, who)
        accounts.log_out(self.store, request.cookies.get(SESSION_COOKIE, ""))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    def _cookie(self, resp: Response, name: str, value: str, age: int) -> None:
        resp.set_cookie(name, value, max_age=age, httponly=True, samesite="strict",
                        secure=self.secure_cookies, path="/")  # fmt: skip

    async def home(self, request: Request) -> Response:
        self.who(request)
        return RedirectResponse("/incidents", status_code=303)

    async def incidents(self, request: Request) -> Response:
        who = self.who(request)
        severity = request.query_params.get("severity", "")
        text = request.query_params.get("q", "").strip().lower()
        scoped_only = request.query_params.get("scoped") == "1"
        rows = []
        for i in stored_incidents(self.store):
            scope = stored_scope(self.store, i.id)
            pkg = stored_package(self.store, i.id)
            affected = scope["affected_customers"] if scope else None
            if severity in LEVELS and i.severity != severity:
                continue
            if text and not any(text in p.lower() for p in [*i.principals, *i.user_ids,
                                                             *i.apps, i.id]):  # fmt: skip
                continue
            if scoped_only and not affected:
                continue
            rows.append({"i": i, "affected": affected, "deadline": _nearest(pkg)})
        return self.page(request, "incidents.html", who, rows=rows, severity=severity,
                         q=request.query_params.get("q", ""), scoped=scoped_only)  # fmt: skip

    async def incident_page(self, request: Request) -> Response:
        who = self.who(request)
        i = self.incident(request.path_params["iid"])
        start, end = parse_utc(i.first_malicious_at), parse_utc(i.last_event_at)
        entries = timeline(self.store, i)
        alerts = [(parse_utc(e.ts), e.text) for e in entries if e.kind == "alert"]
        plot = charts.timeline_plot(activity(self.store, i, TIMELINE_BINS), TIMELINE_BINS,
                                    start, max(end, start + dt.timedelta(seconds=1)), alerts,
                                    parse_utc(i.first_alert_at))  # fmt: skip
        scope = stored_scope(self.store, i.id)
        pkg = stored_package(self.store, i.id)
        return self.page(
            request, "incident.html", who, i=i, plot=plot, entries=entries,
            evidence=evidence_page(self.store, i.id, 0, PAGE), page_size=PAGE,
            scope=scope, countries=charts.bar_chart(scope["by_country"]) if scope else None,
            states=charts.bar_chart(scope["by_us_state"]) if scope else None,
            categories=charts.bar_chart(scope["by_category"]) if scope else None,
            verdicts=verdict_page(self.store, i.id, 0, VERDICTS) if scope else [],
            pkg=pkg, obligations=_obligations(pkg), gaps=on_path(self.store, i),
            actions=contain.recorded(self.store, i.id),
        )  # fmt: skip

    async def evidence(self, request: Request) -> Response:
        who = self.who(request)
        i = self.incident(request.path_params["iid"])
        page = _page_number(request)
        pages = max(-(-i.events // PAGE), 1)
        if page > pages:
            raise HTTPException(404, f"there are {pages} pages")
        rows = evidence_page(self.store, i.id, (page - 1) * PAGE, PAGE)
        return self.page(request, "evidence.html", who, i=i, rows=rows, page=page,
                         pages=pages)  # fmt: skip

    async def event(self, request: Request) -> Response:
        who = self.who(request)
        i = self.incident(request.path_params["iid"])
        ev = incident_event(self.store, i.id, request.path_params["eid"])
        if ev is None:
            raise HTTPException(404, "no such event in this incident")
        # A log row can name customers (a query's Records, a URI's record id, a WHERE Id =):
        # masked like the customers page, unless the role may see them — then recorded.
        shown = {k: _mask_text(v) if not who.may_reveal else v for k, v in ev.items()}
        if who.may_reveal and any(_mask_text(v) != v for v in ev.values()):
            accounts.audit(self.store, who, "view event", i.id, ev["event_id"], _remote(request))
        return self.page(request, "event.html", who, i=i, ev=shown,
                         masked=not who.may_reveal)  # fmt: skip

    async def customers(self, request: Request, revealed: dict | None = None) -> Response:
        who = self.who(request)
        i = self.incident(request.path_params["iid"])
        scope = stored_scope(self.store, i.id)
        if scope is None:
            raise HTTPException(404, "this incident has not been scoped")
        page = _page_number(request)
        total = sum(scope["records_by_object"].values())
        if page > max(-(-total // PAGE), 1):
            raise HTTPException(404, "no such page")
        rows = exposed_page(self.store, i.id, self.ref_key, (page - 1) * PAGE, PAGE)
        return self.page(request, "customers.html", who, i=i, rows=rows, page=page,
                         pages=max(-(-total // PAGE), 1), total=total,
                         revealed=revealed)  # fmt: skip

    async def reveal(self, request: Request) -> Response:
        who = self.who(request)
        form = await self.form(request, who)
        if not who.may_reveal:
            raise HTTPException(403, f"the {who.role} role may not reveal customer identifiers")
        i = self.incident(request.path_params["iid"])
        record = exposed_by_ref(self.store, i.id, self.ref_key, form.get("ref", ""))
        if record is None:
            raise HTTPException(404, "no such record in this incident's scope")
        accounts.audit(self.store, who, f"reveal {record['object']}", i.id, record["record_id"],
                       _remote(request))  # fmt: skip
        return await self.customers(request, revealed=record)

    async def download(self, request: Request) -> Response:
        who = self.who(request)
        i = self.incident(request.path_params["iid"])
        kind, name = request.path_params["kind"], request.path_params["name"]
        pkg = stored_package(self.store, i.id)
        path = pkg.file(kind, name) if pkg else None
        if path is None:
            raise HTTPException(404, "no such file in this incident's package")
        if who.role == "read-only":
            raise HTTPException(403, "the read-only role reads pages; it takes no files")
        if kind == "mailing_list":
            if not who.may_reveal:
                raise HTTPException(403, f"the {who.role} role may not download customer ids")
            if request.method == "GET" and "range" not in request.headers:
                accounts.audit(self.store, who, "download", i.id, name, _remote(request))
        return FileResponse(path, filename=name)

    async def rules_page(self, request: Request) -> Response:
        who = self.who(request)
        scores = {r.title: r for r in rule_scores(self.store)}
        ev = last_evaluation(self.store)
        rows = []
        for rf in self.rule_files():
            for d in rf.detections:
                s = scores.get(d.title)
                false = (ev or {}).get("rules", {}).get(d.title)
                rows.append({"rf": rf, "d": d, "findings": s.findings if s else 0,
                             "opened": s.incidents_opened if s else 0,
                             "share_false": false["share_false"] if false else None})  # fmt: skip
        broken = [rf for rf in self.rule_files() if rf.errors]
        return self.page(request, "rules.html", who, rows=rows, broken=broken, evaluation=ev)

    async def rule_page(self, request: Request) -> Response:
        who = self.who(request)
        wanted = request.path_params["rule_id"]
        for rf in self.rule_files():
            detection = next((d for d in rf.detections if d.rule_id == wanted), None)
            if detection is not None:
                results = self._tests.get(str(rf.path))
                if results is None:  # a rule file does not change while the console runs
                    results = self._tests[str(rf.path)] = run_tests([rf])
                text = rf.path.read_text(encoding="utf-8", errors="replace")
                return self.page(request, "rule.html", who, rf=rf, d=detection, text=text,
                                 results=results)  # fmt: skip
        raise HTTPException(404, "no such rule")

    async def health(self, request: Request) -> Response:
        who = self.who(request)
        return self.page(request, "health.html", who, stats=ingest_health(self.store),
                         may_reveal=who.may_reveal,
                         pulls=last_pulls(self.store),
                         audit=accounts.audit_trail(self.store, 50))  # fmt: skip

    async def error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (301, 302, 303, 307):
            return Response(status_code=exc.status_code, headers=exc.headers)
        who = accounts.session(self.store, request.cookies.get(SESSION_COOKIE))
        return self.page(
            request, "error.html", who, exc.status_code, message=exc.detail, code=exc.status_code
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 8) or int(raw) < 1:
        raise HTTPException(400, "page must be a whole number from 1")
    return int(raw)


def _same(a: object, b: str) -> bool:
    """Constant-time equality of a submitted value with the expected one (any text)."""
    return isinstance(a, str) and secrets.compare_digest(a.encode(), b.encode())


def _same_origin(request: Request) -> None:
    """A browser's POST says where it comes from; one from another origin is refused."""
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise HTTPException(403, "a form from another site")


# Customer record ids (Contact 003, Account 001, Lead 00Q, Case 500; 15 or 18 characters).
_CUSTOMER_ID = re.compile(r"\b(?:003|001|00Q|500)[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?\b")


def _mask_text(value: Any) -> Any:
    if isinstance(value, str):
        return _CUSTOMER_ID.sub(lambda m: _mask(m.group()), value)
    if isinstance(value, list):
        return [_mask_text(v) for v in value]
    return value


def _remote(request: Request) -> str:
    return request.client.host if request.client else "-"


def _obligations(pkg: StoredPackage | None) -> list[dict]:
    if pkg is None:
        return []
    order = {"required": 0, "assess": 1, "not_required": 2}
    return sorted(pkg.body["obligations"],
                  key=lambda o: (order.get(o["status"], 3), o["deadline_utc"] or "~",
                                 o["regime"], o["recipient"]))  # fmt: skip


def _due(o: dict) -> str | None:
    """When an obligation is first due: its preliminary report's deadline if it has one."""
    times = [t for t in (o.get("preliminary_deadline_utc"), o.get("deadline_utc")) if t]
    return min(times) if times else None


def _nearest(pkg: StoredPackage | None) -> dict | None:
    """The obligation due first among those the law requires."""
    due = [o for o in _obligations(pkg) if o["status"] == "required" and _due(o)]
    if not due:
        return None
    first = min(due, key=_due)
    return {
        **first,
        "due": _due(first),
        "what": "preliminary report" if _due(first) != first["deadline_utc"] else "",
    }


class SecurityHeaders:
    """Adds :data:`HEADERS` to every response, errors and static files included (and HSTS
    when served over TLS)."""

    def __init__(self, app: Any, tls: bool = False) -> None:
        self.app = app
        self.headers = {**HEADERS, **({"strict-transport-security": "max-age=31536000"}
                                      if tls else {})}  # fmt: skip

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"]
                      if k.decode().lower() not in self.headers],
                    *[(k.encode(), v.encode()) for k, v in self.headers.items()],
                ]  # fmt: skip
            await send(message)

        await self.app(scope, receive, with_headers)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def create_app(store: Store, rules: list[RuleFile] | None = None, secure_cookies: bool = True,
               hosts: tuple[str, ...] = LOOPBACK_NAMES, tls: bool = False) -> Any:  # fmt: skip
    """The console over an open store; ``rules`` as ``load_rules`` gives them (default: the
    built-in pack). Requests naming another ``Host`` are refused (DNS rebinding: a page
    elsewhere resolving its own name to 127.0.0.1 cannot reach a loopback console)."""
    c = Console(store, rules, secure_cookies)
    static = resources.files("crmwatch.console") / "static"
    app = Starlette(
        routes=[
            Route("/", c.home),
            Route("/login", c.login_form, methods=["GET"]),
            Route("/login", c.login, methods=["POST"]),
            Route("/logout", c.logout, methods=["POST"]),
            Route("/incidents", c.incidents),
            Route("/incidents/{iid}", c.incident_page),
            Route("/incidents/{iid}/events", c.evidence),
            Route("/incidents/{iid}/events/{eid}", c.event),
            Route("/incidents/{iid}/customers", c.customers),
            Route("/incidents/{iid}/customers/reveal", c.reveal, methods=["POST"]),
            Route("/incidents/{iid}/files/{kind}/{name}", c.download),
            Route("/rules", c.rules_page),
            Route("/rules/{rule_id:path}", c.rule_page),
            Route("/health", c.health),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ],
        exception_handlers={HTTPException: c.error},
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
    )
    return SecurityHeaders(app, tls)
