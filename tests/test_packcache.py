"""The compiled-pack cache: the same alerts as a fresh load, a new pack when a rule or the
code changes, and a cache file that is not safely this user's, or not a pack, never used."""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import crmwatch
from crmwatch.detect import packcache
from crmwatch.detect.baseline import Window
from crmwatch.detect.rules import RuleFile, builtin_rule_dir, load_rules
from crmwatch.detect.runner import alert_sql, detect
from crmwatch.ingest import ingest
from crmwatch.store import Store
from crmwatch.timeutil import parse_utc
from tests.breach import write_breach

LOADED = "rule files from"  # the trace line of a pack read from the cache


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache of this test's, traced."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CRMWATCH_CACHE_DIR", str(folder))
    monkeypatch.setenv("CRMWATCH_TRACE", "1")
    return folder


def packs(folder: Path) -> list[Path]:
    return sorted(folder.glob("pack-*.pickle"))


def cached(capsys: pytest.CaptureFixture, *args: object) -> tuple[list[RuleFile], bool]:
    """``load_rules(*args, cached=True)``, and whether the pack came from the cache."""
    capsys.readouterr()
    files = load_rules(*args, collect_errors=True, cached=True)
    return files, LOADED in capsys.readouterr().err


def rule_dir(tmp_path: Path, *names: str) -> Path:
    """A folder holding copies of built-in rules."""
    folder = tmp_path / "rules"
    folder.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(builtin_rule_dir() / "salesforce" / name, folder / name)
    return folder


def alerts(store: Store, files: list[RuleFile]) -> list[tuple]:
    store.execute("DELETE FROM alerts")
    runs = detect(store, files)
    assert not [r.error for r in runs if r.error]
    return store.execute(
        "SELECT alert_id, rule_id, title, level, risk, principal, first_ts, event_ids, "
        "key_fields::VARCHAR FROM alerts ORDER BY alert_id"
    ).rows


def test_a_cached_pack_raises_the_alerts_of_a_fresh_load(cache, capsys, tmp_path):
    fresh = load_rules(None, collect_errors=True)
    _, was_cached = cached(capsys)
    assert not was_cached and len(packs(cache)) == 1
    files, was_cached = cached(capsys)
    assert was_cached
    assert [rf.path for rf in files] == [rf.path for rf in fresh]
    window = Window(parse_utc("2025-06-05T00:00:00Z"), parse_utc("2025-06-20T00:00:00Z"))
    for new, old in zip(files, fresh, strict=True):
        assert [alert_sql(d, window) for d in new.detections] == [
            alert_sql(d, window) for d in old.detections
        ]
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [write_breach(tmp_path / "logs")])
        expected = alerts(store, fresh)
        assert len({a[1] for a in expected}) >= 3, "the breach should fire several rules"
        assert alerts(store, files) == expected


def test_a_cached_pack_holds_no_pysigma_object(cache, capsys, tmp_path):
    """Reading a pack must not import pySigma, PyYAML or pyparsing (85 ms, start-up): its
    rules are crmwatch's frozen ones (detect/frozen.py), the same level, kind and title; a
    file that could not be loaded keeps what was loaded of it."""
    from crmwatch.detect.frozen import FrozenCorrelation, FrozenRule

    broken = tmp_path / "broken.yml"
    broken.write_text("title: t\nlogsource: {product: okta}\ndetection: {condition: sel}\n")
    fresh = load_rules([broken], collect_errors=True)
    cached(capsys, [broken])
    files, was_cached = cached(capsys, [broken])
    assert was_cached and files[-1].errors == fresh[-1].errors and files[-1].errors
    for new, old in zip(files[:-1], fresh[:-1], strict=True):
        assert all(isinstance(r, FrozenRule | FrozenCorrelation) for r in new.rules)
        assert [(d.rule_id, d.title, d.level, d.kind, d.risk, d.context_levels)
                for d in new.detections] == [
            (d.rule_id, d.title, d.level, d.kind, d.risk, d.context_levels)
            for d in old.detections]  # fmt: skip
    (pack,) = packs(cache)
    data = pack.read_bytes()
    assert b"sigma.rule" not in data and b"sigma.correlations" not in data and b"yaml" not in data


