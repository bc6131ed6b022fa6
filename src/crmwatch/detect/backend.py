"""Sigma detection → a DuckDB WHERE clause over the ``events`` view.

Rules are parsed by pySigma and pass the field-mapping pipeline (``detect/pipeline.py``: Okta's
own field names, a ``source`` condition per product); this backend only renders conditions.
Field names are the normalised columns (docs/sources.md) and the virtual fields (where.py);
``raw.a.b`` reaches a field of the raw record, and so does any other name. Sigma strings
match case-insensitively unless ``|cased``; wildcards ``*`` and ``?`` become ILIKE patterns.

Sigma specification: github.com/SigmaHQ/sigma-specification (sigma-rules-specification.md,
"Value modifiers").
"""

from __future__ import annotations

import copy
from typing import ClassVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
)
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.rule import SigmaRule
from sigma.types import (
    CompareOperators,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaString,
    SpecialChars,
)

from crmwatch.detect.pipeline import ARRAY_ROOTS, crmwatch_pipeline
from crmwatch.detect.where import (
    ELEMENT,
    NEED_COLUMNS,
    VIRTUAL_FIELDS,
    Converted,
    Needs,
    any_of,
    field_sql,
    raw_path,
)
from crmwatch.errors import RuleError
from crmwatch.schema import EVENT_VIEW_COLUMNS
from crmwatch.sql import json_path, lit


def array_field(name: str) -> tuple[str, str] | None:
    """``(array root, path inside an element)`` for a raw path that runs through an array."""
    if name in EVENT_VIEW_COLUMNS or name in VIRTUAL_FIELDS:
        return None
    path = raw_path(name)
    for root in ARRAY_ROOTS:
        if path.startswith(root + "."):
            return root, path[len(root) + 1 :]
    return None


def plain_text(value: SigmaString) -> tuple[bool, bool, str] | None:
    """A Sigma string matched as plain text: whether it starts and ends with ``*`` (contains,
    startswith, endswith), and the lower-cased text between; None when it holds another
    wildcard or placeholder (an ILIKE pattern, then), or nothing between."""
    multi = SpecialChars.WILDCARD_MULTI
    lead = value.startswith(multi)
    trail = value.endswith(multi) and len(value) > 1
    inner = value[1 if lead else 0 : len(value) - 1 if trail else len(value)]
    if inner.contains_special() or not len(inner):
        return None
    return lead, trail, inner.convert(escape_char="", add_escaped="", filter_chars="").lower()


class DuckDBBackend(TextQueryBackend):
    """Renders Sigma conditions for DuckDB; ``rule_where`` drives it."""

    name: ClassVar[str] = "crmwatch DuckDB"
    formats: ClassVar[dict[str, str]] = {"default": "WHERE clause over the events view"}
    requires_pipeline: ClassVar[bool] = False

    precedence: ClassVar = (ConditionNOT, ConditionAND, ConditionOR)
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " ILIKE "

    field_quote: ClassVar[str | None] = None
    str_quote: ClassVar[str] = "'"
    escape_char: ClassVar[str] = "\\"
    wildcard_multi: ClassVar[str] = "%"
    wildcard_single: ClassVar[str] = "_"
    add_escaped: ClassVar[str] = "%_\\"
    bool_values: ClassVar = {True: "true", False: "false"}

    # Every string match goes through the wildcard template: contains/startswith/endswith
    # arrive as values with * already added, rendered as ILIKE patterns.
    eq_expression: ClassVar[str] = "{field} ILIKE {value} ESCAPE '\\'"
    wildcard_match_expression: ClassVar[str] = "{field} ILIKE {value} ESCAPE '\\'"
    case_sensitive_match_expression: ClassVar[str] = "{field} LIKE {value} ESCAPE '\\'"

    # Sigma's re is a partial match (PCRE search); DuckDB regexp_matches searches too (RE2).
    re_expression: ClassVar[str] = "regexp_matches({field}, '{regex}')"
    re_escape_char: ClassVar[str] = "'"
    re_escape: ClassVar = ("'",)

    compare_op_expression: ClassVar[str] = "try_cast({field} AS DOUBLE) {operator} {value}"
    compare_operators: ClassVar = {
        CompareOperators.LT: "<",
        CompareOperators.LTE: "<=",
        CompareOperators.GT: ">",
        CompareOperators.GTE: ">=",
    }

    field_null_expression: ClassVar[str] = "{field} IS NULL"
    field_exists_expression: ClassVar[str] = "{field} IS NOT NULL"
    field_not_exists_expression: ClassVar[str] = "{field} IS NULL"

    unbound_value_str_expression: ClassVar[str] = "raw::VARCHAR ILIKE '%' || {value} || '%'"

    def escape_and_quote_field(self, field_name: str) -> str:
        return field_sql(field_name)

    def convert_value_str(self, s, state: ConversionState) -> str:
        """A Sigma string as an ILIKE pattern literal: ``*``/``?`` become ``%``/``_``, literal
        ``%``, ``_`` and ``\\`` are escaped with ``\\`` (the ``ESCAPE`` character), and the
        literal's quotes are doubled by crmwatch.sql.lit — pySigma's own escaping would write
        ``\\'``, which SQL reads as a backslash and the end of the string."""
        converted = s.convert(
            escape_char=self.escape_char,
            wildcard_multi=self.wildcard_multi,
            wildcard_single=self.wildcard_single,
            add_escaped=self.add_escaped,
            filter_chars=self.filter_chars,
        )
        return lit(converted)

    def convert_condition_field_eq_val_str(self, cond, state: ConversionState):
        """A plain value (equals, contains, startswith, endswith, no other wildcard) as a
        comparison of lower-cased text, which DuckDB pushes below the events view's joins and
        projection. ``ILIKE … ESCAPE`` stays above them: a rule whose cheap conditions exclude
        every row still had each row's ``raw`` rebuilt (4 s over 10M events). Both lower-case
        the same way (Unicode simple case mapping)."""
        plain = plain_text(cond.value)
        if plain is None:
            return super().convert_condition_field_eq_val_str(cond, state)
        lead, trail, lowered = plain
        text = lit(lowered)
        field = f"lower({self.escape_and_quote_field(cond.field)})"
        if lead and trail:
            return f"contains({field}, {text})"
        if lead:
            return f"ends_with({field}, {text})"
        if trail:
            return f"starts_with({field}, {text})"
        return f"{field} = {text}"

    def convert_condition_field_eq_val(self, cond, state: ConversionState):
        """Conditions on a field inside a raw array hold when any element matches."""
        split = array_field(cond.field)
        if split is None:
            return super().convert_condition_field_eq_val(cond, state)
        root, inner = split
        element = copy.copy(cond)
        element.field = ELEMENT + inner
        test = super().convert_condition_field_eq_val(element, state)
        return (
            f"coalesce(len(list_filter(json_extract(raw, {json_path(root)[:-1]}[*]'), "
            f"lambda x: {test})) > 0, false)"
        )

    def convert_condition_not(self, cond, state: ConversionState):
        """``not sel`` holds where ``sel`` does not match, a missing field included: Sigma's
        meaning. SQL's NOT of a comparison with NULL is NULL, which would drop the event."""
        result = super().convert_condition_not(cond, state)
        prefix = self.not_token + self.token_separator
        if isinstance(result, str) and result.startswith(prefix):
            return f"NOT coalesce(({result[len(prefix) :]}), false)"
        return result

    def convert_condition_field_eq_val_bool(self, cond, state: ConversionState) -> str:
        """Booleans compare as booleans; raw JSON paths hold them as the text true/false."""
        value = "true" if cond.value.boolean else "false"
        return f"try_cast({self.escape_and_quote_field(cond.field)} AS BOOLEAN) = {value}"

    def convert_condition_field_eq_val_num(self, cond, state: ConversionState) -> str:
        """Numbers compare as numbers (``rows: 0``, ``hour: 3``), not as text patterns."""
        return f"try_cast({self.escape_and_quote_field(cond.field)} AS DOUBLE) = {cond.value}"

    def convert_condition_field_eq_val_cidr(self, cond, state: ConversionState):
        """IPv4 CIDR by integer arithmetic (DuckDB's inet extension is not available offline)."""
        cidr: SigmaCIDRExpression = cond.value
        net = cidr.network
        if net.version != 4:
            raise NotImplementedError("cidr modifier: only IPv4 networks are supported")
        field = self.escape_and_quote_field(cond.field)
        shift = 2 ** (32 - net.prefixlen)
        return f"(ipv4_int({field}) // {shift} = {int(net.network_address) // shift})"

    def finalize_query_default(
        self, rule: SigmaRule, query: str, index: int, state: ConversionState
    ) -> str:
        return query

    def convert_condition_as_in_expression(self, cond, state):  # pragma: no cover - disabled
        raise NotImplementedError


