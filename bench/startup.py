"""Benchmark: `crmwatch detect` start-up, with the compiled-pack cache and without.

``crmwatch detect --db EMPTY`` in child processes: on an empty store a run is all start-up,
what every detect pays before its rules read an event (the interpreter, imports, the rule
pack parsed and compiled or read from the cache, the store opened, each rule's query
planned). Measured in the same run, interleaved, the median of ``--runs`` of each:
- baseline: ``python -c "import duckdb"``, the interpreter and the store's engine;
- cold: ``CRMWATCH_NO_CACHE=1``, the pack parsed and compiled (YAML, pySigma) every time;
- warm: the pack read from a cache filled by a first run (not counted).
On an empty store no rule can raise an alert, so ``detect`` runs none of their queries
(docs/design.md): the same warm run on a store with one event for each rule of the pack
(``warm_every_rule``, every query planned and run on a few events) is what start-up costs a
store that has events; one more such run with ``CRMWATCH_TRACE=1`` tells how much of it DuckDB
spends planning and running the rules' queries.

crmwatch's modules are byte-compiled first, as installing it does: with
PYTHONDONTWRITEBYTECODE set, every run would compile them again.

Target (issue 21): warm under 0.5 s.

Usage: python bench/startup.py [--runs 15] [--out bench/out]
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from child import finish, run_crmwatch

import crmwatch
from crmwatch.store import Store

TARGET_SECONDS = 0.5


def baseline() -> float:
    """Wall seconds of ``python -c "import duckdb"``."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import duckdb"], check=True)
    return time.perf_counter() - start


def in_rule_queries(db: Path) -> tuple[float, int]:
    """Seconds a warm ``detect`` spends in its rules' queries (from its trace), and how many
    rules ran."""
    run = subprocess.run([sys.executable, "-m", "crmwatch", "detect", "--db", str(db)],
                         env={**os.environ, "CRMWATCH_TRACE": "1"}, capture_output=True,
                         text=True, check=True)  # fmt: skip
    ms = re.findall(r"^\[trace\] ([0-9.]+) ms  INSERT INTO run_alerts", run.stderr, re.MULTILINE)
    rules = int(re.search(r"of the (\d+) rules run", run.stdout)[1])
    return sum(float(x) for x in ms) / 1000, rules


def every_rule_store(db: Path) -> None:
    """A store holding, for each detection of the built-in pack, one event with the source,
    source type and category it needs (detect/runner.detection_needs): every rule's query
    runs, over a few events."""
    from crmwatch.detect.rules import load_rules
    from crmwatch.detect.runner import detection_needs

    defaults = {"source": "salesforce", "source_type": "api:ApiEvent", "category": "other"}
    rows = set()
    for rf in load_rules():
        for d in rf.detections:
            needs = detection_needs(d)
            rows.add(tuple(min(needs[c]) if c in needs else v for c, v in defaults.items()))
    with Store(db) as store:
        for i, row in enumerate(sorted(rows)):
            store.execute(
                "INSERT INTO events_base (event_id, ts, source, source_type, category) "
                "VALUES (?, ?, ?, ?, ?)",
                [f"e{i}", dt.datetime(2026, 1, 1, 0, i), *row],
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    compileall.compile_dir(Path(crmwatch.__file__).parent, quiet=1)
    cache = args.out / "startup-cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["CRMWATCH_CACHE_DIR"] = str(cache)
    os.environ.pop("CRMWATCH_NO_CACHE", None)
    db = args.out / "startup-empty.duckdb"
    db.unlink(missing_ok=True)
    Store(db).close()
    full = args.out / "startup-every-rule.duckdb"
    full.unlink(missing_ok=True)
    every_rule_store(full)
    detect = ("detect", "--db", str(db))
    run_crmwatch(*detect)  # fills the cache
    times: dict[str, list[float]] = {"baseline": [], "cold": [], "warm": [], "every_rule": []}
    rss = []
    for _ in range(args.runs):
        times["baseline"].append(baseline())
        times["cold"].append(run_crmwatch(*detect, env={"CRMWATCH_NO_CACHE": "1"}).seconds)
        warm = run_crmwatch(*detect)
        times["warm"].append(warm.seconds)
        rss.append(warm.peak_rss_mb)
        times["every_rule"].append(run_crmwatch("detect", "--db", str(full)).seconds)
    queries, rules = in_rule_queries(full)
    median = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "rules": rules, "runs": args.runs,
        "baseline_seconds": round(median["baseline"], 3),
        "cold_seconds": round(median["cold"], 3), "warm_seconds": round(median["warm"], 3),
        "warm_every_rule_seconds": round(median["every_rule"], 3),
        "every_rule_queries_seconds": round(queries, 3),
        "ratio_to_baseline": round(median["warm"] / median["baseline"], 2),
        "cold_to_warm": round(median["cold"] / median["warm"], 2),
        "min_max_seconds": {k: [round(min(v), 3), round(max(v), 3)] for k, v in times.items()},
        "warm_peak_rss_mb": max(rss),
        "target_seconds": TARGET_SECONDS, "pass": median["warm"] < TARGET_SECONDS,
    }  # fmt: skip
    shutil.rmtree(cache, ignore_errors=True)
    return finish(report, args.out / "startup.json")


if __name__ == "__main__":
    sys.exit(main())
