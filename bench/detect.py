"""Benchmark: `crmwatch detect` (the whole built-in pack) against one full scan of the store.

Both are measured in the same run on the same store (the ingest benchmark's CSVs, ingested
once and kept under ``--out``):
- baseline: one DuckDB query reading every column of every stored event (``events_base``,
  each value touched by an aggregate);
- crmwatch: ``crmwatch detect`` in a child process, every rule of the pack, alerts written.

Target (issue 3): detect's events/s at least 0.2 of the scan's. The synthetic org carries the
campaign user agents and bulk jobs on a third of its rows, so several rules fire on millions
of events: that is the stress case, not the quiet one.

Usage: python bench/detect.py [--events 10000000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
from child import finish, run_crmwatch

from crmwatch.simulate.volume import dataset

TARGET_RATIO = 0.2


def store(out: Path, events: int) -> Path:
    """A store holding the benchmark CSVs, made once and reused."""
    db = out / f"detect-{events}.duckdb"
    marker = out / f".detect-{events}.complete"
    if not marker.exists():
        files = dataset(out, events)
        db.unlink(missing_ok=True)
        run_crmwatch("ingest", str(files[0].parent), "--db", str(db), "--json")
        marker.write_text("ok")
    return db


def scan_baseline(db: Path) -> tuple[float, int]:
    """Seconds for one query touching every column of every stored event, and the count."""
    con = duckdb.connect(str(db), read_only=True)
    columns = [r[0] for r in con.execute("DESCRIBE events_base").fetchall()]
    touch = ", ".join(f'max(length(CAST("{c}" AS VARCHAR)))' for c in columns)
    start = time.perf_counter()
    rows = con.execute(f"SELECT count(*), {touch} FROM events_base").fetchone()[0]
    seconds = time.perf_counter() - start
    con.close()
    return seconds, rows


def run_detect(db: Path) -> tuple[float, int, int]:
    """Seconds and peak RSS (MB) of a ``crmwatch detect`` child, and the alerts it stored."""
    con = duckdb.connect(str(db))
    con.execute("DELETE FROM alerts")  # every run does the same work
    con.close()
    child = run_crmwatch("detect", "--db", str(db))
    con = duckdb.connect(str(db), read_only=True)
    alerts = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
    con.close()
    return child.seconds, child.peak_rss_mb, alerts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    db = store(args.out, args.events)
    detect_s, rss_mb, alerts = run_detect(db)
    scan_s, rows = scan_baseline(db)
    ratio = (rows / detect_s) / (rows / scan_s)
    report = {
        "events": rows, "alerts": alerts,
        "scan_seconds": round(scan_s, 2), "scan_events_per_s": round(rows / scan_s),
        "detect_seconds": round(detect_s, 2), "detect_events_per_s": round(rows / detect_s),
        "ratio_to_scan": round(ratio, 3), "target_ratio": TARGET_RATIO,
        "peak_rss_mb": rss_mb, "pass": ratio >= TARGET_RATIO,
    }  # fmt: skip
    return finish(report, args.out / "detect.json")


if __name__ == "__main__":
    sys.exit(main())
