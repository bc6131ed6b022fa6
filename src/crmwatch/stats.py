"""What the store holds: counts by source type, category and day, and the quarantine."""

from __future__ import annotations

import datetime as dt
from typing import Any

from crmwatch.store import Store
from crmwatch.timeutil import iso_z


def store_stats(store: Store) -> dict[str, Any]:
    """Counts a person checks after an ingest; the CLI prints them as tables or JSON."""

    def pairs(sql: str) -> list[dict[str, Any]]:
        return store.execute(sql).dicts()

    return {
        "events": store.scalar("SELECT count(*) FROM events_base"),
        "first_ts": _iso(store.scalar("SELECT min(ts) FROM events_base")),
        "last_ts": _iso(store.scalar("SELECT max(ts) FROM events_base")),
        "files": store.scalar("SELECT count(*) FROM ingest_files"),
        "by_source_type": pairs(
            "SELECT source_type, count(*) AS events FROM events_base "
            "GROUP BY ALL ORDER BY events DESC, source_type"
        ),
        "by_category": pairs(
            "SELECT category, count(*) AS events FROM events_base "
            "GROUP BY ALL ORDER BY events DESC, category"
        ),
        "by_day": [
            {"day": str(r["day"]), "events": r["events"]}
            for r in pairs(
                "SELECT CAST(ts AS DATE) AS day, count(*) AS events FROM events_base "
                "GROUP BY ALL ORDER BY day"
            )
        ],
        "by_ip_class": pairs(
            "SELECT ip_class, count(*) AS events FROM events GROUP BY ALL ORDER BY events DESC"
        ),
        # events kept although another has the same native id (other content): a re-export
        "id_collisions": store.scalar(
            "SELECT count(*) - count(DISTINCT (source_type, native_id)) FROM events_base "
            "WHERE native_id IS NOT NULL"
        ),
        "quarantined": store.scalar("SELECT coalesce(sum(records), 0) FROM quarantine"),
        "quarantine_by_reason": pairs(
            "SELECT reason, sum(records) AS records FROM quarantine GROUP BY ALL "
            "ORDER BY records DESC"
        ),
        "enrichment": {
            "geoip_database": store.meta("geoip_database"),
            "network_lists": store.meta("network_lists"),
        },
    }


def ingest_health(store: Store, files: int = 500) -> dict[str, Any]:
    """:func:`store_stats` with what the console's health page adds: events per source and
    day, and the files read (the first ``files`` of them by path) with their counts."""
    return {
        **store_stats(store),
        "by_source_day": store.execute(
            "SELECT CAST(ts AS DATE) AS day, source, count(*) AS events FROM events_base "
            "GROUP BY ALL ORDER BY day, source"
        ).dicts(),
        "file_list": store.execute(
            "SELECT path, format, records, quarantined FROM ingest_files ORDER BY path LIMIT ?",
            [files],
        ).dicts(),
    }


def _iso(value: Any) -> str | None:
    return iso_z(value) if isinstance(value, dt.datetime) else None if value is None else (
        value.isoformat())  # fmt: skip
