"""The compiled-pack cache: rule files as loaded and compiled (their rules frozen into
crmwatch's own classes, detect/frozen.py, with the SQL kept on them), pickled, so that a
command run again on an unchanged pack skips parsing YAML and converting Sigma, the slowest
part of its start, and reading it imports neither PyYAML nor pySigma.

A cached pack is used only when everything a fresh load depends on is unchanged: the key is
a SHA-256 over crmwatch's version, the versions of Python and of the libraries that read
rules (pySigma, PyYAML, pyparsing) and of DuckDB (which bound the pack's queries, see
runner.mark_bound), the bytes of every module of the crmwatch package (the
compiler's own sources among them: a code change, released or not, never reuses stale SQL;
all of them, about 1 MB read in 2 ms, because a list of the compiler's modules would go
stale the day it imports one more), each rule file's path as given and resolved and its
bytes, and whether errors are collected.

Where: ``$CRMWATCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/crmwatch``, else ``~/.cache/crmwatch``;
``CRMWATCH_NO_CACHE=1`` turns it off. At most ``KEEP`` packs are kept, the least recently
used dropped first.

Unpickling runs code, so a cache file is read only if it is a regular file owned by the
current user and writable by no one else (checked on the opened file, not followed through a
symbolic link). The directory is created 0700; files are written 0600 under a temporary name
and renamed into place, so a reader never sees half a file. A cache that cannot be read or
written, a corrupt file or a pack that cannot be pickled means loading fresh, with a trace
line (``CRMWATCH_TRACE=1``): never an error.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Callable
from contextlib import suppress
from importlib import metadata
from pathlib import Path

import crmwatch
from crmwatch.detect.frozen import freeze
from crmwatch.detect.rules import RuleFile
from crmwatch.store import trace

LIBRARIES = ("pySigma", "PyYAML", "pyparsing", "duckdb")
KEEP = 4


def cache_dir() -> Path | None:
    """The cache's folder, or None when ``CRMWATCH_NO_CACHE`` turns it off."""
    if os.environ.get("CRMWATCH_NO_CACHE", "") not in ("", "0"):
        return None
    if folder := os.environ.get("CRMWATCH_CACHE_DIR"):
        return Path(folder)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # XDG: a relative path is to be ignored
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "crmwatch"


def pack_key(paths: list[Path], collect_errors: bool) -> str:
    """The SHA-256 naming the pack these rule files compile to with this code."""
    digest = hashlib.sha256()

    def add(part: str | bytes) -> None:  # length-prefixed: no two inputs hash alike
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)

    for part in (crmwatch.__version__, sys.version, str(collect_errors)):
        add(part)
    for name in LIBRARIES:
        add(f"{name} {metadata.version(name)}")
    root = Path(crmwatch.__file__).parent
    for source in sorted(root.rglob("*.py")):
        add(source.relative_to(root).as_posix())
        add(source.read_bytes())
    for path in paths:
        add(str(path))
        add(str(path.resolve()))
        add(path.read_bytes())
    return digest.hexdigest()


def load(
    paths: list[Path], collect_errors: bool, fresh: Callable[[], list[RuleFile]]
) -> list[RuleFile]:
    """The pack of ``paths`` from the cache, else ``fresh()`` (then cached)."""
    try:
        folder = cache_dir()
        if folder is None:
            return fresh()
        target = folder / f"pack-{pack_key(paths, collect_errors)}.pickle"
    except Exception as e:  # an unreadable rule file, no home: the fresh load says what
        trace(f"rule cache: not used: {e!r}")
        return fresh()
    cached = _read(target, paths)
    if cached is not None:
        return cached
    files = fresh()
    _write(target, files)
    return files


def _read(target: Path, paths: list[Path]) -> list[RuleFile] | None:
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        trace(f"rule cache: cannot open {target}: {e}")
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
                trace(f"rule cache: {target} ignored: not a file of this user only")
                return None
            files = pickle.load(f)  # runs code: only from this user's own file (above)
        if not isinstance(files, list) or [getattr(rf, "path", None) for rf in files] != paths:
            raise ValueError("not the pack of these rule files")
        if not all(isinstance(rf, RuleFile) for rf in files):
            raise ValueError("not a list of rule files")
    except Exception as e:  # corrupt, truncated, from other code: the fresh load replaces it
        trace(f"rule cache: {target} not loaded: {e!r}")
        return None
    with suppress(OSError):  # recently used: pruned last
        os.utime(target)
    trace(f"rule cache: {len(files)} rule files from {target}")
    return files


def _frozen(rf: RuleFile) -> RuleFile:
    """The file as cached: its rules frozen (detect/frozen.py), so that reading the pack
    imports no pySigma; as loaded when it has errors or a rule freezing does not know."""
    if rf.errors:
        return rf
    try:
        return freeze(rf) or rf
    except Exception as e:  # a shape of pySigma's this code does not expect
        trace(f"rule cache: {rf.path} kept as loaded: {e!r}")
        return rf


def _mark_bound(files: list[RuleFile]) -> None:
    """Which detections' queries DuckDB binds (runner.mark_bound); none marked if that
    cannot be told (each is then bound when not run, as for a fresh load)."""
    from crmwatch.detect.runner import mark_bound

    try:
        mark_bound(files)
    except Exception as e:
        trace(f"rule cache: queries not bound: {e!r}")


def _write(target: Path, files: list[RuleFile]) -> None:
    folder = target.parent
    try:
        frozen = [_frozen(rf) for rf in files]
        _mark_bound(frozen)
        data = pickle.dumps(frozen, protocol=pickle.HIGHEST_PROTOCOL)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pack-", suffix=".tmp")  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(folder)
    except Exception as e:  # unwritable folder, full disk, an object pickle refuses
        trace(f"rule cache: not written to {folder}: {e!r}")


def _prune(folder: Path) -> None:
    """Keep the ``KEEP`` most recently used packs."""
    packs = []
    for path in folder.glob("pack-*.pickle"):
        with suppress(OSError):  # another process pruned it first
            packs.append((path.stat().st_mtime, path))
    for _, old in sorted(packs, reverse=True)[KEEP:]:
        with suppress(OSError):
            old.unlink()
