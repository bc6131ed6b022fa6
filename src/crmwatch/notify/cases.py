"""The cases each jurisdiction file carries: facts in, obligations and letter contents out.

A rule file states what its law requires; its ``cases`` say what that means on concrete facts
("1,200 Korean customers' names and e-mails taken by hacking: PIPC within 72 hours"), so a
reviewer changing a threshold sees which cases change. ``crmwatch notify check`` and pytest
run them all. A case::

    - name: a name-only leak is not reported by scale below 1,000
      began: 2026-03-01T08:00:00          # the incident's first malicious event (UTC)
      aware: 2026-03-02T09:00:00          # --aware-at (UTC)
      outside: true                       # an outside intrusion (false: an insider's export)
      people:                             # the affected, by where they live and what leaked
        - {country: KR, fields: [FirstName, LastName], count: 10}
      possible: 0                         # records the logs bound but cannot list
      org: {kr_ict_service_provider: true, establishments: [KR]}
      expect:
        regulator: required               # status, or "absent" (no such obligation)
        individuals: required
        regulator_deadline: 2026-03-05T09:00:00Z
        regulator_reason: unauthorised    # text the reason must contain
        letter_has: [remedy_rights]       # slots the letter must have …
        letter_lacks: [nature]            # … and must not
        letter_says: [name]               # text the (English) letter must hold …
        letter_omits: [date of birth]     # … and must not
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from crmwatch.incidents import Incident
from crmwatch.notify.elements import elements, notice_items
from crmwatch.notify.facts import Facts, Group
from crmwatch.notify.obligations import Obligation, decide
from crmwatch.notify.org import Org
from crmwatch.notify.regimes import ORG_FLAGS, Regime
from crmwatch.notify.text import LANGUAGES, letter_sections

CASE_KEYS = {"name", "began", "aware", "outside", "people", "possible", "org", "expect",
             "wrongful_purpose"}  # fmt: skip
EXPECT_KEYS = {"consumer_reporting_agencies",
    "regulator", "individuals", "regulator_deadline", "individuals_deadline",
    "regulator_reason", "individuals_reason", "assessment_deadline", "letter_has",
    "letter_lacks", "letter_says", "letter_omits", "version",
}  # fmt: skip


@dataclass
class CaseResult:
    regime: str
    name: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


def run_cases(regimes: list[Regime]) -> list[CaseResult]:
    """Every case of every regime, each decided with all the regimes loaded (a state with a
    file of its own is not the fallback's)."""
    return [_run(r, case, regimes) for r in regimes for case in r.cases]


def _run(r: Regime, case: Any, regimes: list[Regime]) -> CaseResult:
    name = case.get("name", "?") if isinstance(case, dict) else "?"
    result = CaseResult(r.id, str(name))
    if not isinstance(case, dict) or not isinstance(case.get("expect"), dict):
        result.problems.append("a case is a mapping with name, people and expect")
        return result
    unknown = sorted((set(case) - CASE_KEYS) | (set(case["expect"]) - EXPECT_KEYS))
    if unknown:
        result.problems.append(f"unknown key {unknown[0]!r}")
        return result
    try:
        facts, org = case_facts(case)
    except (KeyError, TypeError, ValueError) as e:
        result.problems.append(f"cannot read the case's facts: {e!r}")
        return result
    now = facts.aware_at
    got = {o.recipient: o for o in decide(regimes, facts, org, now).obligations if o.regime == r.id}
    expect = case["expect"]
    for who in ("regulator", "individuals", *(k for k, _ in r.others)):
        o = got.get(who)
        if who in expect:
            status = o.status if o else "absent"
            if status != expect[who]:
                why = f" ({o.reason})" if o else ""
                result.problems.append(f"{who}: expected {expect[who]}, got {status}{why}")
        _check_text(result, o, f"{who}_reason", expect, lambda o: o.reason)
        _check_text(result, o, f"{who}_deadline", expect, lambda o: o.deadline_utc or "none")
    _check_text(
        result, got.get("regulator"), "assessment_deadline", expect,
        lambda o: o.assessment_deadline_utc or "none",
    )  # fmt: skip
    _check_text(result, got.get("regulator"), "version", expect, lambda o: o.version or "base")
    if {"letter_has", "letter_lacks", "letter_says", "letter_omits"} & set(expect):
        _check_letter(
            result, r.on(facts.began.date(), facts.aware_at.date()) or r, facts, org, expect
        )
    return result


def _check_text(result: CaseResult, o: Obligation | None, key: str, expect: dict, get) -> None:
    if key not in expect:
        return
    want = expect[key]
    if isinstance(want, dt.datetime):  # YAML read an unquoted time
        if want.tzinfo is not None:
            want = want.astimezone(dt.UTC).replace(tzinfo=None)
        want = want.isoformat() + "Z"
    want = str(want)
    have = "absent" if o is None else str(get(o))
    ok = have == want if key.endswith(("deadline", "version")) else want in have
    if not ok:
        result.problems.append(f"{key}: expected {want!r}, got {have!r}")


def _check_letter(result: CaseResult, r: Regime, facts: Facts, org: Org, expect: dict) -> None:
    fields = {f for g in facts.groups for f in g.fields}
    langs = [x for x in r.individuals.languages if x in LANGUAGES] or ["en"]
    lang = langs[0]
    sections = letter_sections(
        r.individuals.contents, facts, org, lang,
        r.individuals.headings if lang == "en" else (),
        notice_items(fields), r.regulator.name,
    )  # fmt: skip
    slots = {slot for s in sections for slot in s.slots}
    text = "\n".join(p for s in sections for p in s.body)
    # (key, what is searched, whether it must be there, the problem when it is not so)
    checks = (
        ("letter_has", slots, True, "no {!r} section"),
        ("letter_lacks", slots, False, "has a {!r} section it must not have"),
        ("letter_says", text, True, "does not say {!r}"),
        ("letter_omits", text, False, "says {!r}, which it must not"),
    )
    for key, where, wanted, problem in checks:
        for x in expect.get(key, []):
            if (x in where) != wanted:
                result.problems.append("letter: " + problem.format(x))


def case_facts(case: dict) -> tuple[Facts, Org]:
    """The Facts and Org a case describes."""
    aware = _time(case.get("aware", "2026-03-02T09:00:00"))
    began = _time(case.get("began", aware - dt.timedelta(days=1)))
    outside = bool(case.get("outside", True))
    groups = []
    for p in case.get("people") or []:
        fields = frozenset(p.get("fields") or ())
        groups.append(
            Group(p["country"], p.get("region"), fields, frozenset(elements(fields)), p["count"])
        )
    incident = Incident(
        id="INC-CASE", severity="high", principals=["user@example.com"], user_ids=[],
        source_ips=[], apps=[], login_keys=[],
        tactics=["initial-access"] if outside else ["exfiltration"], techniques=[],
        rules=["case"], alert_ids=[], first_malicious_at=began.isoformat(),
        first_malicious_event={}, first_alert_at=began.isoformat(), detected_at=None,
        time_to_detect_seconds=0.0, last_event_at=began.isoformat(), events=1,
    )  # fmt: skip
    fields = sorted({f for g in groups for f in g.fields})
    facts = Facts(
        incident=incident,
        scope={"fields": fields},
        groups=groups,
        records=sum(g.count for g in groups),
        aware_at=aware,
        unauthorized_access=outside,
        vector="case",
        categories=[],
        possible=int(case.get("possible") or 0),
        wrongful_purpose=bool(case.get("wrongful_purpose", True)),
    )
    o = case.get("org") or {}
    org = Org(
        establishments=list(o.get("establishments") or []),
        flags={k: v for k, v in o.items() if k in ORG_FLAGS},
        law_enforcement_delay=o.get("law_enforcement_delay"),
    )
    return facts, org


def _time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    return dt.datetime.fromisoformat(str(value).removesuffix("Z"))
