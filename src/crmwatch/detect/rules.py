"""Rule files: Sigma YAML (one or more documents) with inline tests.

A file holds the rules one detection needs: detection rules and, when the detection is a
pattern over time, the correlation that references them (the last document). The top-level
``tests:`` key of any document lists cases, Panther-style::

    tests:
      - name: five exports in four minutes
        expected: match            # or no_match
        events:
          - {ts: "2025-08-12T10:00:00", category: bulk_export, user_name: jo@x.example}

Event keys are normalised columns (docs/sources.md); ``raw`` may be a mapping. Tests run on
a real in-memory store, enrichment included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from crmwatch.detect.baseline import detection_where, parse_baseline
from crmwatch.detect.frozen import is_correlation, is_rule, rule_errors
from crmwatch.detect.where import derived
from crmwatch.errors import Location, RuleError
from crmwatch.schema import LEVELS

if TYPE_CHECKING:  # imported to load rules (pySigma, PyYAML): a cached pack needs neither
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

BUILTIN_DIR = "rules"

# The risk a finding adds to what it names (crmwatch.incidents), by level, unless its rule
# says ``risk:``. High and critical findings open an incident by themselves; lower ones add up.
LEVEL_RISK = {"informational": 0, "low": 10, "medium": 25, "high": 60, "critical": 100}


@dataclass(frozen=True)
class ContextLevel:
    """``levels:`` entry: the alert takes ``level`` when ``all`` (every evidence event) or
    ``any`` (at least one) of its evidence events match ``where``."""

    level: str
    quantifier: str  # all | any
    where: str


@dataclass
class RuleTest:
    name: str
    expected: bool
    events: list[dict]
    # The org's own networks for this test (``ip_class: corporate``), as crmwatch.toml sets them.
    corporate_cidrs: tuple[str, ...] = ()
    # The level every alert of a matching case must have (``levels:`` by context).
    level: str | None = None


@dataclass(frozen=True)
class Detection:
    """One rule of a file that raises alerts of its own."""

    rule: SigmaRule | SigmaCorrelationRule
    rule_id: str

    @property
    def title(self) -> str:
        return str(self.rule.title)

    @property
    def level(self) -> str:
        """The alert level, ``medium`` when the rule gives none."""
        return self.rule.level.name.lower() if self.rule.level else "medium"

    @property
    def risk(self) -> int:
        """The risk an alert at the rule's own level adds: ``risk:`` or the level's default."""
        value = (getattr(self.rule, "custom_attributes", None) or {}).get("risk")
        return LEVEL_RISK.get(self.level, 25) if value is None else int(value)

    @property
    def context_levels(self) -> tuple[ContextLevel, ...]:
        """The rule's ``levels:`` (validated when the file is loaded), first match wins."""
        return parse_levels(self.rule)

    @property
    def kind(self) -> str:
        """How the rule decides: a correlation type, a baseline type, or ``match``."""
        if is_correlation(self.rule):
            return str(self.rule.type.name).lower()
        baseline = parse_baseline(self.rule)
        return baseline.kind if baseline else "match"


