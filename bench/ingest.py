"""Benchmark: `crmwatch ingest` of EventLogFile-shaped CSVs against DuckDB's own CSV scan.

Both are measured in the same run on the same files:
- baseline: DuckDB ``read_csv`` reading every column of every file (a full scan: each value
  is parsed and touched by an aggregate), one query per header, as fast as DuckDB reads CSV;
- crmwatch: ``crmwatch ingest`` into a fresh store, in a child process whose peak RSS is read
  from the kernel (``ru_maxrss`` of children).

Targets (issue 16): ingest rate at least 0.5 of DuckDB loading the same files into plain
tables (``ratio_to_plain_load``, measured in the same run); peak RSS under 3 GB. The ratio to
the full scan (issue 2's target, 0.25) is still reported.

Usage: python bench/ingest.py [--events 10000000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import duckdb
from child import finish, run_crmwatch

from crmwatch.simulate.volume import dataset
from crmwatch.sources.elf import read_header

TARGET_RATIO = 0.5  # of the plain load
TARGET_RSS_MB = 3 * 1024


def scan_baseline(files: list[Path]) -> tuple[float, int]:
    """Seconds for DuckDB to read every column of every file, and the rows it read."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for f in files:
        groups[tuple(read_header(f))].append(str(f))
    con = duckdb.connect()
    rows = 0
    start = time.perf_counter()
    for header, paths in groups.items():
        columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in header) + "}"
        touch = ", ".join(f'max(length("{c}"))' for c in header)
        rows += con.execute(
            f"SELECT count(*), {touch} FROM read_csv({paths}, header=true, auto_detect=false, "
            f"columns={columns}, delim=',', quote='\"', escape='\"')"
        ).fetchone()[0]
    return time.perf_counter() - start, rows


def load_baseline(files: list[Path], db: Path) -> float:
    """Seconds for DuckDB to load the same files into tables of a store file (every column as
    text, ZSTD-free defaults): what a plain CSV → table load costs, writing included. Reported
    beside the scan ratio (the issue's target) to show how much of ingest is writing."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for f in files:
        groups[tuple(read_header(f))].append(str(f))
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db))
    start = time.perf_counter()
    for n, (header, paths) in enumerate(groups.items()):
        columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in header) + "}"
        con.execute(
            f"CREATE TABLE t{n} AS SELECT * FROM read_csv({paths}, header=true, "
            f"auto_detect=false, columns={columns}, delim=',', quote='\"', escape='\"')"
        )
    con.execute("CHECKPOINT")
    seconds = time.perf_counter() - start
    con.close()
    db.unlink(missing_ok=True)
    return seconds


def run_ingest(files: list[Path], db: Path) -> tuple[float, int, dict]:
    """Seconds, peak RSS (MB) of a ``crmwatch ingest`` child, and its JSON summary."""
    db.unlink(missing_ok=True)
    child = run_crmwatch("ingest", str(files[0].parent), "--db", str(db), "--json")
    return child.seconds, child.peak_rss_mb, json.loads(child.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    files = dataset(args.out, args.events)
    ingest_s, rss_mb, summary = run_ingest(files, args.out / "bench.duckdb")
    scan_s, rows = scan_baseline(files)
    load_s = load_baseline(files, args.out / "load.duckdb")
    inserted = sum(f["inserted"] for f in summary["files"])
    quarantined = sum(f["quarantined"] for f in summary["files"])
    ratio = (inserted / ingest_s) / (rows / scan_s)
    to_load = (inserted / ingest_s) / (rows / load_s)
    report = {
        "events": rows, "inserted": inserted, "quarantined": quarantined,
        "input_mb": round(sum(f.stat().st_size for f in files) / 1e6, 1),
        "scan_seconds": round(scan_s, 2), "scan_events_per_s": round(rows / scan_s),
        "ingest_seconds": round(ingest_s, 2), "ingest_events_per_s": round(inserted / ingest_s),
        "ratio_to_scan": round(ratio, 3),
        "load_seconds": round(load_s, 2),
        "ratio_to_plain_load": round(to_load, 3), "target_ratio": TARGET_RATIO,
        "peak_rss_mb": rss_mb, "target_rss_mb": TARGET_RSS_MB,
        "pass": to_load >= TARGET_RATIO and rss_mb < TARGET_RSS_MB and inserted == rows,
    }  # fmt: skip
    return finish(report, args.out / "ingest.json")


if __name__ == "__main__":
    sys.exit(main())
