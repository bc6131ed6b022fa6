"""What a notice says, slot by slot, in English, French, Korean and Japanese.

Every regime's required contents are *slots* (regimes.SLOTS). This module fills each slot from
the incident's facts and the org file, in the reader's language; what the facts cannot say is
left as a visible ``[TO COMPLETE: …]`` marker for a person to write — a notice never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import yaml

from crmwatch.notify.facts import Facts
from crmwatch.notify.org import Org

MARK = "[TO COMPLETE: {}]"
LANGUAGES = ("en", "fr", "ko", "ja")

_STRINGS = yaml.safe_load(
    resources.files("crmwatch.notify").joinpath("strings.yaml").read_text(encoding="utf-8")
)
HEADINGS: dict[str, dict[str, str]] = _STRINGS["headings"]
CATEGORY_LABELS: dict[str, dict[str, str]] = _STRINGS["categories"]
PHRASES: dict[str, dict[str, str]] = _STRINGS["phrases"]


@dataclass
class Section:
    slot: str
    heading: str
    body: list[str]  # paragraphs; a paragraph may be a MARK

    @property
    def incomplete(self) -> bool:
        return any(p.startswith("[TO COMPLETE") for p in self.body)


def categories_text(facts: Facts, lang: str) -> str:
    labels = CATEGORY_LABELS[lang]
    names = [labels.get(c, c) for c in facts.categories]
    sep = "、" if lang == "ja" else ", "
    return sep.join(names) if names else MARK.format("the categories of data involved")


def letter_sections(
    slots: tuple[str, ...], facts: Facts, org: Org, lang: str, headings: tuple[str, ...] = ()
) -> list[Section]:
    """The sections of a letter to individuals, in ``lang``; ``headings`` overrides the
    headings one for one (California's statutory headings)."""
    h, p = HEADINGS[lang], PHRASES[lang]
    i = facts.incident
    what = p["outside" if facts.unauthorized_access else "inside"]
    when = p["between"].format(
        first=i.first_malicious_at[:16].replace("T", " "),
        last=i.last_event_at[:16].replace("T", " "),
        detected=i.first_alert_at[:16].replace("T", " "),
    )
    contact = _contact(org)
    bodies = {
        "nature": [f"{what} {when}", p["you_are_affected"]],
        "summary": [f"{what} {when}", p["you_are_affected"]],
        "when_and_how": [f"{what} {when}"],
        "timeline": [when],
        "vector": [what],
        "cause": [what],
        "categories": [categories_text(facts, lang)],
        "pi_items": [categories_text(facts, lang)],
        "likely_consequences": [p["consequences"]],
        "secondary_harm": [p["consequences"]],
        "measures_taken": org.measures_taken or [MARK.format("what the company has done")],
        "measures_proposed": org.measures_proposed or [MARK.format("what the company will do")],
        "remedy_procedure": [MARK.format("how individuals can claim remedy or compensation")],
        "self_help": [*org.self_help, p["advice"]],
        "contact_point": [contact],
        "help_desk": [contact],
        "other": [MARK.format("any other information the regulator requires")],
    }
    out = []
    for n, slot in enumerate(slots):
        heading = headings[n] if n < len(headings) else h.get(slot, slot)
        out.append(Section(slot, heading, list(bodies.get(slot, [MARK.format(slot)]))))
    return out


def _contact(org: Org) -> str:
    c = org.contact
    parts = [c.get(k) for k in ("name", "email", "phone", "address") if c.get(k)]
    if not parts:
        return MARK.format("the DPO or contact point: name, e-mail, telephone, postal address")
    return " · ".join(parts)
