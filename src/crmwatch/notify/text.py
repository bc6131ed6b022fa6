"""What a notice says, slot by slot, in English, French, Korean and Japanese.

Every regime's required contents are *slots* (regimes.SLOTS). This module fills each slot from
the incident's facts and the org file, in the reader's language; what the facts cannot say is
left as a visible ``[TO COMPLETE: …]`` marker for a person to write — a notice never guesses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from crmwatch.notify.elements import LISTED_ITEMS, notice_items
from crmwatch.notify.facts import Facts
from crmwatch.notify.org import Org
from crmwatch.notify.regimes import safe_yaml

MARK = "[TO COMPLETE: {}]"
LANGUAGES = ("en", "fr", "ko", "ja")

_STRINGS = safe_yaml(
    resources.files("crmwatch.notify").joinpath("strings.yaml").read_text(encoding="utf-8")
)
HEADINGS: dict[str, dict[str, str]] = _STRINGS["headings"]
ITEM_LABELS: dict[str, dict[str, str]] = _STRINGS["items"]
PHRASES: dict[str, dict[str, str]] = _STRINGS["phrases"]
# Items whose exposure calls for particular advice or offers.
CREDENTIALS = {"password", "security_code"}
ID_NUMBERS = {"ssn", "drivers_license", "state_id", "passport"}


@dataclass
class Section:
    slot: str
    heading: str
    body: list[str]  # paragraphs; a paragraph may be a MARK
    slots: list[str] = field(default_factory=list)  # every slot under this heading

    @property
    def incomplete(self) -> bool:
        return any(p.startswith("[TO COMPLETE") for p in self.body)


def items_text(items: dict[str, list[str]], lang: str) -> str:
    """The data exposed, item by item, in ``lang``: exactly what was taken and nothing else.
    Items without a fixed word (sensitive data, anything else) name their fields."""
    labels = ITEM_LABELS[lang]
    parts = []
    for key, fields in items.items():
        label = labels[key]
        if key in LISTED_ITEMS:
            label = label.format(fields=", ".join(_readable(f) for f in fields))
        parts.append(label)
    sep = "、" if lang == "ja" else ", "
    return sep.join(parts) if parts else MARK.format("the categories of data involved")


def _readable(field_name: str) -> str:
    """``Preferred_Boutique__c`` → ``Preferred Boutique``: a field as a reader can read it."""
    last = field_name.rsplit(".", 1)[-1]
    last = re.sub(r"__c$", "", last, flags=re.IGNORECASE)
    return re.sub(r"(?<=[a-z])(?=[A-Z])|_+", " ", last).strip()


def letter_sections(
    slots: tuple[str, ...],
    facts: Facts,
    org: Org,
    lang: str,
    headings: tuple[str, ...] = (),
    items: dict[str, list[str]] | None = None,
    regulator: str = "",
) -> list[Section]:
    """The sections of a letter to individuals, in ``lang``, for people whose exposed data is
    ``items`` (default: everything the incident exposed); ``headings`` overrides the headings
    one for one (California's statutory headings). A slot that does not apply to these people
    (password advice when no password leaked) is left out."""
    h, p = HEADINGS[lang], PHRASES[lang]
    items = notice_items(facts.scope.get("fields", [])) if items is None else items
    i = facts.incident
    what = p["outside" if facts.unauthorized_access else "inside"]
    when = p["between"].format(
        first=i.first_malicious_at[:16].replace("T", " "),
        last=i.last_event_at[:16].replace("T", " "),
        detected=i.first_alert_at[:16].replace("T", " "),
    )
    contact = _contact(org)
    purchases = "purchase_history" in items
    consequences = p["consequences_purchases" if purchases else "consequences"]
    advice = p["advice_purchases" if purchases else "advice"]
    delay = org.law_enforcement_delay
    bodies: dict[str, list[str]] = {
        "nature": [f"{what} {when}", p["you_are_affected"]],
        "summary": [f"{what} {when}", p["you_are_affected"]],
        "when_and_how": [f"{what} {when}"],
        "timeline": [when],
        "vector": [what],
        "cause": [what],
        "categories": [items_text(items, lang)],
        "pi_items": [items_text(items, lang)],
        "likely_consequences": [consequences],
        "secondary_harm": [consequences],
        "measures_taken": org.measures_taken or [MARK.format("what the company has done")],
        "measures_proposed": org.measures_proposed or [MARK.format("what the company will do")],
        "remedy_procedure": [MARK.format("how individuals can claim remedy or compensation")],
        "remedy_rights": [p["remedy_rights"]],
        "self_help": [*org.self_help, advice],
        "contact_point": [contact],
        "help_desk": [contact],
        "other": [MARK.format("any other information the regulator requires")],
        "notice_date": [p["notice_date"]],
        "law_enforcement_delay": [
            MARK.format("whether notice was delayed by a law-enforcement investigation")
            if delay is None
            else p["delayed" if delay else "not_delayed"]
        ],
        "change_password": [p["change_password"]] if items.keys() & CREDENTIALS else [],
        "identity_theft_services": [
            MARK.format(
                "the identity theft prevention and mitigation service offered at no cost for at "
                "least 12 months, and how to enrol"
            )
        ]
        if items.keys() & ID_NUMBERS
        else [],
        "police_report": [p["police_report"]],
        "security_freeze": [
            p["security_freeze"],
            MARK.format(
                "how to reach each nationwide consumer reporting agency to request a freeze"
            ),
        ],
        "credit_bureaus": [
            MARK.format(
                "toll-free telephone numbers and addresses of the major consumer reporting agencies"
            )
        ],
        "agency_contacts": [
            p["agency_contacts"],
            MARK.format("telephone numbers and websites of the state and federal agencies"),
        ],
        "complaint_right": [
            p["complaint_right"].format(
                regulator=regulator or MARK.format("the data protection authority")
            )
        ],
        "internal_complaint": [MARK.format("how to complain to the company (its process)")],
    }
    out: list[Section] = []
    for n, slot in enumerate(slots):
        heading = headings[n] if n < len(headings) else h.get(slot, slot)
        body = bodies.get(slot, [MARK.format(slot)])
        if not body:
            continue
        if headings and out and out[-1].heading == heading:  # slots grouped under one heading
            out[-1].body.extend(body)
            out[-1].slots.append(slot)
        else:
            out.append(Section(slot, heading, list(body), [slot]))
    return out


def _contact(org: Org) -> str:
    c = org.contact
    parts = [c.get(k) for k in ("name", "email", "phone", "address") if c.get(k)]
    if not parts:
        return MARK.format("the DPO or contact point: name, e-mail, telephone, postal address")
    return " · ".join(parts)
