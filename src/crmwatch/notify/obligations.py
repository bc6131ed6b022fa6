"""Which regime requires what, by when: one obligation per regime and recipient.

A regime covers the affected customers living in its territory, or every affected customer when
the controller is established there and the regime says so (GDPR Art. 3(1)). It is *triggered*
by the data exposed (any personal data, or the element combinations a US statute lists). The
duty then decides the status:

- ``required`` — the law requires the notice on these facts;
- ``not_required`` — with the reason (below the count threshold; data categories not covered);
- ``assess`` — the law turns on a judgment crmwatch cannot make (GDPR high risk, Australia's
  serious harm, Canada's real risk of significant harm): flagged, with the clock that runs.

Deadlines are absolute UTC times. Hours are counted as elapsed time; calendar days end at
midnight in the jurisdiction's time zone (so a 30-day period across a daylight-saving change
ends at local midnight, not 720 hours later). Clocks that run from "determination" or
"assessment" are started at ``--aware-at``, and the obligation says it assumed so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from zoneinfo import ZoneInfo

from crmwatch.notify.elements import satisfies
from crmwatch.notify.facts import Facts, Group
from crmwatch.notify.org import Org
from crmwatch.notify.regimes import Deadline, Duty, Regime
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
    explicit_states = {s for r in regimes if isinstance(r.us_states, tuple) for s in r.us_states}
    out: list[Obligation] = []
    population: dict[str, int] = {}
    for r in regimes:
        groups = _population(r, facts.groups, org, explicit_states)
        if not groups:
            continue
        population[r.id] = sum(g.count for g in groups)
        for recipient, duty in (("regulator", r.regulator), ("individuals", r.individuals)):
            out.append(_obligation(r, recipient, duty, groups, facts, now))
    order = {s: i for i, s in enumerate(STATUSES)}
    out.sort(key=lambda o: (order[o.status], o.deadline_utc or "9999", o.regime, o.recipient))
    return Assessment(out, assumptions, population)


def _population(r: Regime, groups: list[Group], org: Org, explicit: set[str]) -> list[Group]:
    if r.establishment_covers_all and set(org.establishments) & set(r.countries):
        return list(groups)
    picked = []
    for g in groups:
        if g.country not in r.countries:
            continue
        if r.us_states and g.country == "US":
            if r.us_states == "*other":
                if g.us_state in explicit:
                    continue
            elif g.us_state not in r.us_states:
                continue
        picked.append(g)
    return picked


def _triggered(r: Regime, groups: list[Group]) -> list[Group]:
    if r.personal_data == "any":
        return list(groups)
    combos = [list(c) for c in r.elements_any_of]
    return [g for g in groups if satisfies(set(g.elements), combos)]


def _obligation(
    r: Regime, recipient: str, duty: Duty, groups: list[Group], facts: Facts, now: dt.datetime
) -> Obligation:
    affected = sum(g.count for g in groups)
    hit = _triggered(r, groups)
    triggered = sum(g.count for g in hit)
    status, reason = _status(r, duty, groups, hit, triggered, affected, facts)
    deadline = duty.deadline
    if facts.unauthorized_access and duty.deadline_unauthorized_access is not None:
        deadline = duty.deadline_unauthorized_access
    due, local, clock = _due(deadline, facts.aware_at)
    prelim = _due(duty.preliminary, facts.aware_at)[0] if duty.preliminary else None
    left = None if due is None else round((due - now).total_seconds() / 3600, 1)
    return Obligation(
        regime=r.id,
        regime_name=r.name,
        recipient=recipient,
        to=duty.name if recipient == "regulator" else "affected individuals",
        filing=duty.filing if recipient == "regulator" else "letter or e-mail to each person",
        status=status,
        reason=reason,
        affected=affected,
        triggered=triggered,
        trigger_met=triggered > 0,
        deadline_utc=_iso(due) if status != "not_required" else None,
        deadline_local=local if status != "not_required" else None,
        deadline_text=deadline.text,
        clock=clock,
        time_left_hours=left if status != "not_required" else None,
        preliminary_deadline_utc=_iso(prelim) if prelim and status != "not_required" else None,
        citation=r.citation,
        verification=r.verification,
        verified_on=r.verified_on.isoformat(),
        uncertain=list(r.uncertain),
        languages=list(duty.languages),
    )


def _status(
    r: Regime,
    duty: Duty,
    groups: list[Group],
    hit: list[Group],
    triggered: int,
    affected: int,
    facts: Facts,
) -> tuple[str, str]:
    if r.personal_data == "elements" and not triggered:
        exposed = sorted(
            {e for g in groups for e in g.elements} - {"first_name", "last_name", "full_name"}
        )
        need = "; ".join(" + ".join(c) for c in r.elements_any_of)
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
            "assess_serious_harm": "serious harm is likely",
            "assess_significant_harm": "there is a real risk of significant harm",
            "assess": "the state's own statute applies",
        }[d]
        return "assess", f"required only if {what}; a person must decide"
    if d == "significant_harm":
        harm = [g for g in groups if set(g.elements) & set(r.sensitive_elements)]
        if harm:
            return "required", "data of a prescribed class deemed to cause significant harm"
        return "not_required", (
            "notifiable by scale only, not for significant harm: individuals are told only of "
            "breaches likely to cause significant harm"
        )
    if d == "threshold":
        met = _conditions_met(duty.when_any, groups, triggered, affected, facts)
        if met:
            return "required", "; ".join(met)
        return "not_required", "below the thresholds: " + "; ".join(
            _describe(c) for c in duty.when_any
        )
    return "assess", f"unknown duty {d!r}"


def _conditions_met(
    when_any: tuple[dict, ...], groups: list[Group], triggered: int, affected: int, facts: Facts
) -> list[str]:
    met = []
    present = {e for g in groups for e in g.elements}
    for c in when_any:
        if "min_affected" in c and affected >= c["min_affected"]:
            met.append(f"{affected:,} people affected (threshold {c['min_affected']:,})")
        if "min_triggered" in c and triggered >= c["min_triggered"]:
            met.append(f"{triggered:,} people covered (threshold {c['min_triggered']:,})")
        if "elements" in c and set(c["elements"]) <= present:
            met.append(f"{' + '.join(c['elements'])} exposed")
        if c.get("vector") == "unauthorized_access" and facts.unauthorized_access:
            met.append("the leak came from unauthorised outside access (any number of people)")
    return met


def _describe(c: dict) -> str:
    if "min_affected" in c:
        return f"{c['min_affected']:,}+ people affected"
    if "min_triggered" in c:
        return f"{c['min_triggered']:,}+ people covered"
    if "elements" in c:
        return f"{' + '.join(c['elements'])} exposed"
    if "vector" in c:
        return "unauthorised outside access"
    return str(c)


def _due(d: Deadline | None, start: dt.datetime) -> tuple[dt.datetime | None, str | None, str]:
    """Deadline in UTC (naive), the same in the jurisdiction's local time, and the clock."""
    if d is None:
        return None, None, ""
    clock = f"from {d.start}"
    if d.start in ("determination", "assessment"):
        clock += f" (assumed at --aware-at: the {d.start} is not in the logs)"
    if d.hours is not None:
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
