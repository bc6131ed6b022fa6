"""Where each stream resumes, every pull's account, and landing a fetched body in the store.

A body lands as a file in the spool folder (written to ``.NAME.part``, synced, then renamed
into place, so a kill never leaves half a file under its final name) and goes through the
same ``ingest`` as any file; the stream's position moves only after that, in the store. A
JSON page lands from its bytes; a log file is written by a writer as it downloads, so no
stage holds the whole file in memory (issue 16).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from crmwatch.config import Config
from crmwatch.connectors.http import ConnectorError, Http
from crmwatch.errors import CrmwatchError
from crmwatch.ingest import ingest
from crmwatch.store import Store

# Fills an open spool file, from its first byte (it may seek(0) and truncate to start again),
# and returns how many records it wrote.
Writer = Callable[[BinaryIO], int]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def position(store: Store, connector: str, stream: str) -> str | None:
    row = store.execute(
        "SELECT position FROM connector_state WHERE connector = ? AND stream = ?",
        [connector, stream],
    ).first()
    return row[0] if row else None


def move(store: Store, connector: str, stream: str, where: str) -> None:
    store.execute(
        "INSERT OR REPLACE INTO connector_state VALUES (?, ?, ?, ?)",
        [connector, stream, where, _now()],
    )


def forget(store: Store, connector: str) -> None:
    store.execute("DELETE FROM connector_state WHERE connector = ?", [connector])


@dataclass
class Pull:
    """One pull's account, kept in ``connector_pulls``."""

    connector: str
    started_at: dt.datetime = field(default_factory=_now)
    pages: int = 0
    records: int = 0
    inserted: int = 0
    retries: int = 0
    status: str = "running"
    detail: str = ""
    files: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    http: Http | None = None  # the client, for its retry count

    def save(self, store: Store) -> None:
        store.execute(
            "INSERT INTO connector_pulls VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                self.connector,
                self.started_at,
                _now(),
                self.pages,
                self.inserted,
                self.retries,
                self.status,
                self.detail,
            ],
        )


@contextmanager
def recorded(store: Store, connector: str) -> Iterator[Pull]:
    """A pull whose account is kept whatever ends it: ``ok`` (or the status the body set,
    such as ``stopped``), ``failed`` with the reason, or ``interrupted`` (Ctrl-C); the
    retries of the client it names in ``Pull.http``."""
    pull = Pull(connector)
    try:
        yield pull
        if pull.status == "running":
            pull.status = "ok"
    except CrmwatchError as e:
        pull.status, pull.detail = "failed", str(e)
        raise
    except BaseException:
        pull.status, pull.detail = "interrupted", "stopped before it finished; run it again"
        raise
    finally:
        if pull.http is not None:
            pull.retries = pull.http.retries
        pull.save(store)


def last_pulls(store: Store) -> list[dict]:
    """Each connector's newest pull."""
    return store.execute(
        "SELECT connector, arg_max(started_at, started_at) AS started_at, "
        "arg_max(finished_at, started_at) AS finished_at, arg_max(pages, started_at) AS pages, "
        "arg_max(inserted, started_at) AS inserted, arg_max(status, started_at) AS status, "
        "arg_max(detail, started_at) AS detail FROM connector_pulls GROUP BY connector "
        "ORDER BY connector"
    ).dicts()


def land(
    store: Store,
    pull: Pull,
    spool: Path,
    name: str,
    body: bytes | Writer,
    config: Config,
    records: int | None = None,
) -> None:
    """Write a fetched body to ``spool/name`` and ingest it.

    Args:
        body: the bytes (a JSON page), or a ``Writer`` that writes the file into the open
            ``.part`` and returns its record count (a download streamed to disk).
        records: the records of ``body`` when it is bytes; a writer's count replaces it.

    A file ingest could not read fails the pull (its position does not move, so the next
    pull fetches it again). A writer that fails leaves nothing: the ``.part`` is removed.
    """
    # raw API pages name customers and staff: readable by their owner only
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = spool / name
    part = spool / f".{name}.part"
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(body, bytes):
                f.write(body)
            else:
                records = body(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)
    summary = ingest(store, [path], config=config, rescan=True)
    for f in summary.files:
        if f.error:
            raise ConnectorError(f"{pull.connector}: {name} could not be ingested: {f.error}")
        pull.inserted += f.inserted
        if f.quarantined:
            pull.problems.append(
                f"{name}: {f.quarantined} records quarantined (crmwatch quarantine)"
            )
    pull.pages += 1
    pull.records += records or 0
    pull.files.append(str(path))
