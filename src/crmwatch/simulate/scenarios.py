"""Attack scenarios modelled on the public 2025 incidents, each with its ground truth.

Every scenario writes the traces the real attack left (docs/scenarios.md gives the public
reference for each) and returns what an investigator should conclude: the malicious events,
the time of the first malicious and first exfiltration event, the incident expected, and the
customers and fields exposed — computed here from the simulator's own data with plain Python,
independently of crmwatch's SOQL replay, so the evaluation can catch the replay's mistakes.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from crmwatch.simulate.activity import Log, Ref
from crmwatch.simulate.benign import Org
from crmwatch.simulate.customers import CONTACT_FIELDS, Snapshot
from crmwatch.simulate.world import AWS_RECON, DIGITALOCEAN, M247, MULLVAD, TOR_EXITS, VULTR

ADDRESS = [f for f in CONTACT_FIELDS if f.startswith("Mailing")]
PYTHON_UA = "python-requests/2.32.4"


@dataclass
class Truth:
    """What a scenario did, for ``ground_truth.json``."""

    name: str
    title: str
    reference: str
    principals: list[str]
    attacker_ips: list[str]
    first_malicious_at: dt.datetime
    first_exfiltration_at: dt.datetime | None
    last_malicious_at: dt.datetime
    events: list[Ref] = field(default_factory=list)
    # customer id → fields, for evidence crmwatch should list exactly (ids logged or SOQL
    # replayable); exports only bounded by their logs are not expected as lists.
    customers: dict[str, set[str]] = field(default_factory=dict)

    def expose(self, ids: list[str], fields: list[str]) -> None:
        for cid in ids:
            self.customers.setdefault(cid, set()).update(fields)

    def to_dict(self) -> dict:
        def iso(ts: dt.datetime) -> str:  # logs keep milliseconds
            return ts.replace(microsecond=ts.microsecond // 1000 * 1000).isoformat()

        return {
            "name": self.name,
            "title": self.title,
            "reference": self.reference,
            "principals": self.principals,
            "attacker_ips": self.attacker_ips,
            "first_malicious_at": iso(self.first_malicious_at),
            "first_exfiltration_at": iso(self.first_exfiltration_at)
            if self.first_exfiltration_at
            else None,
            "last_malicious_at": iso(self.last_malicious_at),
            "malicious_events": [{"source": s, "key": k, "value": v} for s, k, v in self.events],
            "expected_incident": {"principals": self.principals, "source_ips": self.attacker_ips},
            # grouped by field set: a full export is one entry, not a million
            "affected": [
                {"fields": list(fs), "customers": sorted(ids)}
                for fs, ids in sorted(_by_fields(self.customers).items())
            ],
        }


def _by_fields(customers: dict[str, set[str]]) -> dict[tuple[str, ...], list[str]]:
    out: dict[tuple[str, ...], list[str]] = {}
    for cid, fields in customers.items():
        out.setdefault(tuple(sorted(fields)), []).append(cid)
    return out


@dataclass
class Context:
    log: Log
    org: Org
    snap: Snapshot
    rng: random.Random
    start: dt.datetime

    def at(self, day: int, hour: float) -> dt.datetime:
        return self.start + dt.timedelta(days=day, hours=hour)

    def contacts(
        self, before: dt.datetime, where: Callable[[dict], bool] = lambda c: True
    ) -> list[dict]:
        """Contacts that existed at ``before`` and match ``where``: what a query returned."""
        stamp = before.strftime("%Y-%m-%dT%H:%M:%S")
        return [c for c in self.snap.contacts if c["CreatedDate"][:19] <= stamp and where(c)]

    def cases(self, before: dt.datetime) -> list[dict]:
        stamp = before.strftime("%Y-%m-%dT%H:%M:%S")
        return [c for c in self.snap.cases if c["CreatedDate"][:19] <= stamp]


def vishing_data_loader(ctx: Context) -> Truth:
    """UNC6040: a caller posing as IT talks a client advisor into approving a look-alike
    Data Loader ("My Ticket Portal") through the OAuth device flow; the app then exports."""
    log, victim = ctx.log, ctx.org.staff("US", "advisor")[0]
    t0 = ctx.at(8, 14.9)
    key, session = log.key(), log.key()
    log.login(t0 - dt.timedelta(minutes=30), victim, victim.office_ip, key, session)
    refs = [
        log._elf(
            "URI",
            t0,
            victim,
            victim.office_ip,
            URI="/setup/connect",
            SESSION_KEY=session,
            LOGIN_KEY=key,
            REQUEST_STATUS="S",
            REFERRER_URI="https://login.salesforce.com/setup/connect?user_code=",
            URI_ID_DERIVED="",
        )
    ]
    app = "My Ticket Portal"
    ip = MULLVAD[0]
    refs.append(
        log.oauth_token(
            t0 + dt.timedelta(minutes=1), victim, app, t0 + dt.timedelta(minutes=40), 14
        )
    )
    akey, asession = log.key(), log.key()
    t = t0 + dt.timedelta(minutes=3)
    ua = "DataLoader/62.0.0 (Windows 10; Java 17)"
    refs.extend(
        log.login(
            t,
            victim,
            ip,
            akey,
            asession,
            ua=ua,
            login_type="Remote Access 2.0",
            app=app,
            uri="/services/oauth2/token",
        )
    )
    for obj, minutes in (("Contact", 5), ("Case", 6)):
        refs += log.api_call(
            t0 + dt.timedelta(minutes=minutes),
            victim,
            ip,
            akey,
            asession,
            query=f"SELECT COUNT() FROM {obj}",
            obj=obj,
            rows=1,
            app=app,
            ua=ua,
        )
    fields = ["Id", "FirstName", "LastName", "Email", "Phone", "Total_Purchases__c"]
    t_exfil = t0 + dt.timedelta(minutes=8)
    everyone = ctx.contacts(t_exfil)
    jrefs, done = log.bulk_job(
        t_exfil,
        victim,
        ip,
        akey,
        asession,
        query="SELECT Id, FirstName, LastName, Email, Phone, MailingAddress, "
        "Total_Purchases__c FROM Contact",
        obj="Contact",
        rows=len(everyone),
        ua=ua,
    )
    truth = Truth(
        "vishing_data_loader",
        "Vishing and a look-alike Data Loader app (UNC6040)",
        "https://cloud.google.com/blog/topics/threat-intelligence/voice-phishing-data-extortion",
        [victim.username],
        [ip],
        t0,
        t_exfil,
        done,
        refs + jrefs,
    )
    truth.expose([c["Id"] for c in everyone], fields + ADDRESS)
    return truth


def drift_token_theft(ctx: Context) -> Truth:
    """UNC6395: the chat integration's stolen OAuth token, COUNT() reconnaissance from AWS,
    Bulk API 2.0 exports from a VPS, each job deleted about 24 seconds after it finished."""
    log, drift = ctx.log, ctx.org.integrations["drift"]
    t0 = ctx.at(9, 3.15)
    key, session = log.key(), log.key()
    refs = [
        *log.login(
            t0,
            drift,
            AWS_RECON,
            key,
            session,
            ua=PYTHON_UA,
            login_type="Remote Access 2.0",
            app="Drift",
            uri="/services/oauth2/token",
        )
    ]
    for i, obj in enumerate(("Account", "Contact", "User", "Case", "Opportunity")):
        refs.append(
            log.api_event(
                t0 + dt.timedelta(seconds=40 + 15 * i),
                drift,
                AWS_RECON,
                key,
                session,
                query=f"SELECT COUNT() FROM {obj}",
                obj=obj,
                rows=1,
                app="Drift",
                ua=PYTHON_UA,
            )
        )
    refs.append(
        log.api_event(
            t0 + dt.timedelta(minutes=3),
            drift,
            AWS_RECON,
            key,
            session,
            query="SELECT Id, Username, Email FROM User LIMIT 20",
            obj="User",
            rows=20,
            app="Drift",
            ua=PYTHON_UA,
        )
    )
    ip = DIGITALOCEAN[0]
    t_exfil = t0 + dt.timedelta(minutes=10)
    cases = ctx.cases(t_exfil)
    jrefs, done = log.bulk_job(
        t_exfil,
        drift,
        ip,
        key,
        session,
        query="SELECT Id, CaseNumber, Subject, Description, ContactId FROM Case",
        obj="Case",
        rows=len(cases),
        ua=PYTHON_UA,
        delete_after=24,
    )
    refs += jrefs
    t2 = done + dt.timedelta(minutes=5)
    west = ctx.contacts(t2, lambda c: c["MailingCountryCode"] in ("US", "GB", "FR"))
    jrefs, done2 = log.bulk_job(
        t2,
        drift,
        TOR_EXITS[0],
        key,
        session,
        query="SELECT Id, FirstName, LastName, Email, Phone FROM Contact "
        "WHERE MailingCountryCode IN ('US', 'GB', 'FR')",
        obj="Contact",
        rows=len(west),
        ua=PYTHON_UA,
        delete_after=24,
    )
    truth = Truth(
        "drift_token_theft",
        "Stolen integration OAuth token, Bulk API 2.0 export and "
        "job deletion (UNC6395, Salesloft Drift)",
        "https://cloud.google.com/blog/topics/threat-intelligence/data-theft-salesforce-instances-via-salesloft-drift",
        [drift.username],
        [AWS_RECON, ip, TOR_EXITS[0]],
        t0,
        t_exfil,
        done2 + dt.timedelta(seconds=24),
        refs + jrefs,
    )
    truth.expose(
        [c["ContactId"] for c in cases], ["Id", "CaseNumber", "Subject", "Description", "ContactId"]
    )
    truth.expose([c["Id"] for c in west], ["Id", "FirstName", "LastName", "Email", "Phone"])
    return truth


def okta_mfa_phish(ctx: Context) -> Truth:
    """UNC6661-style: a victim-branded Okta phishing page relays the manager's password and MFA
    push from Mullvad; the attacker enrols their own factor, comes back later from another VPN
    with it, signs on to Salesforce through Okta and exports a client report."""
    log, victim = ctx.log, ctx.org.staff("GB", "manager")[0]
    t0 = ctx.at(10, 19.6)
    refs = []
    phish_session = log.key()
    for minutes, etype in (
        (0, "user.session.start"),
        (0.2, "user.authentication.auth_via_mfa"),
        (2, "user.mfa.factor.activate"),
    ):
        refs.append(
            log.okta_event(
                t0 + dt.timedelta(minutes=minutes),
                victim,
                etype,
                MULLVAD[1],
                as_org="31173 Services AB",
                country="NL",
                session=phish_session,
            )
        )
    ip, t1 = M247, t0 + dt.timedelta(minutes=90)
    session = log.key()
    for minutes, etype in (
        (0, "user.session.start"),
        (0.1, "user.authentication.auth_via_mfa"),
        (0.5, "user.authentication.sso"),
    ):
        refs.append(
            log.okta_event(
                t1 + dt.timedelta(minutes=minutes),
                victim,
                etype,
                ip,
                as_org="M247 Europe SRL",
                country="US",
                session=session,
                target_app="Salesforce" if etype.endswith("sso") else None,
            )
        )
    key, sf_session = log.key(), log.key()
    refs += log.login(t1 + dt.timedelta(minutes=0.6), victim, ip, key, sf_session)
    t_exfil = t1 + dt.timedelta(minutes=8)
    vips = ctx.contacts(
        t_exfil,
        lambda c: c["MailingCountryCode"] == "GB" and float(c["Total_Purchases__c"]) > 50_000,
    )
    columns = [
        ("FIRST_NAME", "First Name"),
        ("LAST_NAME", "Last Name"),
        ("EMAIL", "Email"),
        ("MOBILE_PHONE", "Mobile"),
        ("BIRTHDATE", "Birthdate"),
        ("TOTAL_PURCHASES__C", "Total Purchases"),
    ]
    refs += log.report_export(
        t_exfil,
        victim,
        ip,
        key,
        sf_session,
        report="VIP clients UK",
        columns=columns,
        obj="Contact",
        records=[c["Id"] for c in vips],
    )
    truth = Truth(
        "okta_mfa_phish",
        "Okta SSO phishing, attacker MFA enrolment, then a report export (UNC6661/6671)",
        "https://cloud.google.com/blog/topics/threat-intelligence/defense-against-shinyhunters-cybercrime-saas",
        [victim.username],
        [MULLVAD[1], ip],
        t0,
        t_exfil,
        t_exfil,
        refs,
    )
    truth.expose([c["Id"] for c in vips], [label for _, label in columns])
    return truth


def branch_account_compromise(ctx: Context) -> Truth:
    """Tiffany Korea / Dior Korea (2025): a Korean boutique employee's stolen password used
    from abroad to pull that country's clients through the API with a script."""
    log, victim = ctx.log, ctx.org.staff("KR", "advisor")[0]
    ip = DIGITALOCEAN[1]
    ua = "python-requests/2.31.0"
    t0 = ctx.at(11, 1.5)
    key, session = log.key(), log.key()
    refs = [
        *log.login(
            t0, victim, ip, key, session, ua=ua, login_type="Application", uri="/", amr="pwd"
        )
    ]
    t_exfil = t0 + dt.timedelta(minutes=4)
    korea = ctx.contacts(t_exfil, lambda c: c["MailingCountryCode"] == "KR")
    f1 = ["Id", "FirstName", "LastName", "Email", "MobilePhone", "Birthdate", "Customer_Number__c"]
    refs += log.api_call(
        t_exfil,
        victim,
        ip,
        key,
        session,
        query=f"SELECT {', '.join(f1)} FROM Contact WHERE MailingCountryCode = 'KR'",
        obj="Contact",
        rows=len(korea),
        app="REST API",
        ua=ua,
    )
    t2 = t_exfil + dt.timedelta(minutes=6)
    top = sorted(
        ctx.contacts(t2, lambda c: c["MailingCountryCode"] == "KR"),
        key=lambda c: float(c["Total_Purchases__c"]),
        reverse=True,
    )[:500]
    f2 = ["Id", "Product_Serial_Numbers__c", "Total_Purchases__c"]
    refs += log.api_call(
        t2,
        victim,
        ip,
        key,
        session,
        query=f"SELECT {', '.join(f2)} FROM Contact WHERE MailingCountryCode = 'KR' "
        "ORDER BY Total_Purchases__c DESC LIMIT 500",
        obj="Contact",
        rows=len(top),
        app="REST API",
        ua=ua,
    )
    truth = Truth(
        "branch_account_compromise",
        "A country branch employee's account exporting "
        "that country's customers (Tiffany Korea, Dior Korea)",
        "citizenherald.in/s-korea-penalises-louis-vuitton-dior-tiffany-24-9-million-over-data-leaks"
        " (PIPC fines, Feb 2026)",
        [victim.username],
        [ip],
        t0,
        t_exfil,
        t2,
        refs,
    )
    truth.expose([c["Id"] for c in korea], f1)
    truth.expose([c["Id"] for c in top], f2)
    return truth


