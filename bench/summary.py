"""The benchmarks' last reports (``bench/out/*.json``) as one table: stage, size, seconds,
rate, ratio to the baseline measured in the same run, target, met — the table `make bench`
prints last and docs/design.md keeps with the machine it was measured on.

Usage: python bench/summary.py [--out bench/out] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

# stage → (report file, count key, seconds key, ratio key, ratio's baseline, better when);
# "faster": the ratio is the baseline's seconds over crmwatch's (a peer engine, same work)
STAGES = {
    "ingest": ("ingest.json", "events", "ingest_seconds", "ratio_to_plain_load", "plain load",
               "higher"),
    "ingest (Okta NDJSON)": ("ingest_json.json", "events", "ingest_seconds",
                             "ratio_to_plain_load", "plain load", "higher"),
    "detect": ("detect.json", "events", "detect_seconds", "ratio_to_scan", "scan", "higher"),
    "incidents (heavy exporter)": ("incidents.json", "events", "incidents_seconds",
                                   "ratio_to_scan", "scan", "lower"),
    "scope": ("scope.json", "contacts", "scope_seconds", "ratio_to_scan", "scan", "lower"),
    "notify": ("notify.json", "contacts", "notify_seconds", "ratio_to_scan", "scan", "lower"),
    "console page": ("console.json", "events", "page_seconds", "ratio_to_scan", "scan",
                     "lower"),
    "watch (p99)": ("watch.json", "events", "p99_seconds", "ratio_to_baseline",
                    "1 s arrival period", "lower"),
    "detect start-up (cached pack)": ("startup.json", "rules", "warm_seconds",
                                      "ratio_to_baseline", "python -c 'import duckdb'", "lower"),
    "vs Zircolite (5 rules)": ("peer.json", "events", "crmwatch_seconds", "ratio",
                               "Zircolite 3.7.0", "faster"),
}  # fmt: skip


def rows(out: Path) -> list[list[str]]:
    table = []
    for stage, (name, count, seconds, ratio, base, better) in STAGES.items():
        path = out / name
        if not path.exists():
            table.append([stage, "-", "-", "-", "-", "-", "not run"])
            continue
        r = json.loads(path.read_text())
        if "not_run" in r:  # a peer engine that could not run here
            table.append([stage, f"{r[count]:,}", "-", "-", "-", "-", r["not_run"]])
            continue
        target = r.get("target_ratio")
        sign = "≤" if better == "lower" else "≥"
        goal = (f"< {r['target_seconds']:g} s" if "target_seconds" in r
                else f"p99 ≤ {r['target_p99_seconds']:g} s" if "target_p99_seconds" in r
                else f"{sign} {target:g}" + ("×" if better == "faster" else ""))  # fmt: skip
        rate = r.get("rate_per_second") or r[count] / r[seconds]
        table.append([
            stage, f"{r[count]:,}", f"{r[seconds]:.{1 if r[seconds] >= 1 else 2}f}",
            f"{rate:,.0f}", _ratio(r[ratio], base, better),
            goal + (f", RSS < {r['target_rss_mb'] / 1024:g} GB"
                                    if "target_rss_mb" in r else "")
                 + (", same hits" if "equal" in r else ""),
            "met" if r["pass"] else "not met",
        ])  # fmt: skip
    return table


def _ratio(value: float, base: str, better: str) -> str:
    if better == "faster":
        return f"{value:g}× faster than {base}"
    return f"{value:g} of a {base}" if better == "higher" else f"{value:g}× a {base}"


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--markdown", action="store_true", help="A Markdown table for the docs")
    args = ap.parse_args()
    head = ["stage", "size", "seconds", "per second", "ratio", "target", "met"]
    table = rows(args.out)
    if args.markdown:
        print(f"Measured on {machine()}.\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in table:
            print("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(x) for x in col) for col in zip(head, *table, strict=True)]
        for r in [head, *table]:
            print("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)))
        print(f"({machine()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
