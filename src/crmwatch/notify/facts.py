"""The facts a notification is built from, read from the store: the incident, its scope, and
the affected customers grouped by country, US state and the data exposed about them.

Nothing here reads customer contact details: groups hold counts, field names and
jurisdiction codes (the mailing list reads the snapshot later, and only ids and channels).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from crmwatch.errors import UsageError
from crmwatch.incidents import Incident, get_incident
from crmwatch.notify.elements import elements
from crmwatch.scope.fields import category
from crmwatch.scope.results import stored_scope
from crmwatch.sql import num
from crmwatch.store import Store

# Tactics that mean someone got in from outside: PIPA's and APPI's "unauthorised access".
OUTSIDE_ACCESS_TACTICS = {"initial-access", "credential-access", "persistence"}
# LoginHistory's Application for ordinary sign-ins: not an app worth naming.
GENERIC_APPS = {"n/a", "browser", "unknown", ""}


@dataclass(frozen=True)
class Group:
    """Affected customers who live in one place and had the same fields exposed."""

    country: str | None
    region: str | None  # US state or Canadian province code
    fields: frozenset[str]
    elements: frozenset[str]
    count: int
    # the customers' field sets (``notify_customers.sets`` as text), which the mailing list
    # joins them by; None for groups that are not read from a store (cases)
    bits: str | None = None
    # the one field set of these customers when each exposure is its own customer
    # (``Facts.per_record``): the mailing list joins the exposures by it
    fieldset: int | None = None


@dataclass
class Facts:
    incident: Incident
    scope: dict
    groups: list[Group]
    records: int
    aware_at: dt.datetime
    unauthorized_access: bool
    vector: str
    categories: list[str] = field(default_factory=list)
    # Records the logs bound but cannot list (scope's upper bound): people whose data "may
    # have leaked", counted by the regimes that say so (APPI Rule 7; PIPA from 2026).
    possible: int = 0
    # Every incident crmwatch raises is an outside attack or an insider's unauthorised export:
    # either "may have been committed for a wrongful purpose" (APPI Rule 7(iii)).
    wrongful_purpose: bool = True
    fieldsets: dict[int, list[str]] = field(default_factory=dict)  # exposure field sets
    # Each exposure is its own customer: no record links to another (a case to its contact),
    # so the customers were not grouped and ``notify_customers`` was not built; the mailing
    # list reads the exposures themselves and checks no customer is there twice (a snapshot
    # that repeated an id at scope time), else notify gathers again with grouping.
    per_record: bool = False

    @property
    def affected(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def began(self) -> dt.datetime:
        """When the incident began (its first malicious event): the day that picks the text
        of each law in force."""
        return dt.datetime.fromisoformat(self.incident.first_malicious_at.removesuffix("Z"))


def _set_fields(sets: dict[int, list[str]], order: list[int], bits: str | None) -> frozenset[str]:
    """The fields a customer's field-set bits (``notify_customers.sets`` as text, leftmost bit
    first) stand for: the union of those sets' fields."""
    chosen = [order[i] for i, b in enumerate(bits or "") if b == "1"]
    return frozenset(f for k in chosen for f in sets.get(k, []))


