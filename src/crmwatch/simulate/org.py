"""``crmwatch simulate``: a luxury retailer's CRM logs, attacks woven in, and the ground truth.

Layout of ``--out``::

    logs/salesforce/elf/<date>_<EventType>.csv   EventLogFile CSV, one per type per day
    logs/salesforce/objects/<Object>.json        ApiEvent, BulkApiResultEventStore,
                                                 ReportEvent, OauthToken, SetupAuditTrail
                                                 (REST query results)
    logs/okta/system_log.ndjson                  Okta System Log
    snapshot/Contact.csv, Account.csv, Case.csv  the customer snapshot
    config/salesforce/…, config/okta/…           the org's configuration, for `crmwatch posture`
                                                 (crmwatch.simulate.config)
    crmwatch.toml                                the org's boutique networks (corporate)
    org.toml                                     the controller, for `crmwatch notify --org`
    ground_truth.json                            per scenario: what happened and what it exposed

The same seed and options always give byte-identical files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from dataclasses import dataclass
from pathlib import Path

from crmwatch.errors import UsageError
from crmwatch.simulate.activity import ELF_HEADERS, Log
from crmwatch.simulate.benign import benign, make_org
from crmwatch.simulate.config import GAPS, write_config
from crmwatch.simulate.customers import make_snapshot
from crmwatch.simulate.networks import DECLARED
from crmwatch.simulate.realistic import SOURCES, realistic, realistic_staff, staffing
from crmwatch.simulate.scenarios import SCENARIOS, Context
from crmwatch.simulate.world import COUNTRIES

START = dt.datetime(2025, 6, 2)  # a Monday
# The simulated controller, for `crmwatch notify --org`: a Paris house with subsidiaries where
# it has boutiques (each one an establishment).
ORG_FILE = """[controller]
name = "Maison Example SAS"
establishments = ["FR", "IT", "GB", "KR", "JP", "CN", "US", "AE", "SG", "HK"]
languages = ["fr", "en", "ko", "ja"]

[contact]
name = "Data Protection Officer, Maison Example SAS"
email = "dpo@maison.example"
phone = "+33 1 00 00 00 00"
address = "1 rue de la Paix, 75002 Paris, France"

