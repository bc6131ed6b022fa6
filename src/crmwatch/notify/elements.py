"""Which data elements a set of exposed field names holds, in the terms breach laws use
(US states list a name *with* an SSN, a licence, an account and its code …; Korea and Singapore
single out unique identifiers; most regimes single out health and similar sensitive data).

Field names are matched like the scope's data categories (``scope.fields.field_key``): API
names or report labels, case, spaces, underscores, hyphens and a trailing ``__c`` ignored.
"""

from __future__ import annotations

import re
from functools import cache

from crmwatch.scope.fields import category, field_key

PATTERNS: dict[str, str] = {
    "ssn": r"ssn|socialsecurity|socialinsurance",
    "drivers_license": r"driver'?s?licen[cs]e|drivinglicen[cs]e",
    "state_id": r"nationalid|stateid|idcard|idnumber|nric|residentregistration|rrn|mynumber",
    "passport": r"passport",
    "financial_account": (
        r"bankaccount|iban|creditcard|cardnumber|debitcard|accountnumberbank|routing"
    ),
    "security_code": r"cvv|cvc|securitycode|accesscode|pincode|^pin$",
    "medical": r"medical|health|diagnos|allerg|prescription",
    "health_insurance": r"healthinsurance|insurancepolicy|insuranceid",
    "biometric": r"biometric|fingerprint|faceprint|retina|voiceprint",
    "dob": r"birthdate|dateofbirth|^dob$|birthday",
    "password": r"password|securityanswer|securityquestion",
    "username_or_email": r"email|username|login",
    "first_name": r"firstname|givenname|^first$",
    "last_name": r"lastname|surname|familyname|^last$",
    "full_name": r"^name$|fullname",
    "sensitive": (
        r"religio|ethnic|^race|political|tradeunion|sexual|orientation|genetic|health|medical"
    ),
}
# A name for the US statutes: first and last name (or first initial), or a full name.
_NAME = {"full_name"}


@cache
def _compiled() -> dict[str, re.Pattern[str]]:
    return {k: re.compile(v, re.IGNORECASE) for k, v in PATTERNS.items()}


def elements(fields: list[str] | set[str] | tuple[str, ...]) -> set[str]:
    """The element classes present in ``fields``, plus ``name`` and ``unique_id``."""
    found = {k for f in fields for k, p in _compiled().items() if p.search(field_key(f))}
    if ("first_name" in found and "last_name" in found) or found & _NAME:
        found.add("name")
    if found & {"ssn", "drivers_license", "state_id", "passport"}:
        found.add("unique_id")
    return found


def satisfies(present: set[str], any_of: list[list[str]]) -> bool:
    """Whether some combination of required elements is wholly present."""
    return any(set(combo) <= present for combo in any_of)


# What a notice lists, one item per kind of data, most specific first: the element a field
# holds in law when it holds one, else its scope category. A name-only leak is "name", never
# "name and date of birth"; a password is a password, not "sensitive data".
_ITEM_OF_ELEMENT = (
    ("password", "password"),
    ("security_code", "security_code"),
    ("financial_account", "financial_account"),
    ("ssn", "ssn"),
    ("drivers_license", "drivers_license"),
    ("passport", "passport"),
    ("state_id", "state_id"),
    ("health_insurance", "health_insurance"),
    ("medical", "medical"),
    ("biometric", "biometric"),
    ("sensitive", "sensitive"),
    ("dob", "dob"),
    ("first_name", "name"),
    ("last_name", "name"),
    ("full_name", "name"),
)
_ITEM_OF_CATEGORY = {
    "postal_address": "postal_address",
    "phone": "phone",
    "purchase_sales": "purchase_history",
    "customer_number": "customer_number",
    "serial_number": "serial_number",
}
# Items whose label names the fields themselves (there is no fixed word for them).
LISTED_ITEMS = ("sensitive", "other")
ITEMS = (
    "name", "dob", "email", "username", "online_id", "phone", "postal_address",
    "purchase_history", "customer_number", "serial_number", "password", "security_code",
    "financial_account", "ssn", "drivers_license", "passport", "state_id", "medical",
    "health_insurance", "biometric", "sensitive", "other",
)  # fmt: skip


def item(field_name: str) -> str:
    """The notice item of one exposed field."""
    key = field_key(field_name)
    patterns = _compiled()
    for element, name in _ITEM_OF_ELEMENT:
        if patterns[element].search(key):
            return name
    if re.search(r"email", key, re.IGNORECASE):
        return "email"
    if patterns["username_or_email"].search(key):
        return "username"
    cat = category(field_name)
    if cat == "contact":
        return "online_id"
    return _ITEM_OF_CATEGORY.get(cat, "other")


def notice_items(fields: list[str] | set[str] | frozenset[str]) -> dict[str, list[str]]:
    """Item → the exposed fields behind it, in notice order. Record ids are not data about a
    person and are left out."""
    found: dict[str, list[str]] = {}
    for f in sorted(fields):
        if field_key(f).lower() == "id":
            continue
        found.setdefault(item(f), []).append(f)
    return {k: found[k] for k in ITEMS if k in found}
