"""Benchmark: crmwatch against Zircolite 3.7.0, a SQLite-based standalone Sigma engine, on the
same RestApi EventLogFile CSV with the same five rules (issue 21).

Both are measured in the same run, back to back, on the same file:
- crmwatch: ``crmwatch ingest FILE`` into a fresh store, then ``crmwatch detect --no-builtin
  --rules bench/peer_rules/crmwatch`` (and, reported beside it, the built-in pack plus the
  five rules), each a child process;
- Zircolite: its whole run (``zircolite.py --csv-input``: reading the CSV into SQLite,
  converting the rules, running them, writing its JSON) with ``bench/peer_rules/zircolite``.

The workload: ``--events`` RestApi rows with the 27 columns of the real ELF header, 500
background users, one row every 100 ms, and 3,000 planted matches: 600 rows for each of the
four match rules and 40 bursts of 15 REST queries for the ``event_count`` correlation (ten or
more queries by one user in five minutes). Background rows never match: each background user
has a row every 50 s (at most 7 in any five minutes), and the values the rules look for are
only planted. The rules are written twice, in each engine's field names; the hits each engine
reports must equal each other and the planted counts.

How hits are counted: a match rule's hits are the events it matched (crmwatch: the distinct
events of its alerts, which group a principal's session; Zircolite: its ``count``). A
correlation's are its firing spans and their events: crmwatch raises one alert per group and
span of overlapping firing windows; Zircolite reports every firing window (one per matching
event that completes ten in five minutes), merged here per group the way crmwatch merges them.

The ratio is Zircolite's wall time over crmwatch's (ingest + detect with the five rules), each
the fastest of ``--repeat`` runs, the engines alternating. Beside them, in the same runs,
DuckDB loading the file into a table of a store file (every column as text, bench/ingest's
plain load): ``plain_load_ratio``, Zircolite's time over that load, is the ratio an engine
would reach that only loaded the file into a table and ran no rule. The ratio of CPU time
(user + system) is reported beside it: on a shared machine, other work takes cores from
crmwatch, which uses both, more than from Zircolite, which mostly uses one.

Zircolite is not part of this repository (LGPL-3.0): ``--zircolite DIR`` names a checkout of
tag v3.7.0, else one is cloned into ``--out``; ``--zircolite-python`` names a Python with its
requirements, else a venv is made under ``--out`` from ``DIR/requirements.txt``. Without a
checkout or its requirements the report says "not run: …" and the exit status is 0.

Target (issue 21): crmwatch ingest + detect at least 20x faster than Zircolite at 5M events,
with identical hit counts.

Usage: python bench/peer.py [--events 5000000] [--out bench/out] [--zircolite DIR]
       [--zircolite-python PY] [--seed 1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml
from child import Child, finish, run, run_crmwatch
from ingest import load_baseline

from crmwatch.simulate.volume import HEADERS
from crmwatch.sql import lit, path_lit

TARGET_RATIO = 20.0
ZIRCOLITE_URL = "https://github.com/wagga40/Zircolite"
ZIRCOLITE_TAG = "v3.7.0"
RULES = Path(__file__).parent / "peer_rules"
MIN_EVENTS = 100_000  # below this, one attacker's bursts come closer than five minutes

# Rule id → name in the report; the same ids in both engines' rule files.
RULE_IDS = {
    "5e7d0b1a-9c35-4c4f-8a1e-0a0000000001": "campaign_user_agent",
    "5e7d0b1a-9c35-4c4f-8a1e-0a0000000002": "script_outside_office",
    "5e7d0b1a-9c35-4c4f-8a1e-0a0000000003": "tor_or_stolen_user",
    "5e7d0b1a-9c35-4c4f-8a1e-0a0000000004": "large_query",
    "5e7d0b1a-9c35-4c4f-8a1e-0a0000000005": "query_burst",
}
CORRELATION = "query_burst"

# What is planted: rows per match rule (roles 1-4), and the correlation's bursts (role 5).
PER_RULE = 600
BURSTS = 40
BURST_SIZE = 15
ATTACKERS = 4
BACKGROUND_USERS = 500
STEP_US = 100_000  # one row every 100 ms


def planted_rows(events: int, seed: int) -> list[tuple[int, int, int]]:
    """(row, role, k) of every planted row: ``k`` numbers the rows of a role (a burst's rows
    carry the burst's number). Bursts are spread evenly with jitter; the single rows are drawn
    from the rest, so no row plays two roles."""
    rng = random.Random(seed)
    rows: list[tuple[int, int, int]] = []
    jitter = events // 400
    for b in range(BURSTS):
        start = int((b + 0.5) * events / BURSTS) + rng.randrange(-jitter, jitter)
        rows += [(start + j, 5, b) for j in range(BURST_SIZE)]
    taken = {r for r, _, _ in rows}
    free = [r for r in rng.sample(range(events), 4 * PER_RULE + len(taken)) if r not in taken]
    rows += [(r, 1 + n % 4, n // 4) for n, r in enumerate(free[: 4 * PER_RULE])]
    return rows


def expected_hits() -> dict[str, dict[str, int]]:
    """The hits every engine must report: exactly what was planted."""
    hits = {name: {"events": PER_RULE} for name in RULE_IDS.values() if name != CORRELATION}
    hits[CORRELATION] = {"events": BURSTS * BURST_SIZE, "spans": BURSTS}
    return hits


# Background values, picked by bits of a per-row hash ``h``.
_UAS = [
    *["9999"] * 5,  # RestApi's numeric user-agent code, as in the Azure-Sentinel sample
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "SalesforceMobileSDK/11.1.0 android mobile/14 (Pixel 8) Salesforce1/250.010",
    "python-requests/2.31.0",  # the company's own scripts, always from the office
    "Salesforce-CLI/2.60.7 (linux-x64) node-v20.15.0",
]
_SCRIPT_UA = 8
_OFFICE = "'198.51.100.' || ((h >> 4) % 50 + 1)"
_IPS = (
    f"[{_OFFICE}, {_OFFICE}, {_OFFICE}, '203.0.113.' || ((h >> 4) % 200 + 1), "
    "'203.0.113.' || ((h >> 5) % 200 + 1), '52.95.110.' || ((h >> 4) % 20), '34.102.136.180', "
    "'2a01:4f8::' || ((h >> 4) % 90 + 1)]"
)
# URI kinds: a record read, queries (1, 5), describe, limits, queryAll, a record update.
_API = "/services/data/v62.0/"
_RECORD = "lpad(CAST((h >> 7) % 100000 AS VARCHAR), 12, '0')"
_URIS = (
    f"['{_API}sobjects/Contact/003' || {_RECORD}, '{_API}query', "
    f"'{_API}sobjects/Account/describe', '{_API}limits', '{_API}sobjects/Case/500' || {_RECORD}, "
    f"'{_API}query', '{_API}queryAll', '{_API}sobjects/Contact/003' || {_RECORD}]"
)
_QUERY_KINDS = "(1, 5, 6)"
_RECORD_KINDS = "(0, 4, 7)"
_ENTITIES = "['Contact', '', 'Account', '', 'Case', '', '', 'Contact']"


def _actors() -> str:
    """SQL: the acting user's 15-character id (attackers, the stolen user, or background)."""
    return (
        "CASE WHEN role = 5 THEN '0055j0000ATK' || lpad(CAST(k % "
        f"{ATTACKERS} AS VARCHAR), 3, '0') "
        "WHEN role = 3 AND k % 2 = 1 THEN '0055j0000STOLEN' "
        f"ELSE '0055j0000' || lpad(CAST(i % {BACKGROUND_USERS} AS VARCHAR), 6, '0') END"
    )


def _row_facts() -> str:
    """SQL columns deciding a row: its user, URI kind, user agent and client IP."""
    ua = "[" + ", ".join(lit(u) for u in _UAS) + "]"
    return f"""{_actors()} AS uid,
        CASE WHEN role IN (4, 5) THEN 1 WHEN role = 3 THEN 0 ELSE (h >> 12) % 8 END AS kind,
        CASE role WHEN 0 THEN {ua}[(h >> 20) % 10 + 1]
            WHEN 1 THEN 'Salesforce-Multi-Org-Fetcher/1.0' WHEN 2 THEN 'python-requests/2.32.4'
            ELSE '9999' END AS ua,
        CASE WHEN role = 1 THEN '208.68.36.' || (k % 200 + 1)
            WHEN role = 2 THEN '52.95.110.' || (k % 20)
            WHEN role = 3 AND k % 2 = 0 THEN '185.220.101.7'
            WHEN role <> 0 THEN '203.0.113.' || (k % 200 + 1)
            WHEN (h >> 20) % 10 = {_SCRIPT_UA} THEN {_OFFICE}
            ELSE {_IPS}[(h >> 8) % 8 + 1] END AS ip"""


# SQL per ELF column, over the row facts above; ``t`` is the row's time.
_COLUMNS = {
    "EVENT_TYPE": "'RestApi'",
    "TIMESTAMP": "strftime(t, '%Y%m%d%H%M%S.') || lpad(CAST(i % 10 * 100 AS VARCHAR), 3, '0')",
    "REQUEST_ID": "'4' || md5(CAST(i AS VARCHAR) || $salt)[1:21]",
    "ORGANIZATION_ID": "'00D5j00000DgAYG'",
    "USER_ID": "uid",
    "RUN_TIME": "CAST(20 + h % 400 AS VARCHAR)",
    "CPU_TIME": "CAST(h % 120 AS VARCHAR)",
    "URI": f"{_URIS}[kind + 1]",
    "SESSION_KEY": f"md5(uid || CAST(i // {36_000 * 24} AS VARCHAR))[1:16]",
    "LOGIN_KEY": f"md5(uid || CAST(i // {36_000 * 24} AS VARCHAR) || 'lk')[1:16]",
    "REQUEST_STATUS": "'S'",
    "DB_TOTAL_TIME": "CAST(h % 90000000 AS VARCHAR)",
    "METHOD": "CASE WHEN kind = 7 THEN 'PATCH' ELSE 'GET' END",
    "MEDIA_TYPE": "CASE WHEN kind = 7 THEN 'application/json;charset=UTF-8' ELSE '' END",
    "STATUS_CODE": "CASE WHEN kind = 7 THEN '204' ELSE '200' END",
    "USER_AGENT": "ua",
    "ROWS_PROCESSED": (
        "CASE WHEN role = 4 THEN CAST(10001 + k * 7919 % 90000 AS VARCHAR) "
        f"WHEN kind IN {_QUERY_KINDS} THEN CAST((h >> 3) % 2001 AS VARCHAR) "
        f"WHEN kind IN {_RECORD_KINDS} THEN '1' ELSE '' END"
    ),
    "NUMBER_FIELDS": (
        f"CASE WHEN kind IN {_QUERY_KINDS} THEN CAST(3 + h % 40 AS VARCHAR) ELSE '' END"
    ),
    "DB_BLOCKS": "CAST(h % 5000 AS VARCHAR)",
    "DB_CPU_TIME": "CAST(h % 300 AS VARCHAR)",
    "REQUEST_SIZE": "CASE WHEN kind = 7 THEN CAST(100 + h % 900 AS VARCHAR) ELSE '0' END",
    "RESPONSE_SIZE": "CAST(200 + h % 100000 AS VARCHAR)",
    "ENTITY_NAME": f"{_ENTITIES}[kind + 1]",
    "TIMESTAMP_DERIVED": (
        "strftime(t, '%Y-%m-%dT%H:%M:%S.') || lpad(CAST(i % 10 * 100 AS VARCHAR), 3, '0') || 'Z'"
    ),
    "USER_ID_DERIVED": "uid || 'AAQ'",
    "CLIENT_IP": "ip",
    "URI_ID_DERIVED": (
        f"CASE WHEN kind IN (0, 7) THEN '003' || {_RECORD} || 'AAQ' "
        f"WHEN kind = 4 THEN '500' || {_RECORD} || 'AAQ' ELSE '' END"
    ),
}


def write_workload(path: Path, events: int, seed: int) -> None:
    """One RestApi EventLogFile CSV of ``events`` rows, every value quoted as Salesforce
    writes them, the planted rows in place of background ones."""
    header = HEADERS["RestApi"]
    assert set(header) == set(_COLUMNS), "the generator must write the real header's columns"
    # bounded, spilling to disk: 5M rows sorted by time took 5 GB of a machine others share
    con = duckdb.connect(config={"memory_limit": "2GB"})
    con.execute("SET enable_progress_bar = false")
    at, role, k = zip(*planted_rows(events, seed), strict=True)
    con.execute(
        "CREATE TABLE planted AS SELECT unnest($at) AS i, unnest($role) AS role, unnest($k) AS k",
        {"at": list(at), "role": list(role), "k": list(k)},
    )
    select = ", ".join(f"{_COLUMNS[c]} AS {c}" for c in header)
    con.execute(
        f"COPY (SELECT {select} FROM (SELECT *, {_row_facts()} FROM ("
        "SELECT r.i, coalesce(p.role, 0) AS role, coalesce(p.k, 0) AS k, "
        f"TIMESTAMP '2025-08-01' + to_microseconds(r.i * {STEP_US}) AS t, "
        "((r.i + $seed * 1000003) * 2654435761) % 4294967296 AS h "
        f"FROM range({events}) r(i) LEFT JOIN planted p USING (i))) ORDER BY i) "
        f"TO {path_lit(path)} (HEADER, FORCE_QUOTE *)",
        {"seed": seed, "salt": f"peer-{seed}"},
    )
    con.close()


def workload(out: Path, events: int, seed: int) -> Path:
    """The CSV for ``events`` and ``seed`` under ``out``, written once and reused."""
    path = out / f"peer-{events}-{seed}" / "RestApi.csv"
    marker = path.parent / ".complete"
    if not marker.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_workload(path, events, seed)
        marker.write_text("ok")
    return path


def crmwatch_hits(db: Path) -> dict[str, dict[str, int]]:
    """Per rule of the five: alerts, and the distinct events they name (a correlation's
    alerts are its spans)."""
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute(
        "SELECT rule_id, count(DISTINCT alert_id), count(DISTINCT e) FROM "
        "(SELECT rule_id, alert_id, unnest(event_ids) AS e FROM alerts) GROUP BY rule_id"
    ).fetchall()
    con.close()
    found = {RULE_IDS[r]: (alerts, events) for r, alerts, events in rows if r in RULE_IDS}
    hits = {}
    for name in RULE_IDS.values():
        alerts, events = found.get(name, (0, 0))
        hits[name] = {"events": events}
        if name == CORRELATION:
            hits[name]["spans"] = alerts
    return hits


def clear_alerts(db: Path) -> int:
    """Empty the store's alerts, so the next ``detect`` does the same work; the alerts there
    were."""
    con = duckdb.connect(str(db))
    n = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
    con.execute("DELETE FROM alerts")
    con.close()
    return n


def run_crmwatch_side(csv: Path, out: Path) -> dict:
    """Ingest into a fresh store, detect with the five rules, then again with the built-in
    pack as well: seconds, peak RSS and hits of each."""
    db = out / "peer.duckdb"
    db.unlink(missing_ok=True)
    ingest = run_crmwatch("ingest", str(csv), "--db", str(db), "--json")
    inserted = sum(f["inserted"] for f in json.loads(ingest.stdout)["files"])
    rules = str(RULES / "crmwatch")
    five = run_crmwatch("detect", "--no-builtin", "--rules", rules, "--db", str(db))
    hits = crmwatch_hits(db)
    clear_alerts(db)
    pack = run_crmwatch("detect", "--rules", rules, "--db", str(db))
    pack_hits = crmwatch_hits(db)
    pack_alerts = clear_alerts(db)
    db.unlink(missing_ok=True)
    return {
        "inserted": inserted,
        "ingest_seconds": round(ingest.seconds, 2),
        "detect_seconds": round(five.seconds, 2),
        "seconds": round(ingest.seconds + five.seconds, 2),
        "cpu_seconds": round(ingest.cpu_seconds + five.cpu_seconds, 2),
        "with_pack": {
            "detect_seconds": round(pack.seconds, 2),
            "seconds": round(ingest.seconds + pack.seconds, 2),
            "alerts": pack_alerts,
            "hits_same": pack_hits == hits,
            "peak_rss_mb": pack.peak_rss_mb,
        },
        "peak_rss_mb": max(ingest.peak_rss_mb, five.peak_rss_mb),
        "hits": hits,
    }


class NotRun(Exception):
    """Zircolite cannot run here (no checkout, no requirements): the report says why."""


def zircolite_checkout(given: Path | None, out: Path) -> Path:
    """The Zircolite checkout: ``--zircolite``, else a shallow clone of the tag under ``out``."""
    if given is not None:
        if not (given / "zircolite.py").exists():
            raise NotRun(f"no zircolite.py in {given}")
        return given
    clone = out / f"Zircolite-{ZIRCOLITE_TAG}"
    if (clone / "zircolite.py").exists():
        return clone
    cmd = ["git", "clone", "--depth", "1", "--branch", ZIRCOLITE_TAG, ZIRCOLITE_URL, str(clone)]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NotRun(f"git clone {ZIRCOLITE_URL} failed: {e}") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise NotRun(f"git clone {ZIRCOLITE_URL} failed: {last}")
    return clone


def zircolite_python(given: Path | None, checkout: Path, out: Path) -> Path:
    """A Python with Zircolite's requirements: ``--zircolite-python``, else a venv under
    ``out`` made from the checkout's requirements.txt (kept while they do not change).

    An absolute path, as Zircolite runs in a directory of its own; not ``resolve()``d: a
    venv's python is a symlink, and the link is what makes it the venv's."""
    if given is not None:
        return given.absolute()
    reqs = checkout / "requirements.txt"
    venv = (out / "zircolite-venv").absolute()
    py = venv / "bin" / "python"
    stamp = venv / ".requirements-sha256"
    digest = hashlib.sha256(reqs.read_bytes()).hexdigest()
    if py.exists() and stamp.exists() and stamp.read_text() == digest:
        return py
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(py), "-m", "pip", "install", "-q", "-r", str(reqs)],
    ]
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise NotRun(f"{' '.join(cmd[:4])} … failed: {last}")
    stamp.write_text(digest)
    return py


