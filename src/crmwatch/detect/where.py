"""A rule as SQL: the SQL of a Sigma field name, and a rule's detection as a WHERE clause
over the ``events`` view, converted once per rule by the pySigma backend (detect/backend.py)
and kept on the rule.

Apart from the backend, so that running a pack whose SQL is already kept (a cached pack,
detect/packcache.py) never imports pySigma's converter.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

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


# Columns whose values a rule's detection may require (``source: okta``, ``category:
# bulk_export``): ``detect`` reads in one query which combinations of them the store holds,
# and does not run a rule that no stored event can meet (detect/runner.py).
NEED_COLUMNS = ("source", "source_type", "category")

# For each of NEED_COLUMNS a rule constrains, the values (lower-cased as DuckDB's lower()
# would) one of which an event must have for the rule to select it; a column left out may
# hold anything.
Needs = dict[str, frozenset[str]]


class Converted(NamedTuple):
    """A rule's detection as SQL: its WHERE clause, and what an event needs to meet it."""

    where: str
    needs: Needs


def converted(rule: SigmaRule) -> Converted:
    """The rule's detection converted by the backend (once per rule object, see
    :func:`derived`)."""

    def make() -> Converted:
        from crmwatch.detect.backend import convert  # pySigma's converter: only when needed

        return convert(rule)

    return derived(rule, "converted", make)


def rule_where(rule: SigmaRule) -> str:
    """The rule's detection as a WHERE clause over the events view."""
    return converted(rule).where


def rule_needs(rule: SigmaRule) -> Needs:
    """The values of NEED_COLUMNS an event must have for the rule to select it."""
    return converted(rule).needs


def any_of(parts: list[Needs]) -> Needs:
    """What an event needs to meet at least one of ``parts``: a column every part constrains,
    to any of their values."""
    if not parts:
        return {}
    columns = set(parts[0]).intersection(*parts[1:])
    return {c: frozenset().union(*(p[c] for p in parts)) for c in columns}


def may_select(needs: Needs, combinations: set[tuple[str | None, ...]]) -> bool:
    """Whether some stored combination of NEED_COLUMNS' values (lower-cased) meets ``needs``.
    With no combination (no event) nothing does: every alert is built from selected events."""
    columns = [(i, needs[c]) for i, c in enumerate(NEED_COLUMNS) if c in needs]
    return any(all(combo[i] in values for i, values in columns) for combo in combinations)
