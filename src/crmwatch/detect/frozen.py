"""A loaded rule as ``detect`` reads it, in crmwatch's own classes: what the compiled-pack
cache (detect/packcache.py) keeps instead of pySigma's objects.

Unpickling pySigma's rules imports pySigma's rule classes, and with them pyparsing and PyYAML:
some 85 ms of every ``crmwatch detect`` with a cached pack (start-up, docs/design.md). Once a
rule is converted, ``detect`` reads only its title, id, name, level, tags and custom
attributes, a correlation's type, group-by, timespan, condition, aliases and referenced
rules, and what crmwatch derived from it (its SQL, baseline, ``levels:``, needs: kept on the
rule by ``where.derived``). A frozen rule has exactly these, under the same names, so the SQL
builders read either kind alike; :func:`is_correlation` and :func:`is_rule` tell the kinds
apart without importing pySigma. ``tests/test_packcache.py`` holds a frozen pack's SQL to a
fresh load's.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crmwatch.detect.rules import RuleFile


@dataclass(frozen=True)
class Named:
    """An enum member as the SQL builders read it: its ``name`` (a level, a correlation
    type, a condition's operator)."""

    name: str


@dataclass(eq=False)
class _Frozen:
    """What the SQL builders read of any Sigma rule, detection or correlation."""

    title: str
    id: Any
    name: str | None
    level: Named | None
    tags: list[str]
    custom_attributes: dict[str, Any]


@dataclass(eq=False)
class FrozenRule(_Frozen):
    """A Sigma detection rule, converted (its derived values in ``__dict__``)."""


@dataclass(eq=False)
class Reference:
    """A correlation's reference to one of its rules (an alias mapping's key holds only the
    reference: hashed by identity, as the builders only read ``reference`` from it)."""

    reference: str
    rule: FrozenRule | None = None


@dataclass(frozen=True)
class Timespan:
    seconds: int


@dataclass(frozen=True)
class Condition:
    op: Named
    count: int | float
    fieldref: str | list[str] | None


@dataclass(frozen=True)
class Alias:
    mapping: dict[Reference, str]


@dataclass(frozen=True)
class Aliases:
    aliases: dict[str, Alias] = field(default_factory=dict)

    def __len__(self) -> int:  # as pySigma's: no alias is false
        return len(self.aliases)


@dataclass(eq=False)
class FrozenCorrelation(_Frozen):
    """A Sigma correlation rule over frozen rules."""

    type: Named
    rules: list[Reference]
    group_by: list[str] | None
    timespan: Timespan
    condition: Condition | None
    aliases: Aliases


def is_correlation(rule: object) -> bool:
    """Whether ``rule`` is a correlation, pySigma's or frozen. (No pySigma correlation can
    exist while pySigma's module is not loaded: it is not imported to ask.)"""
    if isinstance(rule, FrozenCorrelation):
        return True
    module = sys.modules.get("sigma.correlations")
    return module is not None and isinstance(rule, module.SigmaCorrelationRule)


def is_rule(rule: object) -> bool:
    """Whether ``rule`` is a detection rule (not a correlation), pySigma's or frozen."""
    if isinstance(rule, FrozenRule):
        return True
    module = sys.modules.get("sigma.rule")
    return module is not None and isinstance(rule, module.SigmaRule)


def rule_errors() -> tuple[type[BaseException], ...]:
    """pySigma's error class, when pySigma is loaded (else none of its errors can occur)."""
    module = sys.modules.get("sigma.exceptions")
    return (module.SigmaError,) if module is not None else ()


DERIVED = ("converted", "baseline", "levels")


def freeze(rf: RuleFile) -> RuleFile | None:
    """The rule file with frozen rules, its derived values made first; None when a rule is
    of a shape this does not know (the pack is then cached as pySigma's objects)."""
    from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule
    from sigma.rule import SigmaRule

    from crmwatch.detect.baseline import parse_baseline
    from crmwatch.detect.rules import RuleFile, parse_levels
    from crmwatch.detect.where import converted

    for d in rf.detections:  # made at load: made here if not
        parse_levels(d.rule)
    frozen: dict[int, FrozenRule] = {}

    def common(rule: Any) -> dict[str, Any]:
        return {
            "title": rule.title,
            "id": rule.id,
            "name": rule.name,
            "level": Named(rule.level.name) if rule.level else None,
            "tags": [str(t) for t in (rule.tags or [])],
            "custom_attributes": dict(getattr(rule, "custom_attributes", None) or {}),
        }

    def keep(rule: Any, copy: Any) -> Any:
        copy.__dict__.update({k: v for k, v in rule.__dict__.items() if k.startswith("_crmwatch_")})
        return copy

    def plain(rule: SigmaRule) -> FrozenRule:
        if id(rule) not in frozen:
            converted(rule)
            parse_baseline(rule)
            frozen[id(rule)] = keep(rule, FrozenRule(**common(rule)))
        return frozen[id(rule)]

    out: list[Any] = []
    for rule in rf.rules:
        if isinstance(rule, SigmaRule):
            out.append(plain(rule))
        elif isinstance(rule, SigmaCorrelationRule):
            cond = rule.condition
            if cond is not None and type(cond) is not SigmaCorrelationCondition:
                return None  # an extended condition: not read by detect
            if not all(isinstance(ref.rule, SigmaRule) for ref in rule.rules):
                return None
            aliases = {
                name: Alias({Reference(ref.reference): value for ref, value in a.mapping.items()})
                for name, a in (rule.aliases.aliases if rule.aliases else {}).items()
            }
            out.append(
                keep(
                    rule,
                    FrozenCorrelation(
                        **common(rule),
                        type=Named(rule.type.name),
                        rules=[Reference(r.reference, plain(r.rule)) for r in rule.rules],
                        group_by=list(rule.group_by) if rule.group_by is not None else None,
                        timespan=Timespan(rule.timespan.seconds),
                        condition=None
                        if cond is None
                        else Condition(Named(cond.op.name), cond.count, cond.fieldref),
                        aliases=Aliases(aliases),
                    ),
                )
            )
        else:
            return None
    return RuleFile(rf.path, out, list(rf.tests), list(rf.errors))
