"""A bad-input corpus, generated (not committed as megabytes): each case is files in real
formats with known damage, and the number of good records in them counted here, by
construction, without crmwatch.

The good rows are EventLogFile Login rows shaped on the public sample
``tests/fixtures/real/salesforce/beats_login_eventlogfile.csv`` (its header and values), each
with its own REQUEST_ID so a test can say exactly which good row was lost.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REAL

_SAMPLE = REAL / "salesforce" / "beats_login_eventlogfile.csv"
HEADER, _ROW = list(csv.reader(io.StringIO(_SAMPLE.read_text(encoding="utf-8"), newline="")))


def request_id(seed: int, i: int) -> str:
    return f"REQ{seed:03d}-{i:06d}"


def good_rows(n: int, seed: int = 0) -> list[list[str]]:
    """``n`` Login rows, distinct by REQUEST_ID and time."""
    rid, ts = HEADER.index("REQUEST_ID"), HEADER.index("TIMESTAMP")
    rows = []
    for i in range(n):
        row = list(_ROW)
        row[rid] = request_id(seed, i)
        row[ts] = f"2023121{seed % 10}{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}.000"
        rows.append(row)
    return rows


def csv_bytes(rows: list[list[str]], header: list[str] = HEADER) -> bytes:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([header, *rows])
    return out.getvalue().encode("utf-8")


def with_region(data: bytes, at_line: int, region: bytes) -> bytes:
    """``data`` with ``region`` inserted as lines of its own before line ``at_line`` (1-based)."""
    lines = data.split(b"\n")
    return b"\n".join([*lines[: at_line - 1], region, *lines[at_line - 1 :]])


def complete_rows_before_cut(gz: bytes) -> int:
    """Rows wholly inside what a cut gzip stream still decompresses to (header excluded)."""
    text = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(gz)
    return max(0, text.count(b"\n") - 1)


@dataclass
class Case:
    name: str
    paths: list[Path]
    good: int  # good records in the case, counted here
    good_ids: set[str]  # their REQUEST_IDs (CSV cases)


def build(folder: Path) -> list[Case]:
    """Every case of issue 14, written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(14)
    cases = []

    def write(name: str, data: bytes) -> Path:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def ids(seed: int, n: int) -> set[str]:
        return {request_id(seed, i) for i in range(n)}

    for size, name in ((512, "random_512_bytes"), (65536, "random_64_kb")):
        data = with_region(csv_bytes(good_rows(2000, 1)), 1002, rnd.randbytes(size))
        cases.append(Case(name, [write(f"{name}.csv", data)], 2000, ids(1, 2000)))

    gz = gzip.compress(csv_bytes(good_rows(5000, 2)))
    cut = gz[: len(gz) // 2]
    kept = complete_rows_before_cut(cut)
    cases.append(Case("gzip_cut_in_half", [write("cut.csv.gz", cut)], kept, ids(2, kept)))

    mixed = [write(f"mixed/good{k}.csv", csv_bytes(good_rows(1000, 10 + k))) for k in range(5)]
    corrupt = with_region(csv_bytes(good_rows(2000, 20)), 700, rnd.randbytes(4096))
    mixed.append(write("mixed/corrupt.csv", corrupt))
    gz = gzip.compress(csv_bytes(good_rows(4983, 21)))
    mixed.append(write("mixed/truncated.csv.gz", gz[: len(gz) * 3 // 4]))
    kept = complete_rows_before_cut(gz[: len(gz) * 3 // 4])
    good = set().union(*(ids(10 + k, 1000) for k in range(5)), ids(20, 2000), ids(21, kept))
    cases.append(Case("folder_with_bad_files", [folder / "mixed"], len(good), good))

    header = list(HEADER)
    header[HEADER.index("CPU_TIME")] = "USER_ID"  # the sample's USER_ID column, twice
    data = csv_bytes(good_rows(1000, 3), header)
    cases.append(
        Case("duplicated_header_name", [write("dup_header.csv", data)], 1000, ids(3, 1000))
    )

    okta = [json.loads(x) for x in (REAL / "okta" / "elastic_test-okta-system-events.log")
            .read_text(encoding="utf-8").splitlines() if x.strip()]  # fmt: skip
    lines = []
    for i in range(1000):
        event = dict(okta[i % len(okta)], uuid=f"corpus-{i:04d}")
        if i == 500:
            event["displayMessage"] = "x" * (50 << 20)
        lines.append(json.dumps(event))
    cases.append(Case("ndjson_with_a_50_mb_value",
                      [write("big_value.ndjson", "\n".join(lines).encode())], 1000, set()))  # fmt: skip

    deep = [*lines[:3], "[" * 100_000 + "]" * 100_000, *lines[3:10]]
    path = write("deep.ndjson", "\n".join(deep).encode())
    cases.append(Case("ndjson_nested_100000_deep", [path], 10, set()))
    return cases