def test_the_cache_is_private_to_its_user(cache, capsys):
    cached(capsys)
    (pack,) = packs(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(pack.stat().st_mode) == 0o600
    assert not list(cache.glob(".pack-*")), "no temporary file left behind"


def test_an_edited_rule_file_is_compiled_again(cache, capsys, tmp_path):
    folder = rule_dir(tmp_path, "login_as_user.yml")
    (rf,) = load_rules([folder], builtin=False, collect_errors=True, cached=True)
    assert rf.level == "low"
    path = folder / "login_as_user.yml"
    path.write_text(path.read_text().replace("\nlevel: low\n", "\nlevel: high\n"))
    (rf,), was_cached = cached(capsys, [folder], False)
    assert not was_cached and rf.level == "high"
    assert len(packs(cache)) == 2


def test_the_same_rules_by_another_path_are_another_pack(cache, capsys, tmp_path):
    first = rule_dir(tmp_path, "login_as_user.yml")
    other = tmp_path / "other"
    shutil.copytree(first, other)
    cached(capsys, [first], False)
    (rf,), was_cached = cached(capsys, [other], False)
    assert not was_cached and rf.path == other / "login_as_user.yml"


def test_another_crmwatch_version_is_another_pack(cache, capsys, monkeypatch):
    cached(capsys)
    monkeypatch.setattr(crmwatch, "__version__", crmwatch.__version__ + ".post1")
    assert not cached(capsys)[1]
    assert len(packs(cache)) == 2


def test_a_change_to_crmwatch_code_is_another_pack(tmp_path):
    """A copy of the package, run as a child, then one comment added to the backend."""
    package = tmp_path / "src" / "crmwatch"
    shutil.copytree(Path(crmwatch.__file__).parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(package.parent), "CRMWATCH_TRACE": "1",
           "CRMWATCH_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip
    load = [sys.executable, "-c", "from crmwatch.detect.rules import load_rules; "
            f"import crmwatch; assert crmwatch.__file__.startswith({str(package)!r}); "
            "load_rules(cached=True)"]  # fmt: skip

    def from_cache() -> bool:
        run = subprocess.run(load, env=env, capture_output=True, text=True, check=True)
        return LOADED in run.stderr

    assert (from_cache(), from_cache()) == (False, True)
    backend = package / "detect" / "backend.py"
    backend.write_text(backend.read_text() + "# changed\n")
    assert from_cache() is False
    assert len(packs(tmp_path / "cache")) == 2


@pytest.mark.parametrize("mode", [0o666, 0o620], ids=["world-writable", "group-writable"])
def test_a_cache_file_others_can_write_is_ignored_and_replaced(cache, capsys, mode):
    cached(capsys)
    (pack,) = packs(cache)
    pack.chmod(mode)
    files, was_cached = cached(capsys)
    assert not was_cached and len(files) == len(load_rules())
    assert stat.S_IMODE(pack.stat().st_mode) == 0o600
    assert cached(capsys)[1]


@pytest.mark.skipif(os.getuid() != 0, reason="giving a file to another user needs root")
def test_a_cache_file_of_another_user_is_ignored_and_replaced(cache, capsys):
    cached(capsys)
    (pack,) = packs(cache)
    os.chown(pack, 4242, 4242)
    assert not cached(capsys)[1]
    assert pack.stat().st_uid == os.getuid()
    assert cached(capsys)[1]


def test_a_symbolic_link_in_the_cache_is_not_followed(cache, capsys, tmp_path):
    cached(capsys)
    (pack,) = packs(cache)
    elsewhere = tmp_path / "elsewhere.pickle"
    pack.rename(elsewhere)
    pack.symlink_to(elsewhere)
    assert not cached(capsys)[1]
    assert not pack.is_symlink()


@pytest.mark.parametrize(
    "damage",
    [lambda b: b"not a pickle", lambda b: b[: len(b) // 2], lambda b: pickle.dumps(["a", "b"])],
    ids=["garbage", "truncated", "not-a-pack"],
)
def test_a_corrupt_cache_file_falls_back_and_is_replaced(cache, capsys, damage):
    fresh = load_rules(None, collect_errors=True)
    cached(capsys)
    (pack,) = packs(cache)
    pack.write_bytes(damage(pack.read_bytes()))
    files, was_cached = cached(capsys)
    assert not was_cached
    assert [rf.rule_id for rf in files] == [rf.rule_id for rf in fresh]
    assert cached(capsys)[1], "the damaged file was replaced by a good pack"


def test_an_unwritable_cache_is_only_traced(tmp_path, monkeypatch, capsys):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CRMWATCH_CACHE_DIR", str(tmp_path / "file" / "cache"))
    monkeypatch.setenv("CRMWATCH_TRACE", "1")
    files = load_rules(None, collect_errors=True, cached=True)
    assert len(files) == len(load_rules()) and not any(rf.errors for rf in files)
    assert "rule cache: not written" in capsys.readouterr().err


def test_no_cache_when_turned_off(cache, capsys, monkeypatch):
    monkeypatch.setenv("CRMWATCH_NO_CACHE", "1")
    cached(capsys)
    assert not cache.exists()


def test_library_calls_load_fresh(cache):
    load_rules(None, collect_errors=True)
    assert not cache.exists()


def test_only_the_most_recently_used_packs_are_kept(cache, capsys, tmp_path):
    folder = rule_dir(tmp_path, "login_as_user.yml")
    path = folder / "login_as_user.yml"
    text = path.read_text()

    def use(version: int) -> bool:
        """Load the pack of this version of the rule; whether it came from the cache."""
        path.write_text(f"{text}# version {version}\n")
        return cached(capsys, [folder], False)[1]

    for version in range(packcache.KEEP):
        use(version)
    assert len(packs(cache)) == packcache.KEEP
    assert use(0)  # now the most recently used
    use(packcache.KEEP)  # one pack too many: the least recently used goes
    assert len(packs(cache)) == packcache.KEEP
    assert use(0), "version 0 was used after version 1: kept"
    assert not use(1), "version 1 was the least recently used: dropped"


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CRMWATCH_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert packcache.cache_dir() == tmp_path / "xdg" / "crmwatch"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as XDG says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert packcache.cache_dir() == tmp_path / "home" / ".cache" / "crmwatch"
    monkeypatch.setenv("CRMWATCH_CACHE_DIR", str(tmp_path / "mine"))
    assert packcache.cache_dir() == tmp_path / "mine"
    monkeypatch.setenv("CRMWATCH_NO_CACHE", "1")
    assert packcache.cache_dir() is None
