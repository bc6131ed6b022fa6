"""Enrichment: fill the ``ip_info`` and ``ua_info`` dimension tables, offline.

Each step looks only at values the store has not classified yet, so an ingest pays for the
new IPs and user agents of its own batch, never for the whole history. ``refresh`` clears
and recomputes everything (after the user changes corporate ranges or network lists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pyarrow as pa

from crmwatch.config import EnrichConfig
from crmwatch.enrich.ip import NetworkLists, classify_ip, geoip_database
from crmwatch.enrich.useragent import classify_user_agent
from crmwatch.sql import ident
from crmwatch.store import Store

Step = Callable[[Store, NetworkLists, str], int]


# New values are read and classified a page at a time: a batch with millions of distinct
# addresses (a password spray from a botnet, a month of a large tenant's Okta log) never has
# them all in Python at once, only this many.
PAGE = 50_000


def _new_values(store: Store, table: str, column: str, known: str, key: str) -> Iterator[list[str]]:
    """The distinct values of ``column`` in ``table`` that ``known`` (a table of classified
    values, keyed by ``key``) does not hold yet, in pages of ``PAGE``."""
    col = ident(column)
    store.execute(
        "CREATE OR REPLACE TEMP TABLE _enrich_new AS SELECT v, row_number() OVER () AS n "
        f"FROM (SELECT DISTINCT {col} AS v FROM {table} WHERE {col} IS NOT NULL "
        f"AND {col} NOT IN (SELECT k.{ident(key)} FROM {ident(known)} k))"
    )
    try:
        count = store.scalar("SELECT count(*) FROM _enrich_new")
        for start in range(0, count, PAGE):
            yield [
                r[0]
                for r in store.execute(
                    # numbered, not by rowid: inside a transaction a new table's rowids
                    # start far above zero
                    "SELECT v FROM _enrich_new WHERE n > $a AND n <= $b",
                    {"a": start, "b": start + PAGE},
                ).rows
            ]
    finally:
        store.execute("DROP TABLE IF EXISTS _enrich_new")


def enrich_ips(store: Store, lists: NetworkLists, table: str) -> int:
    done = 0
    for ips in _new_values(store, table, "src_ip", "ip_info", "ip"):
        infos = [classify_ip(ip, lists) for ip in ips]
        page = pa.table(
            {
                "ip": [i.ip for i in infos],
                "country": [i.country for i in infos],
                "asn": pa.array([i.asn for i in infos], pa.int64()),
                "as_org": [i.as_org for i in infos],
                "ip_class": [i.ip_class for i in infos],
                "class_source": [i.class_source for i in infos],
            }
        )
        with store.registered("_ip_new", page):
            store.execute("INSERT INTO ip_info SELECT * FROM _ip_new ON CONFLICT DO NOTHING")
        done += len(infos)
    return done


def enrich_user_agents(store: Store, lists: NetworkLists, table: str) -> int:
    done = 0
    for agents in _new_values(store, table, "user_agent", "ua_info", "user_agent"):
        page = pa.table(
            {"user_agent": agents, "ua_class": [classify_user_agent(a) for a in agents]}
        )
        with store.registered("_ua_new", page):
            store.execute("INSERT INTO ua_info SELECT * FROM _ua_new ON CONFLICT DO NOTHING")
        done += len(agents)
    return done


ENRICHERS: tuple[Step, ...] = (enrich_ips, enrich_user_agents)


def enrich(
    store: Store,
    config: EnrichConfig,
    table: str = "events_base",
    steps: tuple[Step, ...] = ENRICHERS,
) -> dict[str, int]:
    """Classify the values of ``table`` that ``ip_info``/``ua_info`` do not have yet.

    Returns:
        How many new values each step classified, by step name.
    """
    lists = NetworkLists.load(config)
    store.set_meta("geoip_database", geoip_database())
    store.set_meta("network_lists", ", ".join(lists.sources))
    return {step.__name__: step(store, lists, table) for step in steps}


def refresh(store: Store, config: EnrichConfig) -> dict[str, int]:
    """Reclassify every IP and user agent in the store with the current lists."""
    with store.transaction():
        store.execute("DELETE FROM ip_info")
        store.execute("DELETE FROM ua_info")
        return enrich(store, config)