def needs(cond: object) -> Needs:
    """The values of ``NEED_COLUMNS`` an event must have for a parsed condition to hold:
    ``{"source": {"okta"}}`` for ``source: okta AND …``; a column left out may hold anything.

    Read from pySigma's parse tree, pipeline applied (the ``source`` condition of an okta or
    salesforce rule included): a plain value (no wildcard, not ``|cased``) of one of those
    columns is what :meth:`DuckDBBackend.convert_condition_field_eq_val_str` writes as
    ``lower(column) = 'value'``, with the same lower-cased text (:func:`plain_text`), so a
    stored value meets it exactly when ``lower(value)`` in DuckDB is in the set. AND holds
    only where every part does (each part's sets, intersected); OR where some part does (a
    column is needed only if every part needs it: the union); NOT, and any other condition,
    needs nothing. Sound, not complete: a rule it cannot read just always runs."""
    if isinstance(cond, ConditionAND):
        out: Needs = {}
        for arg in cond.args:
            for column, values in needs(arg).items():
                out[column] = out[column] & values if column in out else values
        return out
    if isinstance(cond, ConditionOR):
        return any_of([needs(arg) for arg in cond.args])
    if (
        isinstance(cond, ConditionFieldEqualsValueExpression)
        and cond.field in NEED_COLUMNS
        and isinstance(cond.value, SigmaString)
        and not isinstance(cond.value, SigmaCasedString)
    ):
        plain = plain_text(cond.value)
        if plain is not None and not plain[0] and not plain[1]:
            return {cond.field: frozenset([plain[2]])}
    return {}


def convert(rule: SigmaRule) -> Converted:
    """The rule's detection as a WHERE clause, and what an event needs to meet it (see
    :func:`needs`); ``where.rule_where`` keeps both on the rule."""
    conditions: list[str] = []
    required: list[Needs] = []

    def collect(rule, fmt, index, cond, result):  # called even for rules a correlation hides
        conditions.append(result)
        required.append(needs(cond.parsed))
        return result

    try:
        # the pipeline edits the rule it converts: convert a copy, the rule stays as loaded
        backend = DuckDBBackend(processing_pipeline=crmwatch_pipeline())
        backend.convert_rule(copy.deepcopy(rule), callback=collect)
    except NotImplementedError as e:
        raise RuleError(f"rule {rule.title!r}: {e}") from e
    if not conditions:
        raise RuleError(f"rule {rule.title!r}: no condition")
    # the conditions are ORed (below): an event meets the rule if it meets one of them
    return Converted(" OR ".join(f"({c})" for c in conditions), any_of(required))
