"""Enrichment: fill the ``ip_info`` and ``ua_info`` dimension tables, offline.

Each step looks only at values the store has not classified yet, so an ingest pays for the
new IPs and user agents of its own batch, never for the whole history. ``refresh`` clears
and recomputes everything (after the user changes corporate ranges or network lists).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from crmwatch.config import EnrichConfig
from crmwatch.enrich.ip import NetworkLists, classify_ip, geoip_database
from crmwatch.enrich.useragent import classify_user_agent
from crmwatch.store import Store

Step = Callable[[Store, NetworkLists, str], int]


def enrich_ips(store: Store, lists: NetworkLists, table: str) -> int:
    ips = [
        r[0]
        for r in store.execute(
            f"SELECT DISTINCT src_ip FROM {table} WHERE src_ip IS NOT NULL "
            "AND src_ip NOT IN (SELECT ip FROM ip_info)"
        ).rows
    ]
    if not ips:
        return 0
    infos = [classify_ip(ip, lists) for ip in ips]
    table = pa.table(
        {
            "ip": [i.ip for i in infos],
            "country": [i.country for i in infos],
            "asn": pa.array([i.asn for i in infos], pa.int64()),
            "as_org": [i.as_org for i in infos],
            "ip_class": [i.ip_class for i in infos],
            "class_source": [i.class_source for i in infos],
        }
    )
    with store.registered("_ip_new", table):
        store.execute("INSERT INTO ip_info SELECT * FROM _ip_new ON CONFLICT DO NOTHING")
    return len(infos)


def enrich_user_agents(store: Store, lists: NetworkLists, table: str) -> int:
    agents = [
        r[0]
        for r in store.execute(
            f"SELECT DISTINCT user_agent FROM {table} WHERE user_agent IS NOT NULL "
            "AND user_agent NOT IN (SELECT user_agent FROM ua_info)"
        ).rows
    ]
    if not agents:
        return 0
    table = pa.table({"user_agent": agents, "ua_class": [classify_user_agent(a) for a in agents]})
    with store.registered("_ua_new", table):
        store.execute("INSERT INTO ua_info SELECT * FROM _ua_new ON CONFLICT DO NOTHING")
    return len(agents)


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
