"""What the benchmarks share: one ``crmwatch`` command run as a measured child process, and
the report each prints and keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Child:
    seconds: float
    peak_rss_mb: int
    stdout: str
    returncode: int = 0
    cpu_seconds: float = 0.0  # user + system: what a shared machine's load does not inflate


def run(argv: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Child:
    """Wall time, peak RSS, output, exit code and CPU time of one command.

    Peak RSS is the child's own. ``wait4`` on this child alone is not enough: Linux carries
    the spawning process's high-water mark into the child at ``exec``, so a child of a
    benchmark that grew to 1.4 GB (writing its workload with DuckDB) reports at least 1.4 GB.
    ``wait4``'s figure is kept when it exceeds ours (it is then the child's); otherwise the
    child's ``VmHWM``, read while it runs, is (``wait4``'s, an upper bound, for a child gone
    before the first read)."""
    ours = _high_water_mb("self")
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, cwd=cwd, env={**os.environ, **(env or {})})
        watched = _Watch(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        watched.stop()
        out.seek(0)
        code = os.waitstatus_to_exitcode(status)
        waited = usage.ru_maxrss // 1024
        own = waited > ours or not watched.peak_mb  # not read: gone within 20 ms
        cpu = usage.ru_utime + usage.ru_stime
        return Child(seconds, waited if own else watched.peak_mb, out.read(), code, cpu)


def _high_water_mb(pid: int | str) -> int:
    """``VmHWM`` of a process in MB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


class _Watch(threading.Thread):
    """Reads a child's ``VmHWM`` every 20 ms until stopped; a high-water mark, so a late
    read misses only what the child reached in its last 20 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_mb, self._done = pid, 0, threading.Event()
        self.start()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak_mb = max(self.peak_mb, _high_water_mb(self.pid))

    def stop(self) -> None:
        self._done.set()
        self.join()


def run_crmwatch(*args: str, env: dict[str, str] | None = None) -> Child:
    """``python -m crmwatch ARGS`` measured by :func:`run`, with ``env`` added to this
    process's environment; a failure stops the benchmark."""
    child = run([sys.executable, "-m", "crmwatch", *args], env=env)
    if child.returncode != 0:
        raise SystemExit(f"crmwatch {' '.join(args)} failed ({child.returncode})")
    return child


def finish(report: dict, path: Path) -> int:
    """Print the report, keep it at ``path``, and give the exit status its ``pass`` implies."""
    text = json.dumps(report, indent=2)
    print(text)
    path.write_text(text)
    return 0 if report["pass"] else 1
