"""The web console over a real store, served by uvicorn on loopback.

The store is the demo's (a small simulated retailer, scoped and notified) plus the hand-written
breach of tests/breach.py with hostile strings in its user agent, SOQL, client app and file
name. HTTP-level tests check sign-in, CSRF, roles, masking, downloads and headers; the browser
tests drive Debian's headless Chromium through its chromedriver as a person would, and keep a
screenshot of each page under build/screenshots/.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import uvicorn
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.console.accounts import add_user
from crmwatch.console.app import CSP, create_app
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.incidents import build_incidents, get_incident, stored_incidents
from crmwatch.ingest import ingest
from crmwatch.notify.org import load_org
from crmwatch.notify.package import notify, stored_package
from crmwatch.scope.exposure import scope_incident
from crmwatch.scope.results import stored_scope
from crmwatch.store import Store
from tests.breach import (
    ANNA,
    HOSTILE_APP,
    HOSTILE_FILE,
    HOSTILE_SOQL,
    HOSTILE_UA,
    SNAPSHOT,
    write_hostile_breach,
)

runner = CliRunner()
PASSWORD = "a long enough password"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"
ROLES = {"rita": "read-only", "ray": "responder", "pia": "privacy"}


@dataclass
class Site:
    base: str
    port: int
    store: Store
    demo_password: str
    hostile: str  # the hostile breach's incident id
    demo_incident: str  # the demo's incident with the most affected customers
    package_dir: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("console")
    demo = tmp / "demo"
    r = runner.invoke(app, ["demo", "--out", str(demo), "--customers", "3000",
                            "--employees", "60", "--days", "14"])  # fmt: skip
    assert r.exit_code == 0, r.output
    db = demo / "crmwatch.duckdb"
    with Store(db) as store:
        ingest(store, [write_hostile_breach(tmp / "hostile")])
        detect(store, load_rules(None))
        hostile = next(i for i in build_incidents(store) if i.principals == [ANNA])
        scope_incident(store, hostile.id, [SNAPSHOT])
        notify(store, hostile.id, dt.datetime(2025, 8, 10, 12), tmp / "pkg" / hostile.id,
               load_org(demo / "org" / "org.toml"), now=dt.datetime(2025, 8, 10, 13))  # fmt: skip
        for name, role in ROLES.items():
            add_user(store, name, role, PASSWORD)
        biggest = max(
            (i for i in stored_incidents(store) if stored_scope(store, i.id)),
            key=lambda i: stored_scope(store, i.id)["affected_customers"],
        )
    store = Store(db)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning",
                                           proxy_headers=False, server_header=False))  # fmt: skip
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    password = (demo / "console-password.txt").read_text().strip()
    yield Site(f"http://127.0.0.1:{port}", port, store, password, hostile.id, biggest.id,
               demo / "notify" / biggest.id)  # fmt: skip
    server.should_exit = True
    thread.join(10)
    store.close()
    sock.close()


# --- HTTP, as any client sends it ---


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Client:
    port: int
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method: str, path: str, form: dict | None = None,
                extra: dict | None = None) -> Reply:  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   **(extra or {})}  # fmt: skip
        body = None
        if form is not None:
            body = urlencode(form)
            headers["content-type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        set_cookies = resp.headers.get_all("set-cookie") or []
        for c in set_cookies:
            name, value = c.split(";")[0].split("=", 1)
            if value in ("", '""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        conn.close()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, set_cookies,
                     data)  # fmt: skip

    def get(self, path: str) -> Reply:
        return self.request("GET", path)

    def post(self, path: str, form: dict, extra: dict | None = None) -> Reply:
        return self.request("POST", path, form, extra)

    def log_in(self, name: str, password: str) -> Reply:
        return self.post("/login", {"csrf": _csrf(self.get("/login").text), "name": name,
                                    "password": password})  # fmt: skip


def _csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page)[1]


def _as(site: Site, name: str) -> Client:
    c = Client(site.port)
    password = site.demo_password if name == "demo" else PASSWORD
    assert c.log_in(name, password).status == 303
    return c


PAGES = ("/incidents", "/incidents/{i}", "/incidents/{i}/events?page=1",
         "/incidents/{i}/customers", "/rules", "/health")  # fmt: skip


def test_every_page_wants_a_session(site: Site):
    anon = Client(site.port)
    for page in PAGES:
        r = anon.get(page.format(i=site.demo_incident))
        assert (r.status, r.headers["location"]) == (303, "/login"), page
    r = anon.get(f"/incidents/{site.demo_incident}/files/regulator/eu-gdpr.md")
    assert r.status == 303
    assert anon.get("/static/console.css").status == 200


def test_sign_in_needs_the_forms_token_and_the_right_password(site: Site):
    c = Client(site.port)
    page = c.get("/login")
    assert c.post("/login", {"name": "rita", "password": PASSWORD}).status == 403
    assert c.post("/login", {"csrf": _csrf(page.text), "name": "rita",
                             "password": PASSWORD + "x"}).status == 401  # fmt: skip
    assert c.post("/login", {"csrf": _csrf(c.get("/login").text), "name": "nobody",
                             "password": PASSWORD}).status == 401  # fmt: skip
    assert "crmwatch_session" not in c.cookies
    ok = c.log_in("rita", PASSWORD)
    assert ok.status == 303
    cookie = next(x for x in ok.cookies if x.startswith("crmwatch_session="))
    assert {"HttpOnly", "Secure", "SameSite=strict"} <= {a.strip() for a in cookie.split(";")}
    assert c.get("/incidents").status == 200
    # the store keeps a hash of the cookie, not the cookie
    token = c.cookies["crmwatch_session"]
    hashes = [r[0] for r in site.store.execute("SELECT token_hash FROM console_sessions").rows]
    assert token not in hashes and len(hashes) >= 1
    logout = c.post("/logout", {"csrf": _csrf(c.get("/incidents").text)})
    assert logout.status == 303 and c.get("/incidents").status == 303


def test_every_response_forbids_scripts_frames_and_sniffing(site: Site):
    c = _as(site, "rita")
    for path in ("/incidents", f"/incidents/{site.demo_incident}", "/static/console.css",
                 "/incidents/NOPE", "/login"):  # fmt: skip
        r = c.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert "script-src" not in CSP and "default-src 'none'" in CSP
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
    assert c.get("/incidents/NOPE").status == 404
    assert c.get(f"/incidents/{site.demo_incident}/events?page=x").status == 400
    for page in PAGES:
        assert "<script" not in c.get(page.format(i=site.demo_incident)).text, page


def test_a_post_without_its_csrf_token_is_refused_and_does_nothing(site: Site):
    c = _as(site, "pia")
    page = c.get(f"/incidents/{site.demo_incident}/customers").text
    ref = re.search(r'name="ref" value="([^"]+)"', page)[1]
    before = site.store.scalar("SELECT count(*) FROM console_audit")
    for form in ({"ref": ref}, {"ref": ref, "csrf": "forged"}):
        r = c.post(f"/incidents/{site.demo_incident}/customers/reveal", form)
        assert r.status == 403 and "CSRF" in r.text
    assert site.store.scalar("SELECT count(*) FROM console_audit") == before


def test_customer_ids_are_masked_and_a_reveal_is_recorded(site: Site):
    iid = site.demo_incident
    page = _as(site, "pia").get(f"/incidents/{iid}/customers")
    ids = [r[0] for r in site.store.execute(
        "SELECT record_id FROM exposure_details WHERE incident_id = ? "
        "ORDER BY first_exposed_at, object, record_id LIMIT 50", [iid]).rows]  # fmt: skip
    assert len(ids) == 50
    assert not any(i in page.text for i in ids)  # nowhere: not in text, not in the forms
    assert f"{ids[0][:3]}•••••{ids[0][11:15]}" in page.text
    # the privacy officer reveals the first row
    c = _as(site, "pia")
    text = c.get(f"/incidents/{iid}/customers").text
    ref = re.search(r'name="ref" value="([^"]+)"', text)[1]
    r = c.post(f"/incidents/{iid}/customers/reveal?page=1", {"ref": ref, "csrf": _csrf(text)})
    assert r.status == 200 and ids[0] in r.text
    row = site.store.execute(
        "SELECT name, action, incident_id, target, remote FROM console_audit "
        "ORDER BY done_at DESC LIMIT 1").first()  # fmt: skip
    assert row[0] == "pia" and row[1].startswith("reveal ") and row[2:] == (iid, ids[0],
                                                                            "127.0.0.1")  # fmt: skip
    # a responder and a read-only account see no reveal button and are refused when they try
    for name in ("ray", "rita"):
        c = _as(site, name)
        text = c.get(f"/incidents/{iid}/customers").text
        assert 'name="ref"' not in text
        r = c.post(f"/incidents/{iid}/customers/reveal", {"ref": ref, "csrf": _csrf(text)})
        assert r.status == 403 and ids[0] not in r.text


def test_package_files_download_only_by_their_listed_names(site: Site):
    iid = site.demo_incident
    pkg = stored_package(site.store, iid)
    assert pkg is not None and pkg.files["regulator"] and pkg.files["letters"]
    c = _as(site, "ray")
    name = pkg.files["regulator"][0]
    r = c.get(f"/incidents/{iid}/files/regulator/{quote(name)}")
    assert r.status == 200 and r.body == (site.package_dir / "regulator" / name).read_bytes()
    for bad in ("..%2F..%2Fcrmwatch.duckdb", "..%2Fobligations.json", "nope.md",
                quote(str(site.package_dir / "obligations.json"), safe="")):  # fmt: skip
        assert c.get(f"/incidents/{iid}/files/regulator/{bad}").status == 404, bad
    assert c.get(f"/incidents/{iid}/files/elsewhere/{quote(name)}").status == 404
    # a preliminary report's deadline is shown, and counts as the obligation's first
    prelim = [o for o in pkg.body["obligations"] if o.get("preliminary_deadline_utc")]
    page = c.get(f"/incidents/{iid}").text
    assert ("preliminary: " in page) == bool(prelim)
    # the read-only role reads the pages and takes no file
    assert _as(site, "rita").get(f"/incidents/{iid}/files/regulator/{quote(name)}").status == 403
    # the mailing list names customers: the privacy role may take it, and that is recorded
    assert c.get(f"/incidents/{iid}/files/mailing_list/mailing_list.csv").status == 403
    r = _as(site, "pia").get(f"/incidents/{iid}/files/mailing_list/mailing_list.csv")
    assert r.status == 200 and r.body == (site.package_dir / "mailing_list.csv").read_bytes()
    assert (
        site.store.execute(
            "SELECT count(*) FROM console_audit WHERE action = 'download' AND name = 'pia'"
        ).single_value()
        >= 1
    )


def test_hostile_strings_reach_the_page_as_text(site: Site):
    c = _as(site, "rita")
    inc = get_incident(site.store, site.hostile)
    pages = {
        "incident": c.get(f"/incidents/{site.hostile}").text,
        "evidence": c.get(f"/incidents/{site.hostile}/events?page=1").text,
        "health": c.get("/health").text,
    }
    events = dict(site.store.execute(
        "SELECT native_id, event_id FROM events WHERE native_id IN "
        "('LoginEvent-0050', 'ApiEvent-0023')").rows)  # fmt: skip
    for native, eid in events.items():
        pages[native] = c.get(f"/incidents/{site.hostile}/events/{eid}").text
    joined = "\n".join(pages.values())
    # the payloads are in the store as the logs wrote them, and on the pages only as text
    stored = site.store.execute(
        "SELECT list(user_agent), list(query), list(client_app) FROM events "
        "WHERE event_id IN (SELECT event_id FROM incident_events WHERE incident_id = ?)",
        [inc.id]).first()  # fmt: skip
    assert HOSTILE_UA in stored[0] and HOSTILE_SOQL in stored[1] and HOSTILE_APP in stored[2]
    assert "<img" not in joined and "<script" not in joined
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages["ApiEvent-0023"]
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in pages["LoginEvent-0050"]
    # the right-to-left override is shown as an escape, never applied
    assert "\u202e" not in joined and "\\u202egnp.exe" in pages["LoginEvent-0050"]
    assert HOSTILE_APP in pages["evidence"] and 'href="javascript' not in joined
    assert HOSTILE_FILE.replace("<", "&lt;").replace(">", "&gt;") in pages["health"]


def test_event_pages_mask_customer_ids_unless_the_role_may_see_them(site: Site):
    """A log row can name customers: an API query's Records, a URI's record id."""
    rows = site.store.execute(
        "SELECT i.incident_id, e.event_id, e.record_ids FROM incident_events i JOIN events e "
        "USING (event_id) WHERE len(e.record_ids) > 0 LIMIT 1").first()  # fmt: skip
    assert rows, "the demo has an event listing customer ids"
    iid, eid, ids = rows
    path = f"/incidents/{iid}/events/{eid}"
    before = site.store.scalar("SELECT count(*) FROM console_audit WHERE action = 'view event'")
    for name in ("rita", "ray"):
        page = _as(site, name).get(path).text
        assert not any(i in page for i in ids) and f"{ids[0][:3]}•••••{ids[0][11:15]}" in page
        assert 'id="masked-note"' in page
    assert site.store.scalar(
        "SELECT count(*) FROM console_audit WHERE action = 'view event'") == before  # fmt: skip
    page = _as(site, "pia").get(path).text
    assert ids[0] in page
    row = site.store.execute("SELECT name, action, target FROM console_audit "
                             "ORDER BY done_at DESC LIMIT 1").first()  # fmt: skip
    assert row == ("pia", "view event", eid)


def test_forged_cross_site_and_malformed_requests_are_refused_not_crashed(site: Site):
    c = Client(site.port)
    # a login token the client chose (a cookie set from another port of this host) is refused
    c.cookies["crmwatch_login"] = "chosen"
    assert c.post("/login", {"csrf": "chosen", "name": "rita", "password": PASSWORD}).status == 403
    # the server's own token, but the form posted from another site
    c = Client(site.port)
    token = _csrf(c.get("/login").text)
    r = c.post("/login", {"csrf": token, "name": "rita", "password": PASSWORD},
               {"origin": "http://evil.example"})  # fmt: skip
    assert r.status == 403
    # non-ASCII tokens and page numbers: refused, never a server error
    assert c.post("/login", {"csrf": "é", "name": "a", "password": "b"}).status == 403
    s = _as(site, "pia")
    assert s.post(f"/incidents/{site.demo_incident}/customers/reveal",
                  {"csrf": "é", "ref": "x"}).status == 403  # fmt: skip
    for page in ("%C2%B2", "%D9%A1", "9" * 5000, "0", "-1"):
        assert s.get(f"/incidents/{site.demo_incident}/events?page={page}").status == 400, page
    assert s.get(f"/incidents/{site.demo_incident}/events?page=99999").status == 404
    # another Host (DNS rebinding) is refused; a forwarded address is not believed
    assert s.request("GET", "/incidents", extra={"host": "evil.example"}).status == 400
    text = s.get(f"/incidents/{site.demo_incident}/customers").text
    ref = re.search(r'name="ref" value="([^"]+)"', text)[1]
    s.post(f"/incidents/{site.demo_incident}/customers/reveal", {"csrf": _csrf(text), "ref": ref},
           {"x-forwarded-for": "203.0.113.66"})  # fmt: skip
    assert site.store.scalar(
        "SELECT remote FROM console_audit ORDER BY done_at DESC LIMIT 1") == "127.0.0.1"  # fmt: skip


def test_files_planted_in_a_package_folder_are_not_offered(site: Site):
    folder = site.package_dir
    links = [folder / "regulator" / "zz-passwd.md", folder / "zz.json", folder / "extra.md"]
    links[0].symlink_to("/etc/passwd")
    links[1].symlink_to(folder / "mailing_list.csv")
    links[2].write_text("not written by notify")
    try:
        pkg = stored_package(site.store, site.demo_incident)
        offered = {n for names in pkg.files.values() for n in names}
        assert not offered & {"zz-passwd.md", "zz.json", "extra.md"}
        c = _as(site, "ray")
        for kind, name in (("regulator", "zz-passwd.md"), ("summary", "zz.json"),
                           ("summary", "extra.md")):  # fmt: skip
            assert c.get(f"/incidents/{site.demo_incident}/files/{kind}/{name}").status == 404
    finally:
        for link in links:
            link.unlink()


def test_failed_logins_are_slowed_per_address_and_name():
    from crmwatch.console.accounts import Limiter

    now = [0.0]
    limiter = Limiter(limit=3, window=60, clock=lambda: now[0])
    for _ in range(3):
        assert not limiter.blocked("10.0.0.1", "ana")
        limiter.failed("10.0.0.1", "ana")
    assert limiter.blocked("10.0.0.1", "bob")  # that address, for any name
    assert not limiter.blocked("10.0.0.2", "ana")  # not yet the name from elsewhere
    now[0] = 61
    assert not limiter.blocked("10.0.0.1", "ana")


def test_pages_after_a_reveal_link_back_to_the_list(site: Site):
    c = _as(site, "pia")
    text = c.get(f"/incidents/{site.demo_incident}/customers").text
    ref = re.search(r'name="ref" value="([^"]+)"', text)[1]
    r = c.post(f"/incidents/{site.demo_incident}/customers/reveal?page=1",
               {"csrf": _csrf(text), "ref": ref})  # fmt: skip
    assert f'href="/incidents/{site.demo_incident}/customers?page=2"' in r.text


# --- the command line around it ---


def test_serve_refuses_a_public_address_without_tls_and_a_store_without_accounts(tmp_path):
    r = runner.invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb"), "--host", "0.0.0.0"])
    assert r.exit_code == 2 and "not loopback" in r.output
    r = runner.invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 2 and "no store at" in r.output
    Store(tmp_path / "s.duckdb").close()
    r = runner.invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 2 and "users add" in r.output
    with Store(tmp_path / "s.duckdb") as store:
        add_user(store, "ann", "admin", PASSWORD)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        r = runner.invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb"), "--port",
                                str(taken.getsockname()[1])])  # fmt: skip
    assert r.exit_code == 2 and "cannot listen" in r.output and "console on" not in r.output


def test_users_add_keeps_an_argon2_hash_and_refuses_weak_input(tmp_path):
    db = str(tmp_path / "s.duckdb")
    r = runner.invoke(app, ["users", "add", "ann", "--role", "privacy", "--password-stdin",
                            "--db", db], input=PASSWORD + "\n")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "add", "bo", "--password-stdin", "--db", db], input="short\n")
    assert r.exit_code == 2 and "12 characters" in r.output
    r = runner.invoke(app, ["users", "add", "cy", "--role", "root", "--password-stdin",
                            "--db", db], input=PASSWORD + "\n")  # fmt: skip
    assert r.exit_code == 2 and "unknown role" in r.output
    again = ["users", "add", "ann", "--role", "admin", "--password-stdin", "--db", db]
    r = runner.invoke(app, again, input=PASSWORD + "\n")
    assert r.exit_code == 2 and "--replace" in r.output  # never silently overwritten
    with Store(db) as store:
        rows = store.execute("SELECT name, role, password_hash FROM console_users").rows
    assert [(n, role) for n, role, _ in rows] == [("ann", "privacy")]
    assert rows[0][2].startswith("$argon2id$") and PASSWORD not in rows[0][2]


# --- in a real browser ---


def _chromium() -> tuple[str, str]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        why = "Chromium and chromedriver are not installed (scripts/install-chromium does it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return binary, driver


@pytest.fixture(scope="module")
def browser(site: Site):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = _chromium()
    downloads = Path(tempfile.mkdtemp(prefix="crmwatch-downloads-"))
    profile = tempfile.mkdtemp(prefix="crmwatch-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # Debian's Chromium as root, on a machine with no network but loopback: the flags that
    # keep it from reaching out (and failing) at start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1400,1000",
                f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})  # fmt: skip
    d = webdriver.Chrome(service=Service(driver), options=options)
    d.downloads = downloads
    yield d
    d.quit()
    shutil.rmtree(downloads, ignore_errors=True)
    shutil.rmtree(profile, ignore_errors=True)


def _shot(d, name: str) -> None:
    """Keep a full-page screenshot as a test artefact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1400, min(max(height, 600), 6000))
    d.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    d.set_window_size(1400, 1000)


