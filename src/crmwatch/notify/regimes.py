"""Jurisdiction rules as cited data: ``jurisdictions/*.yaml``, one file per regime.

Each file says who is covered (countries, US states, and whether an establishment there covers
every affected person), what data makes a breach notifiable, and for the regulator and for
individuals: the duty, the deadline (its length and the moment it runs from), and the contents
required — plus the statute, its sources, ``verified_on``, whether the text itself was read
(``verification: statute``) or only secondary sources, and what stays ``uncertain``. Counsel
can review and change these files without touching code; ``load_regimes`` checks every one
against the schema below and names the file and key of any mistake.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from crmwatch.errors import ConfigError, Location

# How a duty is decided (obligations.py implements each).
REGULATOR_DUTIES = {
    "required",  # whenever the regime applies
    "required_unless_unlikely_risk",  # GDPR Art. 33: required; the exception is a judgment
    "threshold",  # required when any condition of ``when_any`` holds, else not required
    "elements",  # required for people whose exposed data meets ``elements``
    "assess",  # a person must decide (fallbacks)
    "assess_serious_harm",  # AU NDB
    "assess_significant_harm",  # PIPEDA
}
INDIVIDUAL_DUTIES = REGULATOR_DUTIES | {"assess_high_risk", "significant_harm"}
CLOCK_STARTS = {"awareness", "discovery", "determination", "assessment"}
# Shared vocabulary of content slots: regulator reports and letters are built from these.
SLOTS = {
    "nature",
    "vector",
    "timeline",
    "categories",
    "pi_items",
    "number_of_people",
    "number_of_records",
    "contact_point",
    "likely_consequences",
    "measures_taken",
    "measures_proposed",
    "self_help",
    "remedy_procedure",
    "help_desk",
    "when_and_how",
    "summary",
    "cause",
    "secondary_harm",
    "individual_response",
    "publication",
    "prevention",
    "other",
    "reasons_for_delay",
    "sample_notice",
    "law_enforcement",
}
ELEMENTS = {
    "name",
    "ssn",
    "drivers_license",
    "state_id",
    "passport",
    "financial_account",
    "security_code",
    "medical",
    "health_insurance",
    "biometric",
    "dob",
    "password",
    "username_or_email",
    "unique_id",
    "sensitive",
}


@dataclass(frozen=True)
class Deadline:
    hours: int | None = None
    calendar_days: int | None = None
    start: str = "awareness"
    tz: str = "UTC"
    text: str = ""

    @property
    def fixed(self) -> bool:
        return self.hours is not None or self.calendar_days is not None


@dataclass(frozen=True)
class Duty:
    duty: str
    deadline: Deadline
    contents: tuple[str, ...]
    name: str = ""  # the regulator's name
    filing: str = ""
    when_any: tuple[dict, ...] = ()
    headings: tuple[str, ...] = ()
    title: str | None = None
    languages: tuple[str, ...] = ()
    preliminary: Deadline | None = None
    # A different deadline when the breach came from unauthorised access (APPI: 60 days).
    deadline_unauthorized_access: Deadline | None = None


@dataclass(frozen=True)
class Regime:
    id: str
    name: str
    citation: str
    verified_on: dt.date
    verification: str
    sources: tuple[dict, ...]
    countries: tuple[str, ...]
    us_states: tuple[str, ...] | str
    establishment_covers_all: bool
    personal_data: str
    elements_any_of: tuple[tuple[str, ...], ...]
    sensitive_elements: tuple[str, ...]
    regulator: Duty
    individuals: Duty
    uncertain: tuple[str, ...] = field(default_factory=tuple)
    path: Path | None = None


def regimes_dir() -> Path:
    return Path(str(resources.files("crmwatch.notify").joinpath("jurisdictions")))


def load_regimes(directory: Path | None = None) -> list[Regime]:
    """Every regime file, checked; raises ConfigError naming the file and the key."""
    folder = directory or regimes_dir()
    out = [load_regime(p) for p in sorted(folder.glob("*.yaml"))]
    ids = [r.id for r in out]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"regime id {sorted(dupes)[0]!r} is defined twice", Location(folder))
    return out


def load_regime(path: Path) -> Regime:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read regime file: {e}", Location(path)) from e
    errors = check(data)
    if errors:
        raise ConfigError(f"invalid regime file: {errors[0]}", Location(path))
    pop = data["population"]
    states = pop.get("us_states") or ()
    return Regime(
        id=data["id"],
        name=data["name"],
        citation=data["citation"],
        verified_on=data["verified_on"],
        verification=data["verification"],
        sources=tuple(data["sources"]),
        countries=tuple(pop["countries"]),
        us_states=states if isinstance(states, str) else tuple(states),
        establishment_covers_all=bool(pop.get("establishment_covers_all")),
        personal_data=data["personal_data"],
        elements_any_of=tuple(tuple(c) for c in (data.get("elements") or {}).get("any_of", [])),
        sensitive_elements=tuple(data.get("sensitive_elements") or ()),
        regulator=_duty(data["regulator"]),
        individuals=_duty(data["individuals"]),
        uncertain=tuple(data.get("uncertain") or ()),
        path=path,
    )


def _deadline(d: dict) -> Deadline:
    return Deadline(
        d.get("hours"),
        d.get("calendar_days"),
        d.get("from", "awareness"),
        d.get("tz", "UTC"),
        d.get("text", ""),
    )


def _duty(d: dict) -> Duty:
    return Duty(
        duty=d["duty"],
        deadline=_deadline(d["deadline"]),
        contents=tuple(d["contents"]),
        name=d.get("name", ""),
        filing=d.get("filing", ""),
        when_any=tuple(d.get("when_any") or ()),
        headings=tuple(d.get("headings") or ()),
        title=d.get("title"),
        languages=tuple(d.get("languages") or ()),
        preliminary=_deadline(d["preliminary"]) if d.get("preliminary") else None,
        deadline_unauthorized_access=_deadline(d["deadline_unauthorized_access"])
        if d.get("deadline_unauthorized_access")
        else None,
    )


def check(data: Any) -> list[str]:
    """Schema errors of one regime file, as "key: problem" strings (empty when valid)."""
    if not isinstance(data, dict):
        return ["the file must be a mapping"]
    errs: list[str] = []
    for key in (
        "id",
        "name",
        "citation",
        "verified_on",
        "verification",
        "sources",
        "population",
        "personal_data",
        "regulator",
        "individuals",
    ):
        if key not in data:
            errs.append(f"{key}: missing")
    if errs:
        return errs
    if not isinstance(data["verified_on"], dt.date):
        errs.append("verified_on: must be a date (YYYY-MM-DD)")
    if data["verification"] not in ("statute", "secondary"):
        errs.append("verification: must be statute or secondary")
    if not data["sources"] or not all(
        isinstance(s, dict) and s.get("url") and s.get("cite") for s in data["sources"]
    ):
        errs.append("sources: each needs cite and url")
    pop = data["population"]
    if not isinstance(pop, dict) or not pop.get("countries"):
        errs.append("population.countries: missing")
    if data["personal_data"] not in ("any", "elements"):
        errs.append("personal_data: must be any or elements")
    if data["personal_data"] == "elements":
        combos = (data.get("elements") or {}).get("any_of")
        if not combos:
            errs.append("elements.any_of: needed when personal_data is elements")
        for combo in combos or []:
            unknown = set(combo) - ELEMENTS
            if unknown:
                errs.append(f"elements.any_of: unknown element {sorted(unknown)[0]!r}")
    for e in data.get("sensitive_elements") or []:
        if e not in ELEMENTS:
            errs.append(f"sensitive_elements: unknown element {e!r}")
    for who, duties in (("regulator", REGULATOR_DUTIES), ("individuals", INDIVIDUAL_DUTIES)):
        d = data[who]
        if not isinstance(d, dict):
            errs.append(f"{who}: must be a mapping")
            continue
        if d.get("duty") not in duties:
            errs.append(f"{who}.duty: {d.get('duty')!r} is not one of {sorted(duties)}")
        if d.get("duty") == "threshold" and not d.get("when_any"):
            errs.append(f"{who}.when_any: needed for a threshold duty")
        if "deadline" not in d:
            errs.append(f"{who}.deadline: missing")
        for k in ("deadline", "preliminary", "deadline_unauthorized_access"):
            if k in d:
                errs += [f"{who}.{k}.{e}" for e in _check_deadline(d[k])]
        if not d.get("contents"):
            errs.append(f"{who}.contents: missing")
        unknown = set(d.get("contents") or ()) - SLOTS
        if unknown:
            errs.append(f"{who}.contents: unknown slot {sorted(unknown)[0]!r}")
    return errs


def _check_deadline(d: Any) -> list[str]:
    if not isinstance(d, dict):
        return ["must be a mapping"]
    errs = []
    if d.get("from", "awareness") not in CLOCK_STARTS:
        errs.append(f"from: {d.get('from')!r} is not one of {sorted(CLOCK_STARTS)}")
    if not d.get("text") and d.get("hours") is None and d.get("calendar_days") is None:
        errs.append("needs hours, calendar_days or text")
    if d.get("calendar_days") is not None and not d.get("tz"):
        errs.append("calendar_days needs tz (days end at local midnight)")
    return errs
