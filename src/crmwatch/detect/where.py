"""A rule as SQL: the SQL of a Sigma field name, and a rule's detection as a WHERE clause
over the ``events`` view, converted once per rule by the pySigma backend (detect/backend.py)
and kept on the rule.

Apart from the backend, so that running a pack whose SQL is already kept (a cached pack,
detect/packcache.py) never imports pySigma's converter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from crmwatch.detect.context import NETWORK, PRINCIPAL_KIND, REPORT
from crmwatch.schema import EVENT_VIEW_COLUMNS, person_sql, principal_sql
from crmwatch.sql import json_path

if TYPE_CHECKING:
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

# Names rules may use beside the columns. ``principal`` is who acted (LoginHistory and some
# event objects name the user by id only); ``person`` is the principal lower-cased, to match an
# Okta login email with a Salesforce username; ``hour`` is the UTC hour of day, for baselines
# of when an integration runs; ``principal_kind`` (person | service), ``network`` (AS
# organisation, else prefix) and ``report`` (a report event's report id) are explained in
# detect/context.py.
VIRTUAL_FIELDS = {
    "principal": principal_sql(),
    "person": person_sql(),
    "hour": "hour(ts)",
    "principal_kind": PRINCIPAL_KIND,
    "network": NETWORK,
    "report": REPORT,
}


# A field inside one element of a raw array, while a condition is tested element by element.
ELEMENT = "\x00element."


def raw_path(name: str) -> str:
    """The path inside the raw record that a non-column field name stands for."""
    return name[4:] if name.startswith("raw.") else name


def field_sql(name: str) -> str:
    """SQL for a Sigma field name: a column, a virtual field, or a path into the raw record."""
    if name in EVENT_VIEW_COLUMNS:
        return name
    if name in VIRTUAL_FIELDS:
        return VIRTUAL_FIELDS[name]
    if name.startswith(ELEMENT):
        return f"json_extract_string(x, {json_path(name[len(ELEMENT) :])})"
    return f"json_extract_string(raw, {json_path(raw_path(name))})"


T = TypeVar("T")


def derived(rule: SigmaRule | SigmaCorrelationRule, name: str, make: Callable[[], T]) -> T:
    """What crmwatch derives from a rule (its SQL, its baseline, its ``levels:``), made once
    per rule object and kept on it: converting is the costly part of loading and running a
    pack, and a loaded rule is never changed. Being attributes of the rule, they are pickled
    with it, so the compiled-pack cache (detect/packcache.py) carries the SQL. A ``make``
    that raises keeps nothing: the next call raises again."""
    key = f"_crmwatch_{name}"
    kept = rule.__dict__
    if key not in kept:
        kept[key] = make()
    return kept[key]


def rule_where(rule: SigmaRule) -> str:
    """The rule's detection as a WHERE clause over the events view (converted once per rule
    object, see :func:`derived`)."""

    def make() -> str:
        from crmwatch.detect.backend import convert  # pySigma's converter: only when needed

        return convert(rule)

    return derived(rule, "where", make)
