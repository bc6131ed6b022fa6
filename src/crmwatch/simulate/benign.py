"""Benign activity of a luxury retailer's CRM, the background every scenario hides in.

Client advisors and store staff sign in through Okta SSO from their boutique's network in their
own business hours and open client records; managers export the client book every Monday; admins
change setup; a marketing platform pulls changed contacts every night through Bulk API 2.0 from
AWS, and a chat integration queries from Google Cloud all day (so "any bulk export" and "any
hosting IP" rules fire on benign traffic); people mistype passwords, work from home, travel,
replace their phones, and work Saturdays.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from typing import Any

from crmwatch.simulate.activity import Log, User, sf_id
from crmwatch.simulate.world import (
    BY_CODE,
    CHROME,
    DRIFT_IPS,
    MARKETING_IPS,
    MOBILE,
    SAFARI,
    STAFF_SHARE,
)

MARKETING_APP = "Marketing Cloud Connect"
DRIFT_APP = "Drift"
DRIFT_UA = "Drift-Salesforce-Connector/3.4 (+https://www.drift.com)"
MARKETING_UA = "MarketingCloudConnector/2.1 Java/17"
OKTA_ORG = {
    "KR": "Korea Telecom",
    "JP": "SoftBank Corp.",
    "CN": "China Unicom Beijing Province Network",
    "FR": "Orange",
    "US": "COMCAST-7922",
    "GB": "British Telecommunications PLC",
    "IT": "Telecom Italia",
    "AE": "Emirates Integrated Telecommunications Company PJSC",
    "SG": "Singtel Fibre Broadband",
    "HK": "HKT Limited",
}


@dataclass
class Org:
    users: list[User]
    integrations: dict[str, User]
    contacts_by_country: dict[str, list[str]] = field(default_factory=dict)
    # realistic mode (crmwatch.simulate.realistic): each person's habits, and trips abroad
    habits: dict[int, Any] = field(default_factory=dict)
    trips: dict[int, Any] = field(default_factory=dict)

    def staff(self, country: str | None = None, role: str | None = None) -> list[User]:
        return [
            u
            for u in self.users
            if (country is None or u.country == country) and (role is None or u.role == role)
        ]


def make_org(rng: random.Random, employees: int) -> Org:
    codes = list(STAFF_SHARE)
    weights = list(STAFF_SHARE.values())
    users: list[User] = []
    for n in range(employees):
        # Every country gets a manager (n < 10) and an advisor (12 ≤ n < 22); two admins sit
        # at the Paris headquarters; everyone else is spread like the boutiques.
        if n < 10:
            code, role = codes[n], "manager"
        elif n < 12:
            code, role = "FR", "admin"
        elif n < 22:
            code, role = codes[n - 12], "advisor"
        else:
            code = rng.choices(codes, weights)[0]
            role = "manager" if n % 15 == 0 else "advisor"
        c = BY_CODE[code]
        k = rng.randrange(len(c.first_names))
        if c.romanised:
            first = c.romanised[k][0]
            last = c.romanised[rng.randrange(len(c.romanised))][1]
        else:
            first, last = c.first_names[k], c.last_names[rng.randrange(len(c.last_names))]
        first = "".join(ch for ch in first if ch.isascii()) + (str(n) if n >= 20 else "")
        if any(u.first == first.replace(" ", "") and u.last == last.replace(" ", "")
               for u in users):  # fmt: skip
            first += str(n)  # two founding staff of the same name: usernames are unique
        users.append(
            User(
                n,
                first.replace(" ", ""),
                last.replace(" ", ""),
                code,
                role,
                f"{c.office}.{10 + n % 200}",
                f"{c.home}.{20 + n % 200}",
                f"00u{n:05d}maison",
                rng.choice((CHROME, SAFARI)),
                sf_id("005", 500 + n),
            )
        )
    integrations = {
        "marketing": User(
            9001,
            "marketing",
            "sync",
            "US",
            "integration",
            MARKETING_IPS[0],
            MARKETING_IPS[1],
            "00u-mkt",
            MARKETING_UA,
            sf_id("005", 9001),
        ),
        "drift": User(
            9002,
            "drift",
            "integration",
            "US",
            "integration",
            DRIFT_IPS[0],
            DRIFT_IPS[1],
            "00u-drift",
            DRIFT_UA,
            sf_id("005", 9002),
        ),
    }
    return Org(users, integrations)


def benign(log: Log, org: Org, rng: random.Random, start: dt.datetime, days: int) -> None:
    """Every benign record of the simulated weeks."""
    for u in org.users:
        log.oauth_token(
            start + dt.timedelta(hours=rng.uniform(1, 100)),
            u,
            "Salesforce for iOS",
            start + dt.timedelta(days=days - 1),
            rng.randint(5, 60),
        )
    # One person in a hundred travels in the fortnight: every other one to the Paris (or Milan)
    # office, where the network is the company's; the others to a client event, on hotel Wi-Fi.
    travellers = {
        u.n: (rng.randrange(7, days), "office" if i % 2 == 0 else "event")
        for i, u in enumerate(rng.sample(org.users, max(1, len(org.users) // 100)))
    }
    new_phones = {u.n: rng.randrange(2, days) for u in rng.sample(org.users, 3)}
    for day in range(days):
        date = start + dt.timedelta(days=day)
        weekday = date.weekday()
        for u in org.users:
            works = (
                weekday < 5 or (weekday == 5 and u.n % 3 == 0) or (weekday == 6 and u.n % 10 == 0)
            )
            if works and rng.random() > 0.04:  # holidays, sick days
                _workday(
                    log,
                    org,
                    rng,
                    u,
                    date,
                    travel=travellers[u.n][1] if travellers.get(u.n, (-1,))[0] == day else None,
                    new_phone=new_phones.get(u.n) == day,
                )
        _marketing_sync(log, org, rng, date)
        _drift(log, org, rng, date)
        if weekday == 2:
            admin = org.staff(role="admin")[0]
            log.setup_change(
                date + dt.timedelta(hours=10),
                admin,
                "changedUserProfile",
                "Manage Users",
                "Changed profile for a boutique advisor",
            )


def _workday(
    log: Log,
    org: Org,
    rng: random.Random,
    u: User,
    date: dt.datetime,
    *,
    travel: str | None,
    new_phone: bool,
) -> None:
    c = BY_CODE[u.country]
    begin = date + dt.timedelta(hours=9 - c.utc_offset + rng.uniform(-0.5, 1.5))
    ip, country, as_org = u.office_ip, u.country, OKTA_ORG[u.country]
    dest = BY_CODE["FR" if u.country != "FR" else "IT"]
    hotel = f"{dest.home}.{100 + u.n % 100}"
    if travel == "office":  # a visit to the Paris headquarters, or from Paris to Milan
        ip, country, as_org = f"{dest.office}.{200 + u.n % 50}", dest.code, OKTA_ORG[dest.code]
        begin = date + dt.timedelta(hours=9 - dest.utc_offset)
    elif travel == "event":  # a client event abroad, on the hotel's network all day
        ip, country, as_org = hotel, dest.code, "hotel"
        begin = date + dt.timedelta(hours=9 - dest.utc_offset)
    elif rng.random() < 0.08:  # working from home
        ip, as_org = u.home_ip, "residential"
    seen = {"as_org": as_org, "country": country, "session": log.key()}
    if rng.random() < 0.03:  # a mistyped password first
        log.okta_event(
            begin - dt.timedelta(minutes=1),
            u,
            "user.session.start",
            ip,
            **seen,
            result="FAILURE",
            reason="INVALID_CREDENTIALS",
        )
    log.okta_event(begin, u, "user.session.start", ip, **seen)
    mfa = begin + dt.timedelta(seconds=8)
    log.okta_event(mfa, u, "user.authentication.auth_via_mfa", ip, **seen)
    if new_phone:
        log.okta_event(begin + dt.timedelta(minutes=3), u, "user.mfa.factor.activate", ip, **seen)
    log.okta_event(
        begin + dt.timedelta(seconds=20),
        u,
        "user.authentication.sso",
        ip,
        **seen,
        target_app="Salesforce",
    )
    key, sf_session = log.key(), log.key()
    t = begin + dt.timedelta(seconds=25)
    log.login(t, u, ip, key, sf_session)
    clients = org.contacts_by_country.get(u.country) or []
    for _ in range(rng.randint(8, 40) if clients else 0):
        t += dt.timedelta(minutes=rng.uniform(2, 18))
        log.view(t, u, ip, key, sf_session, "Contact", rng.choice(clients))
    if u.role == "manager" and date.weekday() == 0 and clients:
        book = sorted(rng.sample(clients, min(len(clients), rng.randint(80, 160))))
        log.report_export(
            t + dt.timedelta(minutes=5),
            u,
            ip,
            key,
            sf_session,
            report=f"Client book {u.country}",
            columns=[
                ("FIRST_NAME", "First Name"),
                ("LAST_NAME", "Last Name"),
                ("EMAIL", "Email"),
                ("TOTAL_PURCHASES__C", "Total Purchases"),
            ],
            obj="Contact",
            records=book,
        )
    evening_ip = hotel if travel else u.home_ip
    if travel or rng.random() < 0.3:  # the Salesforce mobile app in the evening
        mob = begin + dt.timedelta(hours=rng.uniform(8, 11))
        mkey, msession = log.key(), log.key()
        log.login(
            mob,
            u,
            evening_ip,
            mkey,
            msession,
            ua=MOBILE,
            login_type="Remote Access 2.0",
            app="Salesforce for iOS",
            uri="/services/oauth2/token",
        )
        if clients:
            client = rng.choice(clients)
            log.view(
                mob + dt.timedelta(minutes=2), u, evening_ip, mkey, msession, "Contact", client
            )
            if rng.random() < 0.5:  # a note or a new phone number saved from the app
                log.edit(mob + dt.timedelta(minutes=4), u, evening_ip, mkey, msession, "Contact",
                         client)  # fmt: skip
    if rng.random() < 0.2 and clients:  # a report looked at on screen, not exported
        log.report_run(t + dt.timedelta(minutes=3), u, ip, key, sf_session,
                       report_id=f"00O5g00000{u.country}Rpt1AAA"[:18], obj="Contact",
                       rows=rng.randint(20, 200))  # fmt: skip
    log.logout(t + dt.timedelta(minutes=20), u, ip, key, sf_session)


def _marketing_sync(log: Log, org: Org, rng: random.Random, date: dt.datetime) -> None:
    """02:00 UTC: Marketing Cloud Connect pulls yesterday's changed contacts."""
    m = org.integrations["marketing"]
    t = date + dt.timedelta(hours=2, minutes=rng.uniform(0, 5))
    key, session = log.key(), log.key()
    log.login(
        t,
        m,
        m.office_ip,
        key,
        session,
        ua=MARKETING_UA,
        login_type="Remote Access 2.0",
        app=MARKETING_APP,
        uri="/services/oauth2/token",
    )
    log.bulk_job(
        t + dt.timedelta(seconds=30),
        m,
        m.office_ip,
        key,
        session,
        query="SELECT Id, Email, FirstName, LastName, MailingCountry, "
        "Preferred_Language__c FROM Contact WHERE LastModifiedDate = YESTERDAY",
        obj="Contact",
        rows=rng.randint(300, 900),
        ua=MARKETING_UA,
    )


def _drift(log: Log, org: Org, rng: random.Random, date: dt.datetime) -> None:
    """The chat widget looks up visitors by e-mail through the REST API all day."""
    d = org.integrations["drift"]
    key, session = log.key(), log.key()
    t = date + dt.timedelta(hours=rng.uniform(0, 1))
    log.login(
        t,
        d,
        d.office_ip,
        key,
        session,
        ua=DRIFT_UA,
        login_type="Remote Access 2.0",
        app=DRIFT_APP,
        uri="/services/oauth2/token",
    )
    for _ in range(rng.randint(20, 40)):
        t += dt.timedelta(minutes=rng.uniform(10, 45))
        if t >= date + dt.timedelta(days=1):
            break
        ip = DRIFT_IPS[rng.randrange(2)]
        log.api_event(
            t,
            d,
            ip,
            key,
            session,
            query="SELECT Id, Email, FirstName, LastName FROM Lead "
            f"WHERE Email = 'visitor{rng.randrange(10**6)}@example.com' LIMIT 1",
            obj="Lead",
            rows=rng.randint(0, 1),
            app=DRIFT_APP,
            ua=DRIFT_UA,
        )