def zircolite_version(py: Path, checkout: Path, out: Path) -> str:
    """The version Zircolite prints (``Zircolite - v3.7.0``), run in ``out``: it leaves a
    log file where it runs."""
    argv = [str(py), str((checkout / "zircolite.py").resolve()), "--version"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, cwd=out)
    except OSError as e:
        raise NotRun(f"cannot run {py}: {e}") from e
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise NotRun(f"zircolite.py --version failed: {last}")
    found = re.search(r"v(\d+\.\d+\.\d+)", done.stdout)
    return found.group(1) if found else "unknown"


def zircolite_config(checkout: Path, out: Path) -> Path:
    """Zircolite's own config with one addition: ROWS_PROCESSED read as an integer. CSV
    values load as text columns, where ``ROWSPROCESSED > 10000`` compares text ('9' >
    '10000'); an integer value makes the column INTEGER. Its transforms directory is named
    absolutely, as the copy lives elsewhere."""
    config = yaml.safe_load((checkout / "config" / "config.yaml").read_text())
    config["transforms_dir"] = str((checkout / "config" / "transforms").resolve())
    config["transforms_enabled"] = True
    config.setdefault("enabled_transforms", []).append("ROWS_PROCESSED_integer")
    config["transforms"]["ROWS_PROCESSED"] = [{
        "info": "ROWS_PROCESSED as an integer (bench/peer)",
        "type": "python",
        "code": "def transform(param):\n    return int(param)\n",
        "alias": False,
        "alias_name": "ROWS_PROCESSED_integer",
        "source_condition": ["csv_input"],
    }]  # fmt: skip
    path = out / "zircolite-config.json"
    path.write_text(json.dumps(config))
    return path


