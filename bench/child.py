"""What the benchmarks share: one ``crmwatch`` command run as a measured child process, and
the report each prints and keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Child:
    seconds: float
    peak_rss_mb: int
    stdout: str


def run_crmwatch(*args: str, env: dict[str, str] | None = None) -> Child:
    """Wall time, peak RSS and output of ``python -m crmwatch ARGS``, with ``env`` added to
    this process's environment. RSS comes from ``wait4`` on this child alone:
    ``RUSAGE_CHILDREN`` would report the largest child the benchmark ever ran (an ingest that
    built the store, say)."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "crmwatch", *args], stdout=out, env={**os.environ, **(env or {})}
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"crmwatch {' '.join(args)} failed ({status})")
        out.seek(0)
        return Child(seconds, usage.ru_maxrss // 1024, out.read())


def finish(report: dict, path: Path) -> int:
    """Print the report, keep it at ``path``, and give the exit status its ``pass`` implies."""
    text = json.dumps(report, indent=2)
    print(text)
    path.write_text(text)
    return 0 if report["pass"] else 1
