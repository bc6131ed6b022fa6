"""Benchmark: `crmwatch ingest` of Okta System Log JSON against DuckDB's own JSON load.

The events are the simulated org's Okta shape (``crmwatch simulate``'s system_log.ndjson),
repeated with fresh ``uuid``, ``published`` and addresses to ``--events``, written once under
``--out`` as NDJSON and as one JSON array. Measured in one run, per form:
- baseline: DuckDB ``read_json`` loading the file into a table of a store file;
- crmwatch: ``crmwatch ingest`` of the same file into a fresh store, in a child process whose
  peak RSS is read from the kernel.

Targets (issue 16): at least 0.5 of the plain load (``ratio_to_plain_load``: baseline seconds
over ingest seconds) and peak RSS under 3 GB, at 10M events. The plain load writes typed
columns; crmwatch normalises each record, keeps it whole (``raw``) with an md5 id and maps it
to some thirty columns, so the ratio is bounded well below 1 (docs/design.md, "Performance
(bench/ingest_json)").

Usage: python bench/ingest_json.py [--events 1000000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb
from child import finish, run_crmwatch

from crmwatch.simulate.org import simulate

TARGET_RATIO = 0.5
TARGET_RSS_MB = 3 * 1024


def files(out: Path, events: int) -> tuple[Path, Path]:
    folder = out / f"ingest-json-{events}"
    ndjson, array = folder / "okta.ndjson", folder / "okta-array.json"
    marker = folder / ".complete"
    if marker.exists():
        return ndjson, array
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        simulate(Path(tmp), customers=1000, employees=40, days=14, seed=3)
        seed = [json.loads(x) for x in (Path(tmp) / "logs" / "okta" / "system_log.ndjson").open()]
    with ndjson.open("w") as f:
        for i in range(events):
            e = dict(seed[i % len(seed)])
            e["uuid"] = f"bench-{i:012d}"
            e["published"] = f"2025-07-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00.000Z"
            e["client"] = {**e.get("client", {}), "ipAddress": f"10.{i % 250}.{i // 250 % 250}.1"}
            f.write(json.dumps(e) + "\n")
    with ndjson.open() as src, array.open("w") as dst:  # the same events as one array
        dst.write("[\n")
        for n, line in enumerate(src):
            dst.write(("" if n == 0 else ",\n") + line.rstrip("\n"))
        dst.write("\n]\n")
    marker.write_text("ok")
    return ndjson, array


def load_baseline(path: Path, db: Path, fmt: str) -> float:
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    start = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{path}', format='{fmt}')")
    con.close()
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ndjson, array = files(args.out, args.events)
    report: dict = {"events": args.events, "target_ratio": TARGET_RATIO,
                    "target_rss_mb": TARGET_RSS_MB}  # fmt: skip
    ok = True
    for name, path, fmt in (("ndjson", ndjson, "newline_delimited"), ("array", array, "array")):
        db = args.out / f"ingest-json-{name}.duckdb"
        base = load_baseline(path, args.out / "ingest-json-base.duckdb", fmt)
        db.unlink(missing_ok=True)
        child = run_crmwatch("ingest", str(path), "--db", str(db), "--json")
        stored = duckdb.connect(str(db), read_only=True).execute(
            "SELECT count(*) FROM events_base").fetchone()[0]  # fmt: skip
        ratio = base / child.seconds
        report[name] = {"load_seconds": round(base, 2), "ingest_seconds": round(child.seconds, 2),
                        "events_stored": stored, "ratio_to_plain_load": round(ratio, 3),
                        "peak_rss_mb": child.peak_rss_mb}  # fmt: skip
        ok = ok and ratio >= TARGET_RATIO and child.peak_rss_mb < TARGET_RSS_MB
        ok = ok and stored == args.events
    report["ingest_seconds"] = report["ndjson"]["ingest_seconds"]
    report["ratio_to_plain_load"] = report["ndjson"]["ratio_to_plain_load"]
    report["pass"] = ok
    return finish(report, args.out / "ingest_json.json")


if __name__ == "__main__":
    sys.exit(main())
