"""Benchmark: `crmwatch notify` on a Kering-sized breach against one scan of the snapshot.

The incident and snapshot are the scope benchmark's (bench/scope.py: 7.4 million contacts in
twelve countries, a bulk export of all of them), scoped once. Measured in one run:
- baseline: one DuckDB query reading every column of the snapshot CSV;
- crmwatch: ``crmwatch notify`` in a child process — every regime decided, regulator drafts,
  letters per item set and language (HTML and PDF), and the mailing list of every affected
  customer per regime with the channel read from the snapshot.

Targets (issue 16): notify at most 3x the scan; peak RSS under 4 GB.

Usage: python bench/notify.py [--contacts 7400000] [--out bench/out]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from child import finish, run_crmwatch
from scope import incident_store, scan_baseline, snapshot

TARGET_RATIO = 3.0
TARGET_RSS_MB = 4096
ORG = """[controller]
name = "Maison Example SAS"
establishments = ["FR", "KR", "US"]
languages = ["fr", "en", "ko", "ja"]

[contact]
name = "Data Protection Officer"
email = "dpo@maison.example"
"""


def mailing_list(path: Path) -> tuple[int, bool]:
    """Rows of the mailing list, and whether they are in (customer, regime) order with none
    twice: notify writes it from a table stored in order, without sorting the output."""
    rows, last, in_order = 0, b"", True
    with path.open("rb") as fh:
        next(fh)
        for line in fh:
            key = line.split(b",", 2)[:2]
            joined = b"\0".join(key)
            in_order = in_order and joined > last
            last, rows = joined, rows + 1
    return rows, in_order


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contacts", type=int, default=7_400_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    path = snapshot(args.out, args.contacts)
    db, iid = incident_store(args.out, args.contacts)
    run_crmwatch("scope", iid, "--customers", str(path), "--db", str(db), "--json")
    folder = args.out / f"notify-{args.contacts}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "org.toml").write_text(ORG)
    child = run_crmwatch(
        "notify", iid, "--aware-at", "2025-06-10T12:00:00Z", "--org", str(folder / "org.toml"),
        "--out", str(folder), "--db", str(db),
    )  # fmt: skip
    rows, in_order = mailing_list(folder / iid / "mailing_list.csv")
    scan_s, contacts = scan_baseline(path)
    ratio = child.seconds / scan_s
    report = {
        "contacts": contacts, "mailing_list_rows": rows,
        "letters": len(list((folder / iid / "letters").glob("*.pdf"))),
        "scan_seconds": round(scan_s, 2), "notify_seconds": round(child.seconds, 2),
        "ratio_to_scan": round(ratio, 2), "target_ratio": TARGET_RATIO,
        "peak_rss_mb": child.peak_rss_mb, "target_rss_mb": TARGET_RSS_MB,
        "mailing_list_in_order": in_order,
        "pass": ratio <= TARGET_RATIO and child.peak_rss_mb < TARGET_RSS_MB
        and rows >= contacts and in_order,
    }  # fmt: skip
    return finish(report, args.out / "notify.json")


if __name__ == "__main__":
    sys.exit(main())
