"""Which regime requires what, by when: one obligation per regime and recipient.

A regime covers the affected customers living in its territory, or every affected customer when
the controller is established there and the regime says so (GDPR Art. 3(1)). It is *triggered*
by the data exposed (any personal data, or the element combinations a US statute lists). The
duty then decides the status:

- ``required`` — the law requires the notice on these facts;
- ``not_required`` — with the reason (below the count threshold; data categories not covered);
- ``assess`` — the law turns on a judgment crmwatch cannot make (GDPR high risk, Australia's
  serious harm, Canada's real risk of significant harm): flagged, with the clock that runs.

A regime is judged by the text in force when the incident began (``Regime.on``); a text that
took effect between then and awareness is named among the obligation's open questions. A regime
that applies only to some controllers (Korea's Network Act: information and communications
service providers) asks the org file, and is ``assess`` while the file is silent.

Deadlines are absolute UTC times; "immediately" is due the moment the clock starts (so it
sorts before every 24- or 72-hour duty). Hours are counted as elapsed time; calendar days end
at midnight in the jurisdiction's time zone (so a 30-day period across a daylight-saving
change ends at local midnight, not 720 hours later). Clocks that run from "determination" or
"assessment" are started at ``--aware-at``, and the obligation says it assumed so.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from crmwatch.notify.elements import satisfies
from crmwatch.notify.facts import Facts, Group
from crmwatch.notify.org import Org
from crmwatch.notify.regimes import ORG_FLAGS, Deadline, Duty, Regime, explicit_regions
from crmwatch.timeutil import utc_naive

STATUSES = ("required", "assess", "not_required")


@dataclass
class Obligation:
    regime: str
    regime_name: str
    recipient: str  # regulator | individuals
    to: str
    filing: str
    status: str
    reason: str
    affected: int
    triggered: int
    trigger_met: bool
    deadline_utc: str | None
    deadline_local: str | None
    deadline_text: str
    clock: str
    time_left_hours: float | None
    preliminary_deadline_utc: str | None
    citation: str
    verification: str
    verified_on: str
    uncertain: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    assessment_deadline_utc: str | None = None
    version: str = ""  # the amendment applied, "" for the base text
    not_modelled: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Assessment:
    obligations: list[Obligation]
    assumptions: list[str]
    population: dict[str, int]  # regime → affected customers it covers


def decide(regimes: list[Regime], facts: Facts, org: Org, now: dt.datetime) -> Assessment:
    assumptions = []
    if not org.given:
        assumptions.append(
            "No org file (--org): crmwatch assumed the controller has no establishment in any "
            "regime's territory, so each regime covers only the affected people living there "
            "(for GDPR, Art. 3(2): a retailer offering goods to EU residents). With an EU or UK "
            "establishment, GDPR / UK GDPR covers every affected person wherever they live."
        )
    explicit = explicit_regions(regimes)
    began, aware = facts.began.date(), facts.aware_at.date()
    out: list[Obligation] = []
    population: dict[str, int] = {}
    covered: set[int] = set()  # the groups some applied regime covers, by position
    for base in regimes:
        groups = population_of(base, facts.groups, org, explicit)
        if not groups:
            continue
        r = base.on(began, aware)
        if r is None:
            assumptions.append(
                f"{base.name} was not in force on {began.isoformat()}, when the incident began: "
                "not applied."
            )
            continue
        population[r.id] = sum(g.count for g in groups)
        covered |= {id(g) for g in groups}
        for recipient, duty in (("regulator", r.regulator), ("individuals", r.individuals),
                                *r.others):  # fmt: skip
            if duty.duty != "none":
                out.append(_obligation(base, r, recipient, duty, groups, facts, org, now))
    assumptions += _uncovered([g for g in facts.groups if id(g) not in covered])
    order = {s: i for i, s in enumerate(STATUSES)}
    out.sort(key=lambda o: (order[o.status], o.deadline_utc or "9999", o.regime, o.recipient))
    return Assessment(out, assumptions, population)


def _uncovered(groups: list[Group]) -> list[str]:
    """Affected customers no regime applied to are in no obligation and no mailing-list row:
    said, never left out silently (a customer the snapshot gives no country, or none of its
    rows at all, is one of them)."""
    said = []
    if unknown := sum(g.count for g in groups if g.country is None):
        said.append(
            f"{unknown} affected customers have no known country (the snapshot gives none, or "
            "does not hold them): no regime was decided for them and the mailing list does not "
            "list them. Find where they live and decide their notices by hand."
        )
    elsewhere = Counter({g.country: 0 for g in groups if g.country is not None})
    for g in groups:
        if g.country is not None:
            elsewhere[g.country] += g.count
    if elsewhere:
        places = ", ".join(f"{c} {n}" for c, n in sorted(elsewhere.items()))
        said.append(
            f"{sum(elsewhere.values())} affected customers live where no regime crmwatch knows "
            f"applies ({places}): no regime was decided for them and the mailing list does not "
            "list them. Check the law where they live."
        )
    return said


def population_of(r: Regime, groups: list[Group], org: Org, explicit: set[str]) -> list[Group]:
    """The affected people a regime covers: all of them when the controller is established in
    its territory and the regime says so, else those living there."""
    if r.establishment_covers_all and set(org.establishments) & set(r.countries):
        return list(groups)
    return [g for g in groups if r.covers(g.country, g.region, explicit)]


def _triggered(r: Regime, groups: list[Group]) -> list[Group]:
    if r.personal_data == "any":
        return list(groups)
    combos = [list(c) for c in r.elements_any_of]
    return [g for g in groups if satisfies(set(g.elements), combos)]


@dataclass
class _Case:
    """What a condition is judged on."""

    groups: list[Group]
    triggered: int
    affected: int
    facts: Facts
    org: Org
    counts_possible: bool


def _obligation(
    base: Regime,
    r: Regime,
    recipient: str,
    duty: Duty,
    groups: list[Group],
    facts: Facts,
    org: Org,
    now: dt.datetime,
) -> Obligation:
    affected = sum(g.count for g in groups)
    hit = _triggered(r, groups)
    triggered = sum(g.count for g in hit)
    case = _Case(groups, triggered, affected, facts, org, duty.counts_possible)
    status, reason = _status(r, duty, groups, case)
    if status != "not_required" and duty.counts_possible and facts.possible:
        reason += (f"; also up to {facts.possible:,} records the logs bound but cannot list: "
                   "a possible leak counts, so find who they are")  # fmt: skip
    deadline = duty.deadline
    for v in duty.variants:
        if _met(v.when, case):
            deadline = v.deadline
            break
    due, local, clock = _due(deadline, facts.aware_at)
    prelim = _due(duty.preliminary, facts.aware_at)[0] if duty.preliminary else None
    assess_by = _due(duty.assessment, facts.aware_at)[0] if duty.assessment else None
    left = None if due is None else round((due - now).total_seconds() / 3600, 1)
    owed = status != "not_required"
    return Obligation(
        regime=r.id,
        regime_name=r.name,
        recipient=recipient,
        to=duty.name if recipient != "individuals" else "affected individuals",
        filing=duty.filing if recipient != "individuals" else "letter or e-mail to each person",
        status=status,
        reason=reason,
        affected=affected,
        triggered=triggered,
        trigger_met=triggered > 0,
        deadline_utc=_iso(due) if owed else None,
        deadline_local=local if owed else None,
        deadline_text=deadline.text,
        clock=clock,
        time_left_hours=left if owed else None,
        preliminary_deadline_utc=_iso(prelim) if prelim and owed else None,
        citation=r.citation,
        verification=r.verification,
        verified_on=r.verified_on.isoformat(),
        uncertain=[*_transition(base, r, facts), *r.uncertain],
        languages=list(duty.languages),
        assessment_deadline_utc=_iso(assess_by) if assess_by and owed else None,
        version=r.version,
        not_modelled=list(r.not_modelled),
    )


def _transition(base: Regime, r: Regime, facts: Facts) -> list[str]:
    """A text that took effect after the incident began but by the time the company knew."""
    began, aware = facts.began.date(), facts.aware_at.date()
    newer = [t for t in (base, *base.later) if t is not r and t.in_force_from
             and began < t.in_force_from <= aware and t.applies_by == "began"]  # fmt: skip
    return [
        f"The incident began on {began.isoformat()}, before {t.version or t.name} took effect "
        f"on {t.in_force_from.isoformat()}, and became known after it: the text in force when "
        f"it began ({r.version or 'the earlier text'}) was applied; counsel should check the "
        "amendment's transitional provisions."
        for t in newer
        if t.in_force_from
    ]


def _status(r: Regime, duty: Duty, groups: list[Group], case: _Case) -> tuple[str, str]:
    facts, triggered = case.facts, case.triggered
    if r.applies_if_org:
        flag = case.org.flags.get(r.applies_if_org)
        what = ORG_FLAGS[r.applies_if_org]
        if flag is False:
            return "not_required", f"the org file says the controller is not {what}"
        if flag is None:
            return "assess", (
                f"applies only if the controller is {what}; the org file does not say "
                f"(controller.{r.applies_if_org} = true or false)"
            )
    if r.personal_data == "elements" and not triggered:
        exposed = sorted(
            {e for g in groups for e in g.elements} - {"first_name", "last_name", "full_name"}
        )
        need = "; ".join(" + ".join(c) for c in r.elements_any_of)
        if r.coverage == "partial":
            regions = sorted({g.region or "unknown" for g in groups})
            return "assess", (
                f"not encoded for {', '.join(regions)}: crmwatch knows only the elements common "
                f"to most state statutes ({need}), and a state's own list may be wider "
                "(credentials, medical, health insurance, biometric data …); check each "
                "state's statute"
            )
        return "not_required", (
            f"data categories not covered: the statute needs {need}; exposed elements: "
            f"{', '.join(exposed) or 'none it lists'}"
        )
    d = duty.duty
    if d == "required":
        return "required", f"any personal data of {triggered:,} people covered"
    if d == "elements":
        return "required", f"{triggered:,} people's exposed data meets the statute's elements"
    if d == "required_unless_unlikely_risk":
        return "required", (
            f"{triggered:,} people's personal data taken by an unauthorised party: crmwatch "
            "does not treat that as 'unlikely to result in a risk' (document any other view)"
        )
    if d == "assess_high_risk":
        return "assess", (
            "individuals must be told if the breach is likely to result in a high risk "
            f"(categories: {', '.join(facts.categories) or 'unknown'}); a person must decide"
        )
    if d in ("assess_serious_harm", "assess_significant_harm", "assess"):
        what = {
            "assess_serious_harm": "serious harm (injury) is likely",
            "assess_significant_harm": "there is a real risk of significant harm",
            "assess": "the state's own statute applies",
        }[d]
        return "assess", f"required only if {what}; a person must decide"
    if d == "threshold":
        met = [m for c in duty.when_any if (m := _met(c, case))]
        if met:
            return "required", "; ".join(met)
        return "not_required", "below the thresholds: " + "; ".join(
            _describe(c) for c in duty.when_any
        )
    return "assess", f"unknown duty {d!r}"


def _met(c: dict, case: _Case) -> str | None:
    """Why condition ``c`` holds, or None. Every key of ``c`` must hold."""
    why = []
    present = {e for g in case.groups for e in g.elements}
    if "min_affected" in c:
        n = case.affected + (case.facts.possible if case.counts_possible else 0)
        if n < c["min_affected"]:
            return None
        extra = ""
        if case.counts_possible and case.facts.possible:
            extra = (
                f", counting up to {case.facts.possible:,} records the logs bound but "
                "cannot list: 'leaked or may have leaked'"
            )
        why.append(f"{n:,} people affected (threshold {c['min_affected']:,}{extra})")
    if "min_triggered" in c:
        if case.triggered < c["min_triggered"]:
            return None
        why.append(f"{case.triggered:,} people covered (threshold {c['min_triggered']:,})")
    if "elements" in c:
        if not set(c["elements"]) <= present:
            return None
        why.append(f"{' + '.join(c['elements'])} exposed")
    if "elements_any_of" in c:
        hit = [g for g in case.groups if satisfies(set(g.elements), c["elements_any_of"])]
        if not hit:
            return None
        combos = [" + ".join(x) for x in c["elements_any_of"]
                  if any(set(x) <= set(g.elements) for g in hit)]  # fmt: skip
        why.append(f"{sum(g.count for g in hit):,} people with {' or '.join(combos)} exposed")
    if c.get("vector") == "unauthorized_access":
        if not case.facts.unauthorized_access:
            return None
        why.append("the leak came from unauthorised outside access (any number of people)")
    if c.get("vector") == "wrongful_purpose":
        if not case.facts.wrongful_purpose:
            return None
        why.append(
            "the leak may have been committed for a wrongful purpose ("
            + (
                "an outside attack"
                if case.facts.unauthorized_access
                else "an insider's unauthorised export"
            )
            + "; any number of people)"
        )
    if "org" in c:
        if case.org.flags.get(c["org"]) is not True:
            return None
        why.append(f"the controller is {ORG_FLAGS[c['org']]}")
    return "; ".join(why) or None


def _describe(c: dict) -> str:
    parts = []
    if "min_affected" in c:
        parts.append(f"{c['min_affected']:,}+ people affected")
    if "min_triggered" in c:
        parts.append(f"{c['min_triggered']:,}+ people covered")
    if "elements" in c:
        parts.append(f"{' + '.join(c['elements'])} exposed")
    if "elements_any_of" in c:
        parts.append(" or ".join(" + ".join(x) for x in c["elements_any_of"]) + " exposed")
    if c.get("vector") == "unauthorized_access":
        parts.append("unauthorised outside access")
    if c.get("vector") == "wrongful_purpose":
        parts.append("a possible wrongful purpose")
    if "org" in c:
        parts.append(f"the controller is {ORG_FLAGS[c['org']]}")
    return " and ".join(parts) or str(c)


def _due(d: Deadline | None, start: dt.datetime) -> tuple[dt.datetime | None, str | None, str]:
    """Deadline in UTC (naive), the same in the jurisdiction's local time, and the clock."""
    if d is None:
        return None, None, ""
    clock = f"from {d.start}"
    if d.start in ("determination", "assessment"):
        clock += f" (assumed at --aware-at: the {d.start} is not in the logs)"
    if d.immediately:
        due = start.replace(microsecond=0)
    elif d.hours is not None:
        # Whole seconds, rounded down: a deadline is never stated later than it falls.
        due = (start + dt.timedelta(hours=d.hours)).replace(microsecond=0)
    elif d.calendar_days is not None:
        zone = ZoneInfo(d.tz)
        local_start = start.replace(tzinfo=dt.UTC).astimezone(zone)
        last_day = local_start.date() + dt.timedelta(days=d.calendar_days)
        end_local = dt.datetime.combine(last_day, dt.time(23, 59, 59), tzinfo=zone)
        due = utc_naive(end_local)
    else:
        return None, None, clock
    zone = ZoneInfo(d.tz)
    local = due.replace(tzinfo=dt.UTC).astimezone(zone).isoformat()
    return due, f"{local} ({d.tz})", clock


def _iso(ts: dt.datetime | None) -> str | None:
    return None if ts is None else ts.isoformat() + "Z"
