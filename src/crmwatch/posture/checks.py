"""Posture checks as data: ``posture/checks/*.yaml``, one file per check.

A check names the subjects it judges and the condition under which one fails; it cites why
(the PIPC's decision, Google's UNC6040 hardening guide, Salesforce's or Okta's own guidance),
says what it protects against and which detections it makes more likely to matter, and carries
its own cases, run by pytest and by ``crmwatch posture check`` as the rule files carry theirs::

    id: sf-powerful-user-no-ip-ranges
    title: Users who can export everything may sign in from any address
    severity: high
    subject: user
    where:                          # every condition holds (a list of such maps: any holds)
      active: true
      permissions|any: [ApiEnabled, ViewAllData, ExportReport]
      login_ip_ranges: 0
    show: [profile, permissions]    # attributes printed with each failing subject
    controls: [ip_restriction, access_control]
    protects_against: a phished password used from the attacker's own network
    detections: [signin_from_new_network]   # rule files (their names) it feeds
    remediation: set Login IP Ranges on the profiles of these users
    sources: [{kind: regulator, cite: "…", url: "…"}]
    cases:
      - name: an advisor with API access and no ranges fails
        subjects: [{name: a@x, active: true, permissions: [ApiEnabled], login_ip_ranges: 0}]
        fails: [a@x]

Conditions are ``attribute|modifier: value``. Modifiers: none (equals; a list value means any
of them), ``not`` (differs), ``any`` / ``all`` / ``none`` (of a list attribute, which of the
values it holds), ``gt`` ``gte`` ``lt`` ``lte`` (numbers), ``in`` (the attribute, a text, is
one of the values). A condition on an attribute the inputs did not tell (None) is unknown:
a subject whose result hangs on it is listed as undetermined, never as passing.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crmwatch.errors import ConfigError
from crmwatch.posture.model import ATTRIBUTES, KINDS, Subject
from crmwatch.schema import LEVELS

CONTROLS = ("mfa", "ip_restriction", "access_control", "monitoring")
SOURCE_KINDS = ("regulator", "vendor", "statute", "secondary")
CHECK_KEYS = {
    "id", "title", "severity", "subject", "where", "show", "controls", "protects_against",
    "detections", "remediation", "sources", "cases", "description",
}  # fmt: skip
REQUIRED = ("id", "title", "severity", "subject", "where", "controls", "protects_against",
            "remediation", "sources", "cases")  # fmt: skip


def _has_any(value: Any, wanted: list) -> bool:
    return any(w in value for w in wanted)


# modifier → (test on a known attribute value, kind of value it takes)
MODIFIERS: dict[str, Callable[[Any, Any], bool]] = {
    "": lambda v, w: v in w if isinstance(w, list) else v == w,
    "not": lambda v, w: v not in w if isinstance(w, list) else v != w,
    "any": lambda v, w: _has_any(v, w),
    "all": lambda v, w: all(x in v for x in w),
    "none": lambda v, w: not _has_any(v, w),
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "in": lambda v, w: v in w,
}
LIST_MODIFIERS = {"any", "all", "none", "in"}
NUMBER_MODIFIERS = {"gt", "gte", "lt", "lte"}


@dataclass(frozen=True)
class Condition:
    attr: str
    modifier: str
    value: Any

    def test(self, subject: Subject) -> bool | None:
        """True, False, or None when the subject's attribute is unknown."""
        v = subject.get(self.attr)
        if v is None:
            return None
        if self.modifier in {"any", "all", "none"} and not isinstance(v, list | tuple | set):
            return None
        if self.modifier in NUMBER_MODIFIERS and not isinstance(v, int | float):
            return None
        return bool(MODIFIERS[self.modifier](v, self.value))


def _all(results: list[bool | None]) -> bool | None:
    if False in results:
        return False
    return None if None in results else True


def _any(results: list[bool | None]) -> bool | None:
    if True in results:
        return True
    return None if None in results else False


@dataclass
class Check:
    id: str
    title: str
    severity: str
    subject: str
    where: list[list[Condition]]  # any of: all of
    controls: list[str]
    protects_against: str
    remediation: str
    sources: list[dict[str, str]]
    path: Path | None  # None: made by crmwatch (drift), not read from a file
    show: list[str] = field(default_factory=list)
    detections: list[str] = field(default_factory=list)
    cases: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    def judge(self, subject: Subject) -> bool | None:
        """Does ``subject`` fail the check: True, False, or None (cannot tell)."""
        return _any([_all([c.test(subject) for c in block]) for block in self.where])


def _conditions(block: Any, where: str) -> list[Condition]:
    if not isinstance(block, dict) or not block:
        raise ConfigError(f"{where}: a condition block is a mapping of attribute: value")
    out = []
    for key, value in block.items():
        attr, _, modifier = str(key).partition("|")
        if modifier not in MODIFIERS:
            raise ConfigError(
                f"{where}: unknown modifier {modifier!r} in {key!r}; one of "
                + ", ".join(m or "(none)" for m in MODIFIERS)
            )
        if modifier in LIST_MODIFIERS and not isinstance(value, list):
            raise ConfigError(f"{where}: {key!r} takes a list of values")
        if modifier in NUMBER_MODIFIERS and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise ConfigError(f"{where}: {key!r} takes a number")
        out.append(Condition(attr, modifier, value))
    return out


