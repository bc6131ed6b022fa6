"""The customer snapshot: Contact, Account and Case records with Salesforce API field names.

Customers live in many countries with names, e-mail addresses, phone numbers and addresses in
each country's own form (Korean, Japanese and Chinese names in their own scripts), purchase
totals and the serial numbers of the pieces they bought — the fields the 2025 thieves took.
Accounts are the boutiques that own the client relationship; cases are after-sales requests.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

from crmwatch.simulate.activity import sf_id
from crmwatch.simulate.world import BY_CODE, CUSTOMER_SHARE, Country

CONTACT_FIELDS = (
    "Id",
    "Salutation",
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "MobilePhone",
    "Birthdate",
    "MailingStreet",
    "MailingCity",
    "MailingState",
    "MailingPostalCode",
    "MailingCountry",
    "MailingStateCode",
    "MailingCountryCode",
    "AccountId",
    "OwnerId",
    "Customer_Number__c",
    "Total_Purchases__c",
    "Last_Purchase_Date__c",
    "Product_Serial_Numbers__c",
    "Preferred_Language__c",
    "CreatedDate",
    "LastModifiedDate",
)
ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "BillingCity",
    "BillingCountry",
    "BillingCountryCode",
    "Type",
    "CreatedDate",
)
CASE_FIELDS = (
    "Id",
    "CaseNumber",
    "ContactId",
    "AccountId",
    "Subject",
    "Description",
    "Status",
    "Product_Serial_Number__c",
    "CreatedDate",
)

SUBJECTS = (
    "Strap replacement",
    "Engraving request",
    "Repair estimate",
    "Boutique appointment",
    "Warranty extension",
    "Resizing",
    "Delivery question",
)


@dataclass
class Snapshot:
    contacts: list[dict]
    accounts: list[dict]
    cases: list[dict]

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, rows, fields in (
            ("Contact", self.contacts, CONTACT_FIELDS),
            ("Account", self.accounts, ACCOUNT_FIELDS),
            ("Case", self.cases, CASE_FIELDS),
        ):
            path = out / f"{name}.csv"
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
                w.writeheader()
                w.writerows(rows)
            paths.append(path)
        return paths


def _digits(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randrange(10)) if ch == "#" else ch for ch in pattern)


def make_snapshot(
    rng: random.Random, customers: int, start: dt.datetime, owners: dict[str, list[str]]
) -> Snapshot:
    """``customers`` contacts spread over the countries, created before ``start`` (a few during
    the simulated weeks), each owned by a client advisor of their country (``owners``)."""
    accounts = []
    boutique_of: dict[str, list[str]] = {}
    n = 0
    for code in CUSTOMER_SHARE:
        country = BY_CODE[code]
        for city, _, _ in country.cities:
            n += 1
            aid = sf_id("001", 10_000 + n)
            accounts.append(
                {
                    "Id": aid,
                    "Name": f"Maison {city}",
                    "BillingCity": city,
                    "BillingCountry": country.name,
                    "BillingCountryCode": code,
                    "Type": "Boutique",
                    "CreatedDate": "2019-01-15T09:00:00.000Z",
                }
            )
            boutique_of.setdefault(code, []).append(aid)
    codes = list(CUSTOMER_SHARE)
    weights = list(CUSTOMER_SHARE.values())
    contacts, cases = [], []
    for i in range(customers):
        code = rng.choices(codes, weights)[0]
        contacts.append(_contact(rng, i, BY_CODE[code], start, boutique_of[code], owners))
    for j, c in enumerate(rng.sample(contacts, k=max(1, customers // 12))):
        created = _iso(dt.datetime.fromisoformat(c["CreatedDate"][:19]) + dt.timedelta(days=30))
        serials = c["Product_Serial_Numbers__c"].split(";")
        cases.append(
            {
                "Id": sf_id("500", 50_000 + j),
                "CaseNumber": f"{10_000_000 + j:08d}",
                "ContactId": c["Id"],
                "AccountId": c["AccountId"],
                "Subject": rng.choice(SUBJECTS),
                "Description": "Client request logged at the boutique.",
                "Status": rng.choice(("Closed", "Closed", "Open")),
                "Product_Serial_Number__c": serials[0],
                "CreatedDate": created,
            }
        )
    return Snapshot(contacts, accounts, cases)


def _contact(
    rng: random.Random,
    i: int,
    country: Country,
    start: dt.datetime,
    boutiques: list[str],
    owners: dict[str, list[str]],
) -> dict:
    k = rng.randrange(len(country.first_names))
    first, last = country.first_names[k], country.last_names[rng.randrange(len(country.last_names))]
    if country.romanised:
        efirst = country.romanised[k][0]
        elast = country.romanised[country.last_names.index(last)][1]
    else:
        efirst, elast = first, last
    email = f"{_ascii(efirst)}.{_ascii(elast)}{i}@example.{country.code.lower()}".lower()
    city, state, postal = rng.choice(country.cities)
    # Most clients predate the logs; about 1 % joined during the simulated weeks.
    if rng.random() < 0.01:
        created = start + dt.timedelta(days=rng.uniform(0, 14))
    else:
        created = start - dt.timedelta(days=rng.uniform(30, 2500))
    # Totals are unique to the cent, so ORDER BY Total_Purchases__c has no ties.
    total = round(rng.uniform(500, 250_000), 0) + (i % 100) / 100
    serials = ";".join(
        f"{rng.choice(('WT', 'JW', 'LG'))}-{rng.randrange(10**7):07d}"
        for _ in range(rng.randint(1, 3))
    )
    return {
        "Id": sf_id("003", 1_000_000 + i),
        "Salutation": rng.choice(("Mr.", "Ms.", "Mrs.", "Dr.", "")),
        "FirstName": first,
        "LastName": last,
        "Email": email,
        "Phone": _digits(rng, country.phone),
        "MobilePhone": _digits(rng, country.phone),
        "Birthdate": (dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(20000))).isoformat(),
        "MailingStreet": f"{rng.randint(1, 400)} {rng.choice(country.streets)}",
        "MailingCity": city,
        "MailingState": state,
        "MailingPostalCode": postal + _digits(rng, "###")[: 5 - len(postal)] if postal else "",
        "MailingCountry": country.name,
        "MailingStateCode": state,
        "MailingCountryCode": country.code,
        "AccountId": rng.choice(boutiques),
        "OwnerId": rng.choice(owners.get(country.code) or [""]),
        "Customer_Number__c": f"MC-{country.code}-{1_000_000 + i}",
        "Total_Purchases__c": f"{total:.2f}",
        "Last_Purchase_Date__c": (start.date() - dt.timedelta(days=rng.randrange(900))).isoformat(),
        "Product_Serial_Numbers__c": serials,
        "Preferred_Language__c": country.language,
        "CreatedDate": _iso(created),
        "LastModifiedDate": _iso(created + dt.timedelta(days=3)),
    }


def _ascii(text: str) -> str:
    return "".join(ch for ch in text if ch.isascii() and ch.isalnum())


def _iso(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.000Z")
