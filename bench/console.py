"""Benchmark: the console's incident page for an incident of 100,000 affected customers and
1M evidence events.

The incident is bench/scope's (a Tor sign-in whose session ran two Bulk API exports of a
``--contacts`` Contact snapshot), with ``--events`` API queries added to the same session
before ``crmwatch incidents`` collects them, then scoped and notified. ``crmwatch serve`` runs
in a child process on loopback; a signed-in client asks for each page ``--repeat`` times.
Measured in one run:
- baseline: one DuckDB query reading every column of the incident's events;
- crmwatch: the slowest of the repeated requests of the incident page (timeline, evidence,
  scope charts, obligations), and of the list, evidence page 2 000 and customers page 2 000.

Target (issue 20): the incident page opens in under 2 s; its ratio to the scan is reported.

Usage: python bench/console.py [--contacts 100000] [--events 1000000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import http.client
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import duckdb
from child import finish, run_crmwatch
from scope import incident_store, snapshot

TARGET_SECONDS = 2.0
PASSWORD = "bench console password"
ORG = """[controller]
name = "Maison Example SAS"
establishments = ["FR"]
[contact]
name = "Data Protection Officer"
email = "dpo@maison.example"
"""


def build(out: Path, contacts: int, events: int) -> tuple[Path, str]:
    """The store, made once per size: the incident with its events, scope and package."""
    folder = out / f"console-{contacts}-{events}"
    db = folder / "store.duckdb"
    marker = folder / ".complete"
    iid_file = folder / "incident"
    if marker.exists():
        return db, iid_file.read_text()
    folder.mkdir(parents=True, exist_ok=True)
    path = snapshot(out, contacts)
    made, _ = incident_store(out, contacts)
    db.unlink(missing_ok=True)
    made.rename(db)
    con = duckdb.connect(str(db))
    con.execute(f"""INSERT INTO events_base (event_id, ts, source, source_type, category,
            outcome, user_id, user_name, actor_type, src_ip, login_key, session_key, object,
            operation, rows, client_app)
        SELECT md5('bench-query' || i), TIMESTAMP '2025-06-10 09:41' + to_microseconds(i * 50000),
            'salesforce', 'api:ApiEvent', 'api_query', 'success', '005000000000009AAA',
            'svc.loader@maison.example', 'user', '185.220.101.7', 'LK-BENCH', 'S-LK-BENCH',
            'Contact', 'query', 200, 'Data Loader'
        FROM range({events}) t(i)""")
    con.close()
    incidents = run_crmwatch("incidents", "--db", str(db), "--json").stdout
    iid = re.search(r'"id": "(INC-[0-9A-F]+)"', incidents)[1]
    run_crmwatch("scope", iid, "--customers", str(path), "--db", str(db), "--json")
    (folder / "org.toml").write_text(ORG)
    run_crmwatch(
        "notify",
        iid,
        "--aware-at",
        "2025-06-10T12:00:00Z",
        "--org",
        str(folder / "org.toml"),
        "--out",
        str(folder / "notify"),
        "--db",
        str(db),
    )
    add = subprocess.run([sys.executable, "-m", "crmwatch", "users", "add", "bench", "--role",
                          "privacy", "--password-stdin", "--db", str(db)],
                         input=PASSWORD + "\n", text=True, capture_output=True)  # fmt: skip
    if add.returncode:
        raise SystemExit(add.stderr)
    iid_file.write_text(iid)
    marker.write_text("ok")
    return db, iid


def scan_baseline(db: Path, iid: str) -> tuple[float, int]:
    """Seconds for one DuckDB query reading every column of the incident's events."""
    con = duckdb.connect(str(db), read_only=True)
    start = time.perf_counter()
    n = con.execute(
        "SELECT count(*), min(COLUMNS(e.*)) FROM events_base e WHERE event_id IN "
        "(SELECT event_id FROM incident_events WHERE incident_id = ?)",
        [iid],
    ).fetchone()[0]
    seconds = time.perf_counter() - start
    con.close()
    return seconds, n


class Client:
    def __init__(self, port: int) -> None:
        self.port, self.cookies = port, {}

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if form is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, urlencode(form) if form else None, headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        for c in resp.headers.get_all("set-cookie") or []:
            name, value = c.split(";")[0].split("=", 1)
            self.cookies[name] = value
        conn.close()
        return resp.status, body

    def timed(self, path: str, repeat: int) -> float:
        worst = 0.0
        for _ in range(repeat):
            start = time.perf_counter()
            status, _ = self.request("GET", path)
            worst = max(worst, time.perf_counter() - start)
            if status != 200:
                raise SystemExit(f"{path}: HTTP {status}")
        return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contacts", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    db, iid = build(args.out, args.contacts, args.events)
    scan_s, events = scan_baseline(db, iid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "crmwatch", "serve", "--db", str(db),
                               "--port", str(port)], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        c = Client(port)
        for _ in range(100):
            try:
                _, page = c.request("GET", "/login")
                break
            except OSError:
                time.sleep(0.1)
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        c.request("POST", "/login", {"csrf": csrf, "name": "bench", "password": PASSWORD})
        _, body = c.request("GET", f"/incidents/{iid}")
        affected = int(re.search(r'id="affected">([\d,]+)<', body)[1].replace(",", ""))
        shown_events = int(re.search(r'id="event-count">([\d,]+)<', body)[1].replace(",", ""))
        times = {
            "incident_page": c.timed(f"/incidents/{iid}", args.repeat),
            "incident_list": c.timed("/incidents", args.repeat),
            "evidence_page_2000": c.timed(f"/incidents/{iid}/events?page=2000", args.repeat),
            "customers_page_2000": c.timed(f"/incidents/{iid}/customers?page=2000", args.repeat),
        }
    finally:
        server.terminate()
        server.wait(30)
    page_s = times["incident_page"]
    report = {
        "events": events, "affected_customers": affected, "events_shown": shown_events,
        "scan_seconds": round(scan_s, 3), "page_seconds": round(page_s, 3),
        "ratio_to_scan": round(page_s / scan_s, 2),
        **{f"{k}_seconds": round(v, 3) for k, v in times.items()},
        "target_seconds": TARGET_SECONDS,
        "pass": page_s < TARGET_SECONDS and affected == args.contacts
        and shown_events == events,
    }  # fmt: skip
    return finish(report, args.out / "console.json")


if __name__ == "__main__":
    sys.exit(main())