def parse_check(doc: Any, path: Path) -> Check:
    """One check file's document, checked against the schema above."""
    where = str(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: a check file holds one mapping")
    unknown = sorted(set(doc) - CHECK_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}")
    missing = [k for k in REQUIRED if k not in doc]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    if doc["severity"] not in LEVELS:
        raise ConfigError(f"{where}: severity must be one of {', '.join(LEVELS)}")
    if doc["subject"] not in KINDS:
        raise ConfigError(f"{where}: subject must be one of {', '.join(KINDS)}")
    bad = [c for c in doc["controls"] or [] if c not in CONTROLS]
    if not doc["controls"] or bad:
        raise ConfigError(f"{where}: controls are some of {', '.join(CONTROLS)}")
    sources = doc["sources"]
    if (
        not isinstance(sources, list)
        or not sources
        or not all(
            isinstance(s, dict) and s.get("kind") in SOURCE_KINDS and s.get("cite") for s in sources
        )
    ):
        raise ConfigError(
            f"{where}: sources are a list of {{kind, cite, url}}, kind one of "
            + ", ".join(SOURCE_KINDS)
        )
    blocks = doc["where"] if isinstance(doc["where"], list) else [doc["where"]]
    vocabulary = ATTRIBUTES[doc["subject"]]
    named = [str(k).partition("|")[0] for b in blocks if isinstance(b, dict) for k in b]
    named += [str(a) for a in doc.get("show") or []]
    unknown_attrs = sorted({a for a in named if a not in vocabulary})
    if unknown_attrs:
        raise ConfigError(
            f"{where}: {doc['subject']} has no attribute {unknown_attrs[0]!r}; it has "
            + ", ".join(sorted(vocabulary))
        )
    cases = doc["cases"]
    if not isinstance(cases, list) or not cases:
        raise ConfigError(f"{where}: cases: at least one that fails and one that passes")
    return Check(
        id=str(doc["id"]),
        title=str(doc["title"]),
        severity=doc["severity"],
        subject=doc["subject"],
        where=[_conditions(b, f"{where}: where") for b in blocks],
        controls=list(doc["controls"]),
        protects_against=str(doc["protects_against"]).strip(),
        remediation=str(doc["remediation"]).strip(),
        sources=[{k: str(v) for k, v in s.items()} for s in sources],
        path=path,
        show=[str(s) for s in doc.get("show") or []],
        detections=[str(d) for d in doc.get("detections") or []],
        cases=cases,
        description=str(doc.get("description") or "").strip(),
    )


def builtin_check_dir() -> Path:
    return Path(str(resources.files("crmwatch.posture") / "checks"))


def load_checks(dirs: list[Path] | None = None, builtin: bool = True) -> list[Check]:
    """The built-in checks (unless ``builtin`` is false) plus the user's folders; ids unique."""
    paths = [builtin_check_dir()] if builtin else []
    files: list[Path] = []
    for d in paths + list(dirs or []):
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files += sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml"))
        else:
            raise ConfigError(f"check folder not found: {d}")
    checks: list[Check] = []
    seen: dict[str, Path] = {}
    for f in files:
        try:
            doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        except yaml.MarkedYAMLError as e:
            line = e.problem_mark.line + 1 if e.problem_mark else "?"
            raise ConfigError(f"{f}:{line}: not valid YAML: {e.problem}") from e
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{f}: not valid YAML: {type(e).__name__}") from e
        check = parse_check(doc, f)
        if check.id in seen:
            raise ConfigError(f"{f}: check id {check.id!r} is also in {seen[check.id]}")
        seen[check.id] = f
        checks.append(check)
    return checks


@dataclass
class CaseResult:
    check: str
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


CASE_KEYS = {"name", "subjects", "fails", "undetermined"}


def run_cases(checks: list[Check]) -> list[CaseResult]:
    """Every case of every check: the subjects listed under ``fails`` must fail, those under
    ``undetermined`` must be undetermined, and every other subject must pass. A check needs a
    case where something fails and a case where something passes."""
    results = []
    for check in checks:
        failing = passing = False
        for case in check.cases:
            result = _run_case(check, case)
            results.append(result)
            if isinstance(case, dict) and result.passed:
                subjects = case.get("subjects") or []
                fails = set(case.get("fails") or [])
                failing |= bool(fails)
                passing |= any(s.get("name") not in fails for s in subjects)
        if not (failing and passing):
            results.append(CaseResult(check.id, "(coverage)", [
                "needs a case where a subject fails and one where a subject passes"
            ]))  # fmt: skip
    return results


def _run_case(check: Check, case: Any) -> CaseResult:
    name = str(case.get("name", "?")) if isinstance(case, dict) else "?"
    result = CaseResult(check.id, name)
    if not isinstance(case, dict) or not isinstance(case.get("subjects"), list):
        result.problems.append("a case is a mapping with name, subjects and fails")
        return result
    unknown = sorted(set(case) - CASE_KEYS)
    if unknown:
        result.problems.append(f"unknown key {unknown[0]!r}")
        return result
    want = {True: set(case.get("fails") or []), None: set(case.get("undetermined") or [])}
    for raw in case["subjects"]:
        if not isinstance(raw, dict) or "name" not in raw:
            result.problems.append("each subject is a mapping with a name")
            continue
        attrs = {k: v for k, v in raw.items() if k != "name"}
        got = check.judge(Subject(check.subject, str(raw["name"]), attrs))
        expected = True if raw["name"] in want[True] else None if raw["name"] in want[None] \
            else False  # fmt: skip
        if got is not expected:
            label = {True: "fails", False: "passes", None: "is undetermined"}
            result.problems.append(
                f"{raw['name']} {label[got]}; the case says it {label[expected]}"
            )
    return result