[response]
measures_taken = [
  "Revoked the sessions and OAuth tokens used in the attack and reset the affected accounts",
  "Blocked the attacker's IP addresses and the look-alike connected app",
]
measures_proposed = [
  "Restrict API access to allow-listed networks and approved connected apps",
  "Require phishing-resistant MFA for every CRM user",
]
"""
MIN_DAYS = 14  # scenarios run in the second week, after the baselines' 7-day learning
NOISE = ("realistic", "clean")


@dataclass
class Simulated:
    out: Path
    files: int
    events: int
    customers: int
    employees: int
    days: int
    scenarios: list[str]


def simulate(
    out: Path,
    customers: int = 100_000,
    employees: int = 200,
    days: int = 14,
    scenarios: list[str] | None = None,
    seed: int = 7,
    noise: str = "realistic",
    start: dt.date | None = None,
) -> Simulated:
    """Write a simulated org's logs, snapshot and ground truth under ``out``.

    Args:
        noise: ``realistic`` (the default) writes the noise a real company's logs carry
            (crmwatch.simulate.realistic); ``clean`` the regular traffic of the first
            simulator, byte for byte.
        start: the first day (default 2025-06-02, a Monday); scenarios run in week two.
    """
    if noise not in NOISE:
        raise UsageError(f"unknown --noise {noise!r}; one of {', '.join(NOISE)}")
    first = dt.datetime.combine(start, dt.time()) if start else START
    names = list(SCENARIOS) if scenarios is None else scenarios
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise UsageError(f"unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    if days < 1:
        raise UsageError(f"--days must be at least 1: {days}")
    if names and days < MIN_DAYS:
        raise UsageError(f"scenarios need --days {MIN_DAYS} or more (they run in week two)")
    if employees < 40:
        raise UsageError("--employees must be at least 40 (every country needs its staff)")
    if customers < 1000:
        raise UsageError("--customers must be at least 1000")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    rng = random.Random(seed)
    org = make_org(rng, employees)
    owners: dict[str, list[str]] = {}
    for u in org.staff(role="advisor"):
        owners.setdefault(u.country, []).append(u.sf_id)
    snap = make_snapshot(rng, customers, first, owners)
    stamp = first.strftime("%Y-%m-%dT%H:%M:%S")
    for c in snap.contacts:  # advisors open the records of clients who already exist
        if c["CreatedDate"][:19] < stamp:
            org.contacts_by_country.setdefault(c["MailingCountryCode"], []).append(c["Id"])
    log = Log(seed)
    if noise == "clean":
        benign(log, org, rng, first, days)
        user_days = employees * days
    else:
        realistic_staff(rng, org, days)
        user_days = realistic(log, org, rng, first, days)
    ctx = Context(log, org, snap, random.Random(seed + 1), first)
    truths = [SCENARIOS[n](ctx) for n in names]
    files = _write(out, log, snap, noise)
    # its own generator: the logs stay byte for byte what they were before configs were written
    files += write_config(out, org, random.Random(seed + 2), first + dt.timedelta(days=days))
    truth = {
        "seed": seed,
        "start": first.isoformat(),
        "days": days,
        "customers": customers,
        "employees": employees,
        "noise": noise,
        "user_days": user_days,
        "scenarios": [t.to_dict() for t in truths],
        # the posture checks each scenario's attack relied on (crmwatch.simulate.config)
        "posture_gaps": {n: GAPS[n] for n in names},
    }
    if noise != "clean":
        truth["staffing"] = staffing(org)
        truth["noise_sources"] = SOURCES
        truth["noise_days"] = [
            {"user": user, "date": day, "sources": sorted(sources)}
            for (user, day), sources in sorted(log.noise.items())
        ]
    (out / "ground_truth.json").write_text(json.dumps(truth, ensure_ascii=False))
    events = sum(len(r) for r in log.elf.values()) + sum(len(r) for r in log.objects.values())
    return Simulated(out, len(files), events + len(log.okta), customers, employees, days, names)


def _write(out: Path, log: Log, snap, noise: str) -> list[Path]:
    paths = []
    elf = out / "logs" / "salesforce" / "elf"
    elf.mkdir(parents=True, exist_ok=True)
    for (etype, day), rows in sorted(log.elf.items()):
        path = elf / f"{day.isoformat()}_{etype}.csv"
        rows = sorted(rows, key=lambda r: r["TIMESTAMP"])
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(
                fh,
                fieldnames=ELF_HEADERS[etype],
                quoting=csv.QUOTE_ALL,
                lineterminator="\n",
                restval="",
            )
            w.writeheader()
            w.writerows(rows)
        paths.append(path)
    objects = out / "logs" / "salesforce" / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    for name, records in sorted(log.objects.items()):
        path = objects / f"{name}.json"
        body = {"totalSize": len(records), "done": True, "records": records}
        path.write_text(json.dumps(body, ensure_ascii=False, indent=1))
        paths.append(path)
    okta = out / "logs" / "okta"
    okta.mkdir(parents=True, exist_ok=True)
    path = okta / "system_log.ndjson"
    events = sorted(log.okta, key=lambda e: e["published"])
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
    paths.append(path)
    paths += snap.write(out / "snapshot")
    (out / "org.toml").write_text(ORG_FILE)
    if noise == "clean":
        cidrs = sorted(f"{c.office}.0/24" for c in COUNTRIES)
        note = "# The simulated org's boutique networks: their sign-ins are corporate.\n"
    else:
        cidrs = list(DECLARED)
        note = (
            "# The ranges IT had declared: headquarters, and some boutiques' first /24. The rest\n"
            "# of the offices' NAT pools is not listed, as in many real configurations.\n"
        )
    (out / "crmwatch.toml").write_text(f"{note}[enrich]\ncorporate_cidrs = {json.dumps(cidrs)}\n")
    return paths