def run_zircolite(py: Path, checkout: Path, csv: Path, out: Path) -> tuple[Child, Path]:
    """Zircolite's whole run on the CSV with the five rules, in its own directory under
    ``out`` (it writes a log and may keep converted rules where it runs)."""
    work = (out / "zircolite-run").resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = work / "detected.json"
    results.unlink(missing_ok=True)
    config = zircolite_config(checkout, out).resolve()
    argv = [
        str(py), str((checkout / "zircolite.py").resolve()), "--csv-input",
        "-e", str(csv.resolve()), "-r", str((RULES / "zircolite").resolve()), "-c", str(config),
        "--timefield", "TIMESTAMPDERIVED", "-o", str(results), "-l", str(work / "zircolite.log"),
    ]  # fmt: skip
    child = run(argv, cwd=work)
    (work / "stdout.txt").write_text(child.stdout)
    return child, results


def merged_spans(windows: list[dict]) -> int:
    """Zircolite's firing windows merged as crmwatch merges them: per group, a window that
    starts before an earlier one ends joins its span."""
    by_group: dict[str, list[tuple[float, float]]] = {}
    for w in windows:
        by_group.setdefault(w["group_keys"], []).append((w["window_start"], w["window_end"]))
    spans = 0
    for group in by_group.values():
        end = None
        for start, stop in sorted(group):
            if end is None or start > end:
                spans += 1
                end = stop
            else:
                end = max(end, stop)
    return spans


