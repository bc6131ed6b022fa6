"""Jurisdiction rules as cited data: ``jurisdictions/*.yaml``, one file per regime.

Each file says who is covered (countries, US states or Canadian provinces, and whether an
establishment there covers every affected person), what data makes a breach notifiable, and for
the regulator and for individuals: the duty, the deadline (its length and the moment it runs
from), and the contents required. It cites its law: every source has a ``kind`` — ``statute``
(the law's own text was read), ``regulator`` (the regulator's own guidance) or ``secondary``
(law-firm and other summaries) — and what rests on a secondary source or stays open is written
in ``uncertain``; what the file deliberately leaves out is in ``not_modelled`` with the reason.

Laws change: ``in_force`` bounds when a regime applies at all, and ``amendments`` are the later
texts, each replacing the keys it names from its ``in_force`` date, so an incident is judged by
the text in force when it began (``Regime.on``). Each file carries its own ``cases`` (facts in,
obligations out), run by pytest and by ``crmwatch notify check`` as the rule files carry theirs.

Counsel can review and change these files without touching code; ``load_regimes`` checks every
one against the schema below and names the file and key of any mistake.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from crmwatch.errors import ConfigError, Location

# How a duty is decided (obligations.py implements each).
REGULATOR_DUTIES = {
    "required",  # whenever the regime applies
    "required_unless_unlikely_risk",  # GDPR Art. 33: required; the exception is a judgment
    "threshold",  # required when any condition of ``when_any`` holds, else not required
    "elements",  # required for people whose exposed data meets ``elements``
    "assess",  # a person must decide (fallbacks)
    "assess_serious_harm",  # AU NDB, Quebec
    "assess_significant_harm",  # PIPEDA, Alberta
    "none",  # the regime has no such recipient (Korea's Network Act: only the regulator)
}
INDIVIDUAL_DUTIES = REGULATOR_DUTIES | {"assess_high_risk"}
CLOCK_STARTS = {"awareness", "discovery", "determination", "assessment"}
SOURCE_KINDS = ("statute", "regulator", "secondary")  # strongest first
# Facts about the controller an org file may state (``[controller]``); a regime gated on one
# is ``assess`` while the org file is silent.
ORG_FLAGS = {
    "kr_ict_service_provider": "an information and communications service provider under "
    "Korea's Network Act (Art. 2(1)3)",
    "cn_cii_operator": "a critical information infrastructure operator in China",
    "ma_wisp": "maintains a written information security program (201 CMR 17.00)",
}
VECTORS = {"unauthorized_access", "wrongful_purpose"}
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
    # letters: what particular statutes add
    "notice_date",  # CA 1798.82(d)(2)(C)
    "law_enforcement_delay",  # CA 1798.82(d)(2)(E)
    "change_password",  # CA 1798.82(d)(4)… credentials only
    "identity_theft_services",  # CA 1798.82(d)(2)(G): SSN or ID numbers only
    "police_report",  # MA c. 93H § 3(b)
    "security_freeze",  # MA c. 93H § 3(b)
    "credit_bureaus",  # WA, CA: the major credit reporting agencies
    "agency_contacts",  # NY § 899-aa(7): state and federal agencies
    "complaint_right",  # PIPEDA regs s. 3(g), Quebec: right to complain to the commissioner
    "internal_complaint",  # PIPEDA regs s. 3(g): the organisation's complaint process
    "remedy_rights",  # PIPA from 2026: damages claims and dispute mediation
    # regulator reports
    "individuals_notified",  # SG: whether and when individuals were told
    "wisp",  # MA: whether a written information security program is kept
    "responsible_party",  # MA: who caused the breach, if known
    "report_contact",  # PIPEDA regs s. 2(1)(g): who answers the commissioner's questions
    "incident_grade",  # CN CAC: the incident's grade
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
CONDITION_KEYS = {"min_affected", "min_triggered", "elements", "elements_any_of", "vector", "org"}


@dataclass(frozen=True)
class Deadline:
    hours: int | None = None
    calendar_days: int | None = None
    start: str = "awareness"
    tz: str = "UTC"
    text: str = ""
    immediately: bool = False  # PIPL "立即": due the moment the clock starts

    @property
    def fixed(self) -> bool:
        return self.hours is not None or self.calendar_days is not None or self.immediately


@dataclass(frozen=True)
class Variant:
    """A different deadline when a condition holds (APPI: 60 days for a wrongful purpose)."""

    when: dict
    deadline: Deadline


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
    assessment: Deadline | None = None  # AU s. 26WH: the assessment, not the filing
    variants: tuple[Variant, ...] = ()
    counts_possible: bool = False  # "leaked or may have leaked": bounded records count


@dataclass(frozen=True)
class Regime:
    id: str
    name: str
    citation: str
    verified_on: dt.date
    sources: tuple[dict, ...]
    countries: tuple[str, ...]
    regions: tuple[str, ...] | str  # US states / CA provinces, or "*other"
    establishment_covers_all: bool
    personal_data: str
    elements_any_of: tuple[tuple[str, ...], ...]
    regulator: Duty
    individuals: Duty
    # further recipients a statute names (consumer reporting agencies above a count)
    others: tuple[tuple[str, Duty], ...] = ()
    # partial: the element list is a fallback, not the law; data it does not list is
    # "assess", never "not required"
    coverage: str = "complete"
    applies_if_org: str | None = None
    in_force_from: dt.date | None = None
    in_force_until: dt.date | None = None
    version: str = ""  # the amendment this text is, "" for the base text
    # which date decides whether this text applies: when the incident began, or when the
    # company became aware (PIPA 2026 addendum: leaks learned of after it took effect)
    applies_by: str = "began"
    uncertain: tuple[str, ...] = ()
    not_modelled: tuple[str, ...] = ()
    # A record of every breach, notified or not (GDPR Art. 33(5), PIPEDA s. 10.3 …)
    record: str = ""
    later: tuple[Regime, ...] = ()  # the amended texts, in date order
    cases: tuple[dict, ...] = ()
    path: Path | None = None

    @property
    def verification(self) -> str:
        """What the rule rests on, by kind of source: never "statute" when a secondary
        source was needed too."""
        kinds = [k for k in SOURCE_KINDS if any(s["kind"] == k for s in self.sources)]
        names = {
            "statute": "statute text",
            "regulator": "regulator guidance",
            "secondary": "secondary sources",
        }
        return " + ".join(names[k] for k in kinds)

    def on(self, began: dt.date, aware: dt.date | None = None) -> Regime | None:
        """The text that governs an incident that began on ``began`` and was known on
        ``aware``, or None when the regime did not (or no longer) apply. Each text says
        which of the two dates brings an incident under it (``applies_by``)."""
        current: Regime | None = None
        for r in (self, *self.later):
            day = aware if r.applies_by == "awareness" and aware else began
            if r.in_force_from is None or r.in_force_from <= day:
                current = r
        if current is None or (current.in_force_until and began > current.in_force_until
                               and current.applies_by == "began"):  # fmt: skip
            return None
        return current

    def covers(self, country: str | None, region: str | None, explicit: set[str]) -> bool:
        """Whether a customer living in ``country``/``region`` is in this regime's territory;
        ``explicit`` holds the regions that have a file of their own."""
        if country not in self.countries:
            return False
        if not self.regions:
            return True
        if self.regions == "*other":
            return region not in explicit
        return region in self.regions


def regimes_dir() -> Path:
    return Path(str(resources.files("crmwatch.notify").joinpath("jurisdictions")))


def explicit_regions(regimes: list[Regime]) -> set[str]:
    return {s for r in regimes if isinstance(r.regions, tuple) for s in r.regions}


def load_regimes(directory: Path | None = None) -> list[Regime]:
    """Every regime file, checked; raises ConfigError naming the file and the key."""
    folder = directory or regimes_dir()
    if not folder.is_dir():
        raise ConfigError("no such folder of jurisdiction files", Location(folder))
    out = [load_regime(p) for p in sorted(folder.glob("*.yaml"))]
    ids = [r.id for r in out]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"regime id {sorted(dupes)[0]!r} is defined twice", Location(folder))
    return out


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load``, parsed by libyaml when PyYAML has it: the same objects, about eight
    times as fast (the jurisdiction files are read at every ``crmwatch notify``). A text
    libyaml refuses is parsed again by PyYAML's own parser, so its error reads as it did."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            return yaml.load(text, Loader=loader)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


def load_regime(path: Path) -> Regime:
    try:
        data = safe_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read regime file: {e}", Location(path)) from e
    errors = check(data)
    if errors:
        raise ConfigError(f"invalid regime file: {errors[0]}", Location(path))
    base = _regime(data, path)
    later = []
    texts = [data]
    for n, a in enumerate(data.get("amendments") or []):
        merged = _merge(copy.deepcopy(texts[-1]), a["set"])
        merged["in_force"] = {"from": a["in_force"]}
        errs = check(merged)
        if errs:
            raise ConfigError(f"invalid regime file: amendments[{n}]: {errs[0]}", Location(path))
        texts.append(merged)
        later.append(replace(_regime(merged, path), version=a["summary"],
                             applies_by=a.get("applies_by", "began")))  # fmt: skip
    # each text ends the day before the next begins
    ends = [t.in_force_from - dt.timedelta(days=1) for t in later if t.in_force_from]
    chain = [base, *later]
    for i, t in enumerate(chain[:-1]):
        chain[i] = replace(t, in_force_until=ends[i])
    return replace(chain[0], later=tuple(chain[1:]))


def _merge(into: dict, changes: dict) -> dict:
    """``changes`` over ``into``: mappings merge key by key, anything else is replaced."""
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v
    return into


def _regime(data: dict, path: Path) -> Regime:
    pop = data["population"]
    regions = pop.get("regions") or ()
    force = data.get("in_force") or {}
    return Regime(
        id=data["id"],
        name=data["name"],
        citation=data["citation"],
        verified_on=data["verified_on"],
        sources=tuple(data["sources"]),
        countries=tuple(pop["countries"]),
        regions=regions if isinstance(regions, str) else tuple(regions),
        establishment_covers_all=bool(pop.get("establishment_covers_all")),
        personal_data=data["personal_data"],
        elements_any_of=tuple(tuple(c) for c in (data.get("elements") or {}).get("any_of", [])),
        regulator=_duty(data["regulator"]),
        individuals=_duty(data["individuals"]),
        others=tuple((o["recipient"], _duty(o)) for o in data.get("others") or ()),
        coverage=data.get("coverage", "complete"),
        applies_if_org=data.get("applies_if_org"),
        in_force_from=force.get("from"),
        in_force_until=force.get("until"),
        uncertain=tuple(data.get("uncertain") or ()),
        not_modelled=tuple(data.get("not_modelled") or ()),
        record=data.get("record_keeping", ""),
        cases=tuple(data.get("cases") or ()),
        path=path,
    )


def _deadline(d: dict) -> Deadline:
    return Deadline(
        d.get("hours"),
        d.get("calendar_days"),
        d.get("from", "awareness"),
        d.get("tz", "UTC"),
        d.get("text", ""),
        bool(d.get("immediately")),
    )


def _duty(d: dict) -> Duty:
    return Duty(
        duty=d["duty"],
        deadline=_deadline(d.get("deadline") or {}),
        contents=tuple(d.get("contents") or ()),
        name=d.get("name", ""),
        filing=d.get("filing", ""),
        when_any=tuple(d.get("when_any") or ()),
        headings=tuple(d.get("headings") or ()),
        title=d.get("title"),
        languages=tuple(d.get("languages") or ()),
        preliminary=_deadline(d["preliminary"]) if d.get("preliminary") else None,
        assessment=_deadline(d["assessment"]) if d.get("assessment") else None,
        variants=tuple(
            Variant(v["when"], _deadline(v["deadline"])) for v in d.get("deadline_variants") or ()
        ),
        counts_possible=bool(d.get("counts_possible")),
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
    if "verification" in data:
        errs.append("verification: say each source's kind instead (sources[].kind)")
    sources = data["sources"]
    if not isinstance(sources, list) or not sources:
        errs.append("sources: a list of {cite, url, kind} is needed")
    else:
        for n, s in enumerate(sources):
            if not (isinstance(s, dict) and s.get("url") and s.get("cite")):
                errs.append(f"sources[{n}]: needs cite and url")
            elif s.get("kind") not in SOURCE_KINDS:
                errs.append(f"sources[{n}].kind: must be one of {', '.join(SOURCE_KINDS)}")
    pop = data["population"]
    if not isinstance(pop, dict) or not pop.get("countries"):
        errs.append("population.countries: missing")
    elif "us_states" in pop:
        errs.append("population.us_states: now population.regions (US states, CA provinces)")
    if data["personal_data"] not in ("any", "elements"):
        errs.append("personal_data: must be any or elements")
    if data["personal_data"] == "elements":
        combos = (data.get("elements") or {}).get("any_of")
        if not combos:
            errs.append("elements.any_of: needed when personal_data is elements")
        errs += [f"elements.any_of: {e}" for e in _check_combos(combos or [])]
    if data.get("coverage", "complete") not in ("complete", "partial"):
        errs.append("coverage: must be complete or partial")
    flag = data.get("applies_if_org")
    if flag is not None and flag not in ORG_FLAGS:
        errs.append(f"applies_if_org: {flag!r} is not one of {sorted(ORG_FLAGS)}")
    force = data.get("in_force") or {}
    if (
        not isinstance(force, dict)
        or set(force) - {"from", "until"}
        or not all(isinstance(v, dt.date) for v in force.values())
    ):
        errs.append("in_force: must be {from: date, until: date} (either may be left out)")
    for n, a in enumerate(data.get("amendments") or []):
        if not (
            isinstance(a, dict)
            and isinstance(a.get("in_force"), dt.date)
            and a.get("summary")
            and isinstance(a.get("set"), dict)
        ):
            errs.append(
                f"amendments[{n}]: needs in_force (a date), summary and set (the keys "
                "the amendment replaces)"
            )
    if not isinstance(data.get("record_keeping", ""), str):
        errs.append("record_keeping: must be a text (what must be recorded, its citation)")
    for key in ("uncertain", "not_modelled"):
        if not isinstance(data.get(key) or [], list):
            errs.append(f"{key}: must be a list of texts")
    if not isinstance(data.get("cases") or [], list):
        errs.append("cases: must be a list")
    duties = [("regulator", data["regulator"], REGULATOR_DUTIES),
              ("individuals", data["individuals"], INDIVIDUAL_DUTIES)]  # fmt: skip
    others = data.get("others") or []
    if not isinstance(others, list):
        errs.append("others: must be a list of duties, each with a recipient")
        others = []
    for n, o in enumerate(others):
        if not isinstance(o, dict) or not o.get("recipient") or not o.get("name"):
            errs.append(f"others[{n}]: needs recipient (an id) and name (who is told)")
        else:
            duties.append((f"others[{n}]", o, REGULATOR_DUTIES))
    for who, d, allowed in duties:
        if not isinstance(d, dict):
            errs.append(f"{who}: must be a mapping")
            continue
        errs += [f"{who}.{e}" for e in _check_duty(d, allowed)]
    return errs


def _check_duty(d: dict, duties: set[str]) -> list[str]:
    errs = []
    if d.get("duty") not in duties:
        errs.append(f"duty: {d.get('duty')!r} is not one of {sorted(duties)}")
    if d.get("duty") == "threshold" and not d.get("when_any"):
        errs.append("when_any: needed for a threshold duty")
    for n, c in enumerate(d.get("when_any") or []):
        errs += [f"when_any[{n}]: {e}" for e in _check_condition(c)]
    if "deadline" not in d and d.get("duty") != "none":
        errs.append("deadline: missing")
    if d.get("headings") and len(d["headings"]) != len(d.get("contents") or ()):
        errs.append("headings: one per slot of contents (repeat a heading to group slots)")
    for k in ("deadline", "preliminary", "assessment"):
        if k in d:
            errs += [f"{k}.{e}" for e in _check_deadline(d[k])]
    for n, v in enumerate(d.get("deadline_variants") or []):
        if not isinstance(v, dict) or "when" not in v or "deadline" not in v:
            errs.append(f"deadline_variants[{n}]: needs when and deadline")
            continue
        errs += [f"deadline_variants[{n}].when: {e}" for e in _check_condition(v["when"])]
        errs += [f"deadline_variants[{n}].deadline.{e}" for e in _check_deadline(v["deadline"])]
    if d.get("duty") != "none" and not d.get("contents"):
        errs.append("contents: missing")
    unknown = set(d.get("contents") or ()) - SLOTS
    if unknown:
        errs.append(f"contents: unknown slot {sorted(unknown)[0]!r}")
    return errs


def _check_condition(c: Any) -> list[str]:
    if not isinstance(c, dict) or not c:
        return ["must be a mapping with one of " + ", ".join(sorted(CONDITION_KEYS))]
    errs = [f"unknown condition {k!r}" for k in sorted(set(c) - CONDITION_KEYS)]
    if "vector" in c and c["vector"] not in VECTORS:
        errs.append(f"vector: {c['vector']!r} is not one of {sorted(VECTORS)}")
    if "org" in c and c["org"] not in ORG_FLAGS:
        errs.append(f"org: {c['org']!r} is not one of {sorted(ORG_FLAGS)}")
    if "elements" in c:
        errs += _check_combos([c["elements"]])
    if "elements_any_of" in c:
        errs += _check_combos(c["elements_any_of"])
    return errs


def _check_combos(combos: Any) -> list[str]:
    if not isinstance(combos, list) or not all(isinstance(x, list) for x in combos):
        return ["must be a list of lists of elements"]
    unknown = {e for combo in combos for e in combo} - ELEMENTS
    return [f"unknown element {sorted(unknown)[0]!r}"] if unknown else []


def _check_deadline(d: Any) -> list[str]:
    if not isinstance(d, dict):
        return ["must be a mapping"]
    errs = []
    if d.get("from", "awareness") not in CLOCK_STARTS:
        errs.append(f"from: {d.get('from')!r} is not one of {sorted(CLOCK_STARTS)}")
    fixed = d.get("hours") is not None or d.get("calendar_days") is not None or d.get("immediately")
    if not d.get("text") and not fixed:
        errs.append("needs hours, calendar_days, immediately or text")
    if d.get("calendar_days") is not None and not d.get("tz"):
        errs.append("calendar_days needs tz (days end at local midnight)")
    if "tz" in d:
        try:
            ZoneInfo(str(d["tz"]))
        except (ZoneInfoNotFoundError, ValueError):
            errs.append(f"tz: {d['tz']!r} is not an IANA time zone (e.g. Asia/Seoul)")
    return errs