def slow_insider(ctx: Context) -> Truth:
    """A client advisor about to leave exports a hundred top clients a day from the boutique,
    within business hours, through an ordinary report."""
    log, insider = ctx.log, ctx.org.staff("FR", "advisor")[0]
    refs: list[Ref] = []
    truth_ids: list[str] = []
    first = last = None
    columns = [
        ("FIRST_NAME", "First Name"),
        ("LAST_NAME", "Last Name"),
        ("EMAIL", "Email"),
        ("PHONE", "Phone"),
        ("TOTAL_PURCHASES__C", "Total Purchases"),
    ]
    for day in (9, 10, 11, 12, 13):
        t = ctx.at(day, 14 + ctx.rng.uniform(0, 3))  # 15:00–18:00 in Paris
        key, session = log.key(), log.key()
        refs.extend(
            log.login(t - dt.timedelta(minutes=20), insider, insider.office_ip, key, session)
        )
        pool = ctx.contacts(t, lambda c: c["MailingCountryCode"] == "FR")
        chosen = sorted(c["Id"] for c in ctx.rng.sample(pool, min(len(pool), 100)))
        refs += log.report_export(
            t,
            insider,
            insider.office_ip,
            key,
            session,
            report="My top clients",
            columns=columns,
            obj="Contact",
            records=chosen,
        )
        truth_ids += chosen
        first = first or t
        last = t
    assert first is not None and last is not None
    truth = Truth(
        "slow_insider",
        "A client advisor's slow export of top clients",
        "PIPC's call for internal monitoring after the 2025 luxury-brand breaches "
        "(imtr.net/article/koreas-personal-information-protection-commissioner-fines-3-"
        "lvmh-luxury-brands-58d7; notification-law.md [48])",
        [insider.username],
        [insider.office_ip],
        first,
        first,
        last,
        refs,
    )
    truth.expose(truth_ids, [label for _, label in columns])
    return truth