@dataclass
class RuleFile:
    path: Path
    rules: list[SigmaRule | SigmaCorrelationRule] = field(default_factory=list)
    tests: list[RuleTest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def detections(self) -> list[Detection]:
        """The rules that raise alerts: a file's correlations (the rules they reference are
        their building blocks), else every rule of the file."""
        corr = [r for r in self.rules if is_correlation(r)]
        alerting = corr or self.rules
        return [
            Detection(r, str(r.id or r.name or (
                self.path.stem if len(alerting) == 1 else f"{self.path.stem}#{i + 1}")))
            for i, r in enumerate(alerting)
        ]  # fmt: skip

    @property
    def main(self) -> SigmaRule | SigmaCorrelationRule:
        """The file's last alerting rule: what a one-line listing names."""
        return self.detections[-1].rule

    @property
    def level(self) -> str:
        return self.detections[-1].level

    @property
    def kind(self) -> str:
        return self.detections[-1].kind

    @property
    def rule_id(self) -> str:
        return self.detections[-1].rule_id

    def __repr__(self) -> str:
        return f"<RuleFile {self.path.name} ({len(self.rules)} rules, {len(self.tests)} tests)>"


def builtin_rule_dir() -> Path:
    return Path(str(resources.files("crmwatch") / BUILTIN_DIR))


def rule_paths(dirs: list[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        if d.is_file():
            out.append(d)
        elif d.is_dir():
            out.extend(sorted(p for p in d.rglob("*.yml")) + sorted(d.rglob("*.yaml")))
        else:
            raise RuleError("no such rule file or directory", Location(d))
    return out


def load_rule_file(path: Path, collect_errors: bool = False) -> RuleFile:
    """Parse one file; with ``collect_errors`` problems land in ``RuleFile.errors``."""
    import yaml
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    rf = RuleFile(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
        for doc in docs:
            for t in doc.pop("tests", None) or []:
                expected = t.get("expected")
                if expected not in ("match", "no_match"):
                    raise RuleError(
                        f"test {t.get('name')!r}: expected must be match or no_match",
                        Location(path),
                    )
                level = t.get("level")
                if level is not None and (level not in LEVELS or expected != "match"):
                    raise RuleError(
                        f"test {t.get('name')!r}: level must be one of {', '.join(LEVELS)}, "
                        "on a case expected to match",
                        Location(path),
                    )
                rf.tests.append(
                    RuleTest(
                        str(t.get("name")),
                        expected == "match",
                        t.get("events") or [],
                        tuple(t.get("corporate_cidrs") or ()),
                        level,
                    )
                )
        rf.rules = list(SigmaCollection.from_dicts(docs).rules)
        if not rf.rules:
            raise RuleError("no rule in file", Location(path))
        for rule in rf.rules:
            if is_rule(rule):
                parse_baseline(rule)
        for d in rf.detections:
            _check_risk(d.rule)
            parse_levels(d.rule)
        _compile(rf)
    except (yaml.YAMLError, SigmaError, RuleError, OSError, UnicodeDecodeError) as e:
        if not collect_errors:
            raise RuleError(f"cannot load rule: {e}", Location(path)) from e
        rf.errors.append(str(e))
    return rf


def _compile(rf: RuleFile) -> None:
    """Build every detection's SQL now, so that a rule which cannot run (a SigmaHQ
    placeholder, a modifier the backend lacks) is reported when loaded, not in the middle
    of ``detect``."""
    from crmwatch.detect.baseline import Window
    from crmwatch.detect.runner import alert_sql

    for d in rf.detections:
        try:
            alert_sql(d, Window())
        except (*rule_errors(), NotImplementedError, ValueError, TypeError) as e:
            if isinstance(e, RuleError):
                raise
            raise RuleError(f"rule {d.title!r} cannot be compiled: {e}") from e


def load_rules(
    dirs: list[Path] | None = None,
    builtin: bool = True,
    collect_errors: bool = False,
    cached: bool = False,
) -> list[RuleFile]:
    """The built-in pack (unless ``builtin`` is false) plus the users' rule folders.

    With ``cached``, through the compiled-pack cache (detect/packcache.py): what the command
    line asks for, so that each command does not parse and compile an unchanged pack again.
    Otherwise, as libraries and tests use it, loaded fresh from the files."""
    paths = rule_paths(([builtin_rule_dir()] if builtin else []) + list(dirs or []))

    def fresh() -> list[RuleFile]:
        return [load_rule_file(p, collect_errors) for p in paths]

    if not cached:
        return fresh()
    from crmwatch.detect import packcache  # it imports this module

    return packcache.load(paths, collect_errors, fresh)


def event_row(event: dict) -> dict:
    """A test event as a row of ``events_base`` (``raw`` serialised)."""
    row = dict(event)
    if isinstance(row.get("raw"), dict):
        row["raw"] = json.dumps(row["raw"])
    return row


def _check_risk(rule: SigmaRule | SigmaCorrelationRule) -> None:
    value = (getattr(rule, "custom_attributes", None) or {}).get("risk")
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise RuleError(f"rule {rule.title!r}: risk must be a whole number from 0 to 100")


def parse_levels(rule: SigmaRule | SigmaCorrelationRule) -> tuple[ContextLevel, ...]:
    """A rule's ``levels:`` list: ``[{level: medium, all: {ip_class: corporate}}, …]``; parsed
    once per rule (each entry is a conversion of its own)."""
    return derived(rule, "levels", lambda: _parse_levels(rule))


def _parse_levels(rule: SigmaRule | SigmaCorrelationRule) -> tuple[ContextLevel, ...]:
    spec = (getattr(rule, "custom_attributes", None) or {}).get("levels")
    if spec is None:
        return ()
    where = f"rule {rule.title!r}: levels"
    if not isinstance(spec, list):
        raise RuleError(f"{where} must be a list of {{level, all|any}} entries")
    out = []
    for entry in spec:
        if not isinstance(entry, dict) or entry.get("level") not in LEVELS:
            raise RuleError(f"{where}: each entry needs a level, one of {', '.join(LEVELS)}")
        quantifiers = [q for q in ("all", "any") if q in entry]
        if len(quantifiers) != 1 or set(entry) - {"level", "all", "any"}:
            raise RuleError(f"{where}: each entry has a level and exactly one of all, any")
        q = quantifiers[0]
        out.append(ContextLevel(entry["level"], q, detection_where(rule, entry[q], "levels")))
    return tuple(out)