def gather(store: Store, incident_id: str, aware_at: dt.datetime, group: bool = False) -> Facts:
    """The incident's facts, its affected customers in groups by place and field sets.

    Grouping the exposures per customer (a hash aggregate over millions of rows, the
    slowest step of notify before the mailing list) is skipped unless ``group`` is set or
    a record links to another customer (a case to its contact): each exposure is then its
    own customer and the groups are counted from the exposures directly. A customer that is
    nonetheless there twice (one id in two snapshot rows) is caught by the mailing list,
    which then asks for this again with ``group`` (``Facts.per_record``)."""
    incident = get_incident(store, incident_id)
    scope = stored_scope(store, incident.id)
    if scope is None:
        raise UsageError(
            f"{incident.id} has not been scoped: run `crmwatch scope {incident.id} --customers …` "
            "first (notification needs the affected customers)"
        )
    sets = dict(
        store.execute(
            "SELECT fieldset, fields FROM exposure_fieldsets WHERE incident_id = ?", [incident.id]
        ).rows
    )
    # A customer's field sets are one BIT value, bit i for the i-th set in ``order``: it
    # groups and joins as one fixed-size value, where a sorted list of set ids took three
    # times as long to build.
    order = sorted(sets)
    width = max(len(order), 1)
    linked = group or store.scalar(
        "SELECT count(customer_id) FROM exposures WHERE incident_id = ?", [incident.id]
    )
    groups = []
    if linked:
        _group_customers(store, incident.id, order)
        rows = store.execute(
            "SELECT country, state, sets::VARCHAR, count(*) FROM notify_customers GROUP BY ALL"
        ).rows
        for country, state, bits, n in rows:
            fields = _set_fields(sets, order, bits)
            groups.append(Group(country, state, fields, frozenset(elements(fields)), n, bits))
    else:
        rows = store.execute(
            "SELECT country, us_state, fieldset, count(*) FROM exposures WHERE incident_id = ? "
            "GROUP BY ALL",
            [incident.id],
        ).rows
        for country, state, fieldset, n in rows:
            bits = "".join("1" if k == fieldset else "0" for k in order).ljust(width, "0")
            fields = _set_fields(sets, order, bits)
            groups.append(
                Group(country, state, fields, frozenset(elements(fields)), n, bits, fieldset)
            )
    records = store.scalar("SELECT count(*) FROM exposures WHERE incident_id = ?", [incident.id])
    outside = bool(set(incident.tactics) & OUTSIDE_ACCESS_TACTICS)
    return Facts(
        incident=incident,
        scope=scope,
        groups=groups,
        records=records,
        aware_at=aware_at,
        unauthorized_access=outside,
        vector=_vector(incident, outside),
        possible=int(scope.get("bounded_upper_bound") or 0),
        fieldsets=sets,
        categories=[c for c in scope.get("categories", []) if c != "other"]
        or sorted({category(f) for f in scope.get("fields", []) if f.lower() != "id"} - {"other"}),
        per_record=not linked,
    )


def reach(channel: str) -> str:
    """SQL ranking how a customer can be written to, from an exposure's ``channel``: 0 e-mail,
    1 post, 2 neither (substitute notice), 3 not in the snapshot's person files (substitute
    notice, and said), NULL when scope did not record it (scoped before it did)."""
    return (
        f"CASE {channel} WHEN 'email' THEN 0 WHEN 'post' THEN 1 WHEN 'none' THEN 2 "
        "WHEN 'unknown' THEN 3 END"
    )


def _group_customers(store: Store, incident_id: str, order: list[int]) -> None:
    """Table ``notify_customers``: one row per affected customer, kept for this connection
    (the mailing list reads it too), with their field sets as one BIT (``order``'s sets)."""
    store.execute("CREATE OR REPLACE TEMP TABLE notify_fieldsets (fieldset UBIGINT, bit INTEGER)")
    store.insert("notify_fieldsets", [(f, i) for i, f in enumerate(order, 1)])
    store.execute(
        f"""CREATE OR REPLACE TEMP TABLE notify_customers AS
        SELECT coalesce(x.customer_id, x.record_id) AS customer, any_value(x.country) AS country,
            any_value(x.us_state) AS state,
            bitstring_agg(b.bit, 1, {num(max(len(order), 1))}) AS sets,
            min({reach("x.channel")}) AS reach, max(x.language) AS language
        FROM exposures x LEFT JOIN notify_fieldsets b USING (fieldset)
        WHERE x.incident_id = ? GROUP BY customer""",
        [incident_id],
    )


def _vector(i: Incident, outside: bool) -> str:
    """The attack vector in a sentence, from the incident's own evidence."""
    how = (
        "unauthorised access from outside the company"
        if outside
        else ("a user's own access to the CRM (no sign of outside access)")
    )
    parts = [f"{how}, detected by: {'; '.join(i.rules[:6])}"]
    apps = [a for a in i.apps if a.lower() not in GENERIC_APPS]
    if apps:
        parts.append(f"connected apps involved: {', '.join(apps)}")
    if i.source_ips:
        parts.append(f"source addresses: {', '.join(i.source_ips[:6])}")
    return ". ".join(parts)
