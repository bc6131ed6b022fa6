"""Shared fixtures: the real-format public samples and fresh stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crmwatch.ingest import ingest
from crmwatch.store import Store

ROOT = Path(__file__).resolve().parents[1]
REAL = (
    ROOT / "tests" / "fixtures" / "real"
)  # vendored from the public repositories in its PROVENANCE.md
BAD = ROOT / "tests" / "bad_input"
LOG_SUFFIXES = (".log", ".json", ".csv", ".raw")


@pytest.fixture(autouse=True, scope="session")
def pack_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The compiled-pack cache of every command the tests run, in process or as a child: a
    folder of the test session's, never the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("pack-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CRMWATCH_CACHE_DIR", str(folder))
        mp.delenv("CRMWATCH_NO_CACHE", raising=False)
        yield folder


def real_files() -> list[Path]:
    """Every public sample log (PROVENANCE.md is documentation, not a log)."""
    return sorted(p for p in REAL.rglob("*") if p.suffix in LOG_SUFFIXES)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "t.duckdb") as s:
        yield s


@pytest.fixture(scope="module")
def real_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """One store holding every real sample, ingested once per test module."""
    with Store(tmp_path_factory.mktemp("real") / "real.duckdb") as s:
        ingest(s, [REAL])
        yield s
