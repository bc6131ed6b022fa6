"""What rules know beyond one event: whether a principal is a person or a service, which
network an address belongs to, which report an event is about, and where countries' people
live (for impossible travel).

A stolen integration token and a person's new phone both show up as "an API client at a new
address". They are not the same news: an integration runs from a few fixed places on a
schedule, a person moves. So rules may ask ``principal_kind`` and hold services to a tighter
baseline than people, and key network novelty on ``network`` (the AS organisation, else the
/24 or /48 prefix) rather than on the single address a NAT pool or a carrier hands out.

These are computed per ``detect`` run into temporary tables, before any rule runs
(:func:`prepare`): ``principal_profiles`` (each principal's first interactive sign-in) and
``country_cells`` (where each country's towns are, from the bundled GeoNames extract).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

from crmwatch.schema import Category, principal_sql
from crmwatch.sql import lit, lit_list
from crmwatch.store import Store

# A principal is a person from its first interactive sign-in on: an Okta session of a user,
# or a successful sign-in with a browser or the Salesforce mobile app. Integrations sign in
# with OAuth flows and their own clients, and never have one. Judged at each event's time, so
# that a stolen token later used with a browser user agent does not rewrite the token's past.
# Records that describe a state with its creation date, not an action seen when it happened:
# they say who exists, not since when we have been watching (baseline learning).
SNAPSHOT_TYPES = ("api:OauthToken",)

INTERACTIVE = (
    f"category = {lit(Category.AUTHENTICATION)} AND outcome = 'success' AND "
    "((source = 'okta' AND actor_type = 'user') OR ua_class IN ('browser', 'mobile-app'))"
)
# Salesforce ids come 15- or 18-character (ELF rows and event objects differ): key on 15.
# The byte length first: most ids are not 18 bytes, and the regular expression, run on every
# one, was most of the cost of keying millions of events (an 18-character match is 18 bytes).
ID_KEY = (
    "CASE WHEN strlen({c}) = 18 AND regexp_full_match({c}, '[a-zA-Z0-9]{{18}}') "
    "THEN left({c}, 15) ELSE {c} END"
)
PRINCIPAL_KEY = "lower(coalesce(user_name, " + ID_KEY.format(c="user_id") + "))"

PRINCIPAL_KIND = (
    "coalesce((SELECT 'person' FROM principal_profiles _p WHERE _p.key = "
    f"{PRINCIPAL_KEY} AND _p.person_since <= ts), 'service')"
)
# The network an address belongs to: its AS organisation, else its /24 (IPv4) or /48 (IPv6).
NETWORK = (
    "coalesce(as_org, CASE WHEN contains(src_ip, ':') THEN "
    "array_to_string(string_split(src_ip, ':')[1:3], ':') || '::/48' "
    "ELSE regexp_extract(src_ip, '^([0-9]+\\.[0-9]+\\.[0-9]+)\\.', 1) || '.0/24' END)"
)

# The report a report event is about, as a 15-character id: ReportEvent ``ReportId``, the
# Report ELF's REPORT_ID(_DERIVED), the ReportExport ELF's URI_ID_DERIVED or its URI
# ("/00O…"). Read from the raw record: only report events pay for it.
REPORT = (
    "left(coalesce(json_extract_string(raw, '$.ReportId'), "
    "json_extract_string(raw, '$.REPORT_ID_DERIVED'), json_extract_string(raw, '$.REPORT_ID'), "
    "nullif(regexp_extract(coalesce(json_extract_string(raw, '$.URI_ID_DERIVED'), '') || ' ' || "
    "coalesce(json_extract_string(raw, '$.URI'), ''), '(00O[A-Za-z0-9]{12,15})', 1), '')), 15)"
)

CELLS_FILE = "country_cells.csv"
# Half the diagonal of a one-degree cell, twice (one cell each side), in km: the distance
# between two countries' nearest cells less this never exceeds the distance between the towns.
CELL_SLACK_KM = 160


def prepare(store: Store, statements: Iterable[str] | None = None) -> None:
    """Build the temporary tables the rules' virtual fields read (idempotent, per run): those
    ``statements`` name, or all of them. A table no statement names cannot be read by it, and
    on a store with no event a rule needs, no rule reads any (start-up, docs/design.md)."""
    text = None if statements is None else "\n".join(statements)

    def wanted(*tables: str) -> bool:
        return text is None or any(t in text for t in tables)

    if wanted("principal_profiles"):
        store.execute(
            f"""CREATE OR REPLACE TEMP TABLE principal_profiles AS
            SELECT key, min(ts) AS person_since FROM (
                SELECT lower(user_name) AS key, ts FROM events
                WHERE user_name IS NOT NULL AND {INTERACTIVE}
                UNION ALL
                SELECT lower({ID_KEY.format(c="user_id")}), ts FROM events
                WHERE user_id IS NOT NULL AND {INTERACTIVE})
            GROUP BY key"""
        )
    # When each principal was first seen doing something: the learning period of every
    # baseline grouped by principal or person starts there (one scan here, not one per rule).
    if wanted("first_seen_principal", "first_seen_person"):
        store.execute(
            f"""CREATE OR REPLACE TEMP TABLE first_seen_principal AS
            SELECT {principal_sql()} AS g, min(ts) AS _first FROM events
            WHERE coalesce(source_type, '') NOT IN {lit_list(SNAPSHOT_TYPES)} GROUP BY ALL"""
        )
        store.execute(
            """CREATE OR REPLACE TEMP TABLE first_seen_person AS
            SELECT lower(g) AS g, min(_first) AS _first FROM first_seen_principal GROUP BY ALL"""
        )
    if not wanted("country_cells") or store.scalar(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'country_cells' AND temporary"
    ):
        return
    # found from the crmwatch package: naming crmwatch.enrich.data would import crmwatch.enrich
    # and its settings, 10 ms of every `crmwatch detect` (start-up, docs/design.md)
    path = resources.files("crmwatch") / "enrich" / "data" / CELLS_FILE
    lines = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#") and not line.startswith("country,")
    ]
    # the lines as one text, split by DuckDB: 4 ms, where a list per column took 13
    store.execute(
        "CREATE TEMP TABLE country_cells AS SELECT split_part(line, ',', 1) AS country, "
        "split_part(line, ',', 2)::DOUBLE AS lat, split_part(line, ',', 3)::DOUBLE AS lon "
        "FROM (SELECT unnest(string_split(?, chr(10))) AS line)",
        ["\n".join(lines)],
    )


def distance_km(a: str, b: str) -> str:
    """SQL: the great-circle distance in km between points ``a`` and ``b`` (table aliases
    with ``lat`` and ``lon`` columns), by the haversine formula on a 6,371 km sphere."""
    return (
        f"2 * 6371 * asin(sqrt(pow(sin(radians({b}.lat - {a}.lat) / 2), 2) + "
        f"cos(radians({a}.lat)) * cos(radians({b}.lat)) * "
        f"pow(sin(radians({b}.lon - {a}.lon) / 2), 2)))"
    )