def credential_stuffing(ctx: Context) -> Truth:
    """Leaked passwords tried against thirty staff accounts from three VPS addresses; one
    works, and the attacker browses client records."""
    log, org = ctx.log, ctx.org
    t0 = ctx.at(12, 5.0)
    targets = ctx.rng.sample(org.users, 30)
    victim = next(u for u in targets if u.role == "advisor")
    refs = []
    for i, u in enumerate(targets):
        for attempt in range(2):
            t = t0 + dt.timedelta(seconds=20 * i + 7 * attempt)
            refs.extend(
                log.login(
                    t,
                    u,
                    VULTR[(i + attempt) % 3],
                    log.key(),
                    "",
                    ok=False,
                    ua=PYTHON_UA,
                    login_type="Application",
                    uri="/",
                    amr="pwd",
                )
            )
    key, session = log.key(), log.key()
    t_ok = t0 + dt.timedelta(minutes=12)
    refs.extend(
        log.login(
            t_ok,
            victim,
            VULTR[1],
            key,
            session,
            ua=PYTHON_UA,
            login_type="Application",
            uri="/",
            amr="pwd",
        )
    )
    clients = org.contacts_by_country.get(victim.country) or [c["Id"] for c in ctx.snap.contacts]
    viewed = ctx.rng.sample(clients, 12)
    t = t_ok
    for cid in viewed:
        t += dt.timedelta(seconds=ctx.rng.uniform(20, 60))
        refs.append(log.view(t, victim, VULTR[1], key, session, "Contact", cid))
    truth = Truth(
        "credential_stuffing",
        "Credential stuffing against staff accounts",
        "https://attack.mitre.org/techniques/T1110/004/",
        sorted({u.username for u in targets}),
        list(VULTR),
        t0,
        t_ok,
        t,
        refs,
    )
    truth.expose(viewed, [])
    return truth


SCENARIOS: dict[str, Callable[[Context], Truth]] = {
    f.__name__: f
    for f in (
        vishing_data_loader,
        drift_token_theft,
        okta_mfa_phish,
        branch_account_compromise,
        slow_insider,
        credential_stuffing,
    )
}