def _sign_in(d, site: Site, name: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    d.delete_all_cookies()
    d.get(site.base + "/login")
    d.find_element(By.NAME, "name").send_keys(name)
    d.find_element(By.NAME, "password").send_keys(password)
    d.find_element(By.CSS_SELECTOR, "form.login button").click()
    WebDriverWait(d, 10).until(ec.url_to_be(site.base + "/incidents"))


def _follow(d, element) -> None:
    """Click ``element`` and wait for the next page to replace this one."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    page = d.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(d, 10).until(ec.staleness_of(page))


def _downloaded(folder: Path, name: str) -> bytes:
    path = folder / name
    for _ in range(100):
        if path.exists() and not list(folder.glob("*.crdownload")):
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded: {sorted(os.listdir(folder))}")


def test_browser_from_sign_in_to_a_downloaded_regulator_draft(site: Site, browser):
    from selenium.webdriver.common.by import By

    d = browser
    d.get(site.base + "/login")
    _shot(d, "01-login")
    _sign_in(d, site, "demo", site.demo_password)
    rows = d.find_elements(By.CSS_SELECTOR, "#incidents tbody tr[data-incident]")
    assert len(rows) == len(stored_incidents(site.store))
    _shot(d, "02-incidents")
    _follow(d, d.find_element(By.LINK_TEXT, site.demo_incident))
    assert d.title.startswith(site.demo_incident)
    inc = get_incident(site.store, site.demo_incident)
    scope = stored_scope(site.store, site.demo_incident)
    # the timeline: every event of the incident in a bar, the first malicious event, the
    # detection and each alert as a line
    bars = d.find_elements(By.CSS_SELECTOR, "#timeline rect[data-count]")
    assert sum(int(b.get_attribute("data-count")) for b in bars) == inc.events
    kinds = [x.get_attribute("data-kind") for x in d.find_elements(By.CSS_SELECTOR,
                                                                    "#timeline line")]  # fmt: skip
    assert kinds.count("first-malicious") == kinds.count("detection") == 1
    assert kinds.count("alert") == len(inc.alert_ids)
    assert all(b.size["height"] > 0 and b.size["width"] > 0 for b in bars)
    # the scope: the count, and the country chart's bars carry the stored numbers
    assert d.find_element(By.ID, "affected").text == f"{scope['affected_customers']:,}"
    drawn = {g.get_attribute("data-label"): int(g.get_attribute("data-count"))
             for g in d.find_elements(By.CSS_SELECTOR, "#by-country g.row")}  # fmt: skip
    assert sum(drawn.values()) == sum(scope["by_country"].values())
    top = max(scope["by_country"], key=scope["by_country"].get)
    assert drawn[top] == scope["by_country"][top]
    widths = {g.get_attribute("data-label"): g.find_element(By.CSS_SELECTOR, "rect").size["width"]
              for g in d.find_elements(By.CSS_SELECTOR, "#by-country g.row")}  # fmt: skip
    assert widths[top] == max(widths.values())
    statuses = {r.get_attribute("data-status")
                for r in d.find_elements(By.CSS_SELECTOR, "#obligations tbody tr")}  # fmt: skip
    assert "required" in statuses
    _shot(d, "03-incident")
    # the regulator draft and a letter, downloaded as files identical to the package's
    draft = d.find_element(By.CSS_SELECTOR, "a.file-regulator")
    name = draft.text
    draft.click()
    assert _downloaded(d.downloads, name) == (site.package_dir / "regulator" / name).read_bytes()
    letter = d.find_element(By.CSS_SELECTOR, "a.file-letters")
    name = letter.text
    letter.click()
    assert _downloaded(d.downloads, name) == (site.package_dir / "letters" / name).read_bytes()


def test_browser_pages_of_evidence_customers_rules_and_health(site: Site, browser):
    from selenium.webdriver.common.by import By

    d = browser
    _sign_in(d, site, "demo", site.demo_password)
    inc = get_incident(site.store, site.demo_incident)
    d.get(f"{site.base}/incidents/{site.demo_incident}/events?page=1")
    rows = d.find_elements(By.CSS_SELECTOR, "table.evidence tbody tr")
    assert len(rows) == min(inc.events, 50)
    _follow(d, rows[0].find_element(By.LINK_TEXT, "record"))
    assert d.find_element(By.ID, "raw").text.startswith("{")
    d.get(f"{site.base}/incidents/{site.demo_incident}/customers")
    _shot(d, "04-customers")
    masked = d.find_elements(By.CSS_SELECTOR, "#customers td.masked")
    assert masked and all("•••••" in m.text for m in masked)
    d.get(site.base + "/rules")
    rules = d.find_elements(By.CSS_SELECTOR, "#rules tbody tr")
    assert len(rules) == sum(len(rf.detections) for rf in load_rules(None))
    _shot(d, "05-rules")
    _follow(d, rules[0].find_element(By.TAG_NAME, "a"))
    results = [c.text for c in d.find_elements(By.CSS_SELECTOR, "#tests tbody td:nth-child(3)")]
    assert results and all(r.startswith("pass") for r in results)
    d.get(site.base + "/health")
    quarantined = site.store.scalar("SELECT coalesce(sum(records), 0) FROM quarantine")
    assert d.find_element(By.ID, "quarantined").text == f"{quarantined:,}"
    _shot(d, "06-health")


def test_browser_hostile_strings_stay_inert(site: Site, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    d = browser
    _sign_in(d, site, "rita", PASSWORD)
    events = dict(site.store.execute(
        "SELECT native_id, event_id FROM events WHERE native_id IN "
        "('LoginEvent-0050', 'ApiEvent-0023')").rows)  # fmt: skip
    pages = [
        f"/incidents/{site.hostile}",
        f"/incidents/{site.hostile}/events?page=1",
        "/health",
        *(f"/incidents/{site.hostile}/events/{e}" for e in events.values()),
    ]
    text = ""
    for i, page in enumerate(pages):
        d.get(site.base + page)
        time.sleep(0.2)  # an onerror handler would have fired by now
        with pytest.raises(NoAlertPresentException):
            d.switch_to.alert.text  # noqa: B018
        assert d.find_elements(By.TAG_NAME, "img") == [], page
        assert d.find_elements(By.TAG_NAME, "script") == [], page
        assert not d.find_elements(By.CSS_SELECTOR, "a[href^='javascript']"), page
        text += d.find_element(By.TAG_NAME, "body").text
        if i == 0:
            _shot(d, "07-hostile-incident")
    # shown as the text the logs held, the direction override as an escape
    assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(1)>" in text
    assert HOSTILE_APP in text and HOSTILE_FILE in text
    assert "\u202e" not in text and "\\u202egnp.exe" in text


def test_browser_a_form_stripped_of_its_csrf_token_is_refused(site: Site, browser):
    from selenium.webdriver.common.by import By

    d = browser
    _sign_in(d, site, "pia", PASSWORD)
    url = f"{site.base}/incidents/{site.demo_incident}/customers"
    d.get(url)
    before = site.store.scalar("SELECT count(*) FROM console_audit")
    d.execute_script("document.querySelector('#customers form input[name=csrf]').remove()")
    _follow(d, d.find_element(By.CSS_SELECTOR, "#customers form button"))
    assert "CSRF" in d.find_element(By.TAG_NAME, "h1").text
    assert site.store.scalar("SELECT count(*) FROM console_audit") == before
    d.get(url)
    _follow(d, d.find_element(By.CSS_SELECTOR, "#customers form button"))
    revealed = d.find_element(By.ID, "revealed").text
    assert site.store.scalar("SELECT count(*) FROM console_audit") == before + 1
    target = site.store.scalar(
        "SELECT target FROM console_audit ORDER BY done_at DESC LIMIT 1")  # fmt: skip
    assert target in revealed