def zircolite_hits(results: Path) -> tuple[dict[str, dict[str, int]], int]:
    """Per rule of the five, Zircolite's hits; and its firing windows for the correlation."""
    found = {r["id"]: r for r in json.loads(results.read_text())} if results.exists() else {}
    hits: dict[str, dict[str, int]] = {}
    windows = 0
    for rid, name in RULE_IDS.items():
        matches = found.get(rid, {}).get("matches", [])
        if name != CORRELATION:
            hits[name] = {"events": len({m["row_id"] for m in matches})}
            continue
        events = {e for m in matches for e in json.loads(m["event_ids"])}
        hits[name] = {"events": len(events), "spans": merged_spans(matches)}
        windows = len(matches)
    return hits, windows


def zircolite_side(args: argparse.Namespace, csv: Path, checkout: Path, py: Path) -> dict:
    """Zircolite's run: seconds, peak RSS, hits, or why it failed."""
    child, results = run_zircolite(py, checkout, csv, args.out)
    side: dict = {
        "seconds": round(child.seconds, 2),
        "cpu_seconds": round(child.cpu_seconds, 2),
        "peak_rss_mb": child.peak_rss_mb,
    }
    if child.returncode != 0:
        side["error"] = f"exit {child.returncode}; see {args.out / 'zircolite-run'}"
    side["hits"], side["windows"] = zircolite_hits(results)
    return side


