"""Which fields a query exposed, and which data category each field belongs to.

Compound fields are expanded to the fields they are made of (the SOAP API Developer Guide,
"Compound Fields": an address is street, city, state, postal code, country and their codes and
geolocation; a person's ``Name`` is salutation, first, middle and last name and suffix), so a
notice can say "postal address" and not only "MailingAddress".
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

import yaml

from crmwatch.scope.snapshot import SnapshotFile

ADDRESS_PARTS = ("Street", "City", "State", "PostalCode", "Country", "StateCode", "CountryCode",
                 "Latitude", "Longitude", "GeocodeAccuracy")  # fmt: skip
BASIC_ADDRESS = ADDRESS_PARTS[:5]
NAME_PARTS = ("Salutation", "FirstName", "MiddleName", "LastName", "Suffix")
ADDRESS_FIELDS = {
    "Contact": ("MailingAddress", "OtherAddress"),
    "Lead": ("Address",),
    "Account": ("BillingAddress", "ShippingAddress", "PersonMailingAddress",
                "PersonOtherAddress"),
    "User": ("Address",),
}  # fmt: skip
PERSON_NAME_OBJECTS = ("Contact", "Lead", "User")


def expand(obj: str, name: str, snap: SnapshotFile | None) -> list[str]:
    """The stored fields behind one SELECT-list field of ``obj``."""
    low = name.lower()
    for compound in ADDRESS_FIELDS.get(obj, ()):
        if low == compound.lower():
            prefix = compound[: -len("Address")]
            return _present([prefix + p for p in ADDRESS_PARTS], snap) or [
                prefix + p for p in BASIC_ADDRESS
            ]
    person = obj in PERSON_NAME_OBJECTS or (snap is not None and snap.column("FirstName"))
    if low == "name" and person:
        return _present(list(NAME_PARTS), snap) or ["FirstName", "LastName"]
    if snap is not None and (col := snap.column(name)) is not None:
        return [col]
    return [name]


def _present(names: list[str], snap: SnapshotFile | None) -> list[str]:
    if snap is None:
        return []
    return [c for n in names if (c := snap.column(n)) is not None]


def fields_macro(kind: str, snap: SnapshotFile | None) -> list[str]:
    """FIELDS(ALL | STANDARD | CUSTOM) over the snapshot's columns."""
    if snap is None:
        return [f"FIELDS({kind})"]
    cols = snap.columns
    if kind == "CUSTOM":
        return [c for c in cols if c.lower().endswith("__c")]
    if kind == "STANDARD":
        return [c for c in cols if not c.lower().endswith("__c")]
    return list(cols)


@cache
def _patterns() -> list[tuple[str, re.Pattern[str]]]:
    text = resources.files("crmwatch.scope").joinpath("categories.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return [
        (cat, re.compile("|".join(f"(?:{p})" for p in spec["match"]), re.IGNORECASE))
        for cat, spec in data["categories"].items()
    ]


def field_key(field_name: str) -> str:
    """A field name in the form category and element patterns are written for: its last path
    part (``Account.Name`` → ``Name``), without a trailing ``__c`` (any case) and without
    spaces, underscores and hyphens, so API names and report labels ("E-mail", "Birth Date")
    meet the same patterns. Shared by scope's categories and notify's elements."""
    last = field_name.rsplit(".", 1)[-1]
    return re.sub(r"[\s_\-]+", "", re.sub(r"__c$", "", last, flags=re.IGNORECASE))


def category(field_name: str) -> str:
    """A field's data category, from its API name or report column label."""
    key = field_key(field_name)
    for cat, pattern in _patterns():
        if pattern.search(key):
            return cat
    return "other"


def categories() -> list[str]:
    return [c for c, _ in _patterns()]