def prepare_zircolite(args: argparse.Namespace) -> tuple[Path, Path, str]:
    """Checkout, Python and version of Zircolite, or :class:`NotRun`."""
    checkout = zircolite_checkout(args.zircolite, args.out)
    py = zircolite_python(args.zircolite_python, checkout, args.out)
    return checkout, py, zircolite_version(py, checkout, args.out)


def measure(args: argparse.Namespace, csv: Path, checkout: Path, py: Path) -> dict:
    """Each engine's fastest of ``--repeat`` runs, the engines alternating so that both meet
    the shared machine's spells of load; every run's seconds, and whether every run of an
    engine found the same hits (a run that disagrees is not hidden by the fastest)."""
    crms, zircs, loads = [], [], []
    for _ in range(args.repeat):
        crms.append(run_crmwatch_side(csv, args.out))
        zircs.append(zircolite_side(args, csv, checkout, py))
        loads.append(round(load_baseline([csv], args.out / "peer-plain.duckdb"), 2))
    crm = min(crms, key=lambda c: c["seconds"])
    zirc = min(zircs, key=lambda z: z["seconds"])
    return {
        "crmwatch": crm,
        "zircolite": zirc,
        "plain_load_seconds": min(loads),
        "runs": [
            [c["seconds"], z["seconds"], load]
            for c, z, load in zip(crms, zircs, loads, strict=True)
        ],
        "steady": all(c["hits"] == crm["hits"] for c in crms)
        and all(z["hits"] == zirc["hits"] and "error" not in z for z in zircs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--zircolite", type=Path, help=f"a checkout of Zircolite {ZIRCOLITE_TAG}")
    ap.add_argument("--zircolite-python", type=Path, help="a Python with its requirements")
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine; the fastest counts")
    args = ap.parse_args()
    if args.events < MIN_EVENTS:
        ap.error(f"--events must be at least {MIN_EVENTS:,}")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"events": args.events, "seed": args.seed, "target_ratio": TARGET_RATIO}
    try:
        checkout, py, version = prepare_zircolite(args)
    except NotRun as e:
        report.update({"not_run": f"not run: {e}", "pass": False})
        finish(report, args.out / "peer.json")
        return 0
    csv = workload(args.out, args.events, args.seed)
    measured = measure(args, csv, checkout, py)
    crm, zirc = measured["crmwatch"], measured["zircolite"]
    planted = expected_hits()
    ratio = zirc["seconds"] / crm["seconds"]
    report.update({
        "input_mb": round(csv.stat().st_size / 1e6, 1),
        "zircolite": {"version": version, "checkout": str(checkout), **zirc},
        "crmwatch": crm,
        "crmwatch_seconds": crm["seconds"],
        "zircolite_seconds": zirc["seconds"],
        "ratio": round(ratio, 2),
        "ratio_with_pack": round(zirc["seconds"] / crm["with_pack"]["seconds"], 2),
        "cpu_ratio": round(zirc["cpu_seconds"] / crm["cpu_seconds"], 2),
        "plain_load_seconds": measured["plain_load_seconds"],
        "plain_load_ratio": round(zirc["seconds"] / measured["plain_load_seconds"], 2),
        "runs_seconds": measured["runs"],  # [crmwatch, Zircolite, plain load] per repetition
        "planted": planted,
        "equal": measured["steady"] and crm["hits"] == zirc["hits"],
        "as_planted": crm["hits"] == planted and zirc["hits"] == planted,
    })  # fmt: skip
    report["pass"] = (
        report["equal"] and report["as_planted"] and crm["inserted"] == args.events
        and ratio >= TARGET_RATIO
    )  # fmt: skip
    return finish(report, args.out / "peer.json")


if __name__ == "__main__":
    sys.exit(main())
