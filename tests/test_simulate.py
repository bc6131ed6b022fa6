"""The simulator: deterministic, real formats that ingest cleanly, networks that enrich as the
real ones do, a snapshot that looks like a retailer's, and ground truth that names real events."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import ipaddress
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.config import Config, EnrichConfig
from crmwatch.enrich.ip import NetworkLists, classify_ip
from crmwatch.ingest import ingest
from crmwatch.simulate.activity import id18
from crmwatch.simulate.benign import make_org
from crmwatch.simulate.networks import (
    CARRIERS,
    CLIENTELING_EGRESS,
    HOME_ISPS,
    HOTELS,
    OFFICE_POOLS,
    VENDOR_EGRESS,
    Pool,
    local,
)
from crmwatch.simulate.org import simulate
from crmwatch.simulate.world import (
    AWS_RECON,
    COUNTRIES,
    DIGITALOCEAN,
    DRIFT_IPS,
    M247,
    MARKETING_IPS,
    MULLVAD,
    TOR_EXITS,
    VULTR,
)
from crmwatch.store import Store

SMALL = {"customers": 2000, "employees": 60, "days": 14}
runner = CliRunner()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim")
    simulate(out, **SMALL, seed=3)
    return out


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def test_same_seed_same_bytes_other_seed_other_data(sim: Path, tmp_path: Path):
    simulate(tmp_path / "again", **SMALL, seed=3)
    assert _digest(tmp_path / "again") == _digest(sim)
    simulate(tmp_path / "other", **SMALL, seed=4)
    assert _digest(tmp_path / "other") != _digest(sim)


def test_every_file_ingests_cleanly_in_its_own_format(sim: Path, store: Store):
    summary = ingest(store, [sim / "logs"])
    assert summary.total("quarantined") == 0
    formats = {Path(f.path).parent.name: f.format for f in summary.files}
    assert formats == {"elf": "elf-csv", "objects": "sf-object", "okta": "okta"}
    types = {r[0] for r in store.execute("SELECT DISTINCT source_type FROM events").rows}
    assert {"elf:Login", "elf:URI", "elf:API", "elf:BulkApi2", "elf:ReportExport",
            "elf:Logout", "api:ApiEvent", "api:BulkApiResultEventStore", "api:ReportEvent",
            "api:OauthToken", "api:SetupAuditTrail", "okta:user.session.start",
            "okta:user.mfa.factor.activate"} <= types  # fmt: skip
    # ELF rows name users by 15-character id; the derived column is its 18-character form
    row = store.execute(
        "SELECT json_extract_string(raw, '$.USER_ID'), json_extract_string(raw, "
        "'$.USER_ID_DERIVED') FROM events WHERE source_type = 'elf:Login' LIMIT 1"
    ).rows[0]
    assert id18(row[0]) == row[1]


def test_ids_carry_salesforces_checksum():
    # real pairs from the public samples (elastic/beats Login ELF, Azure-Sentinel ELF)
    assert id18("0055j00000AT6I1") == "0055j00000AT6I1AAL"
    assert id18("00520000005RLcQ") == "00520000005RLcQAAW"
    assert id18("0053X00000BoqlM") == "0053X00000BoqlMQAR"


def test_networks_enrich_like_the_real_ones():
    lists = NetworkLists.load(EnrichConfig())
    for c in COUNTRIES:
        for ip in (f"{c.office}.10", f"{c.home}.20"):
            assert classify_ip(ip, lists).country == c.code, (c.code, ip)
    classes = {ip: classify_ip(ip, lists).ip_class for ip in
               (*MULLVAD, M247, *TOR_EXITS, AWS_RECON, *DIGITALOCEAN, *VULTR, *MARKETING_IPS,
                *DRIFT_IPS)}  # fmt: skip
    assert {classes[ip] for ip in MULLVAD} == {"vpn"} and classes[M247] == "vpn"
    assert {classes[ip] for ip in TOR_EXITS} == {"tor"}
    assert {classes[ip] for ip in (AWS_RECON, *DIGITALOCEAN, *VULTR, *MARKETING_IPS,
                                   *DRIFT_IPS)} == {"hosting"}  # fmt: skip


def test_snapshot_looks_like_a_retailers(sim: Path):
    with (sim / "snapshot" / "Contact.csv").open(encoding="utf-8") as fh:
        contacts = list(csv.DictReader(fh))
    assert len(contacts) == SMALL["customers"]
    assert len({c["MailingCountryCode"] for c in contacts}) == 10
    korean = [c for c in contacts if c["MailingCountryCode"] == "KR"]
    assert all("\uac00" <= c["LastName"][0] <= "\ud7a3" for c in korean)  # Hangul
    assert all(c["Phone"].startswith("+82 ") for c in korean)
    assert all(c["Email"].isascii() and "@" in c["Email"] for c in contacts)
    assert all(c["Product_Serial_Numbers__c"] and float(c["Total_Purchases__c"]) > 0
               for c in contacts)  # fmt: skip
    assert all(len(c["Id"]) == 18 and id18(c["Id"][:15]) == c["Id"] for c in contacts)
    totals = [c["Total_Purchases__c"] for c in contacts]
    assert len(set(totals)) == len(totals)  # ORDER BY Total_Purchases__c is well defined


def test_ground_truth_names_events_the_logs_hold(sim: Path):
    truth = json.loads((sim / "ground_truth.json").read_text())
    assert [s["name"] for s in truth["scenarios"]] == [
        "vishing_data_loader", "drift_token_theft", "okta_mfa_phish",
        "branch_account_compromise", "slow_insider", "credential_stuffing",
    ]  # fmt: skip
    text = "".join(p.read_text(encoding="utf-8") for p in (sim / "logs").rglob("*")
                   if p.is_file())  # fmt: skip
    for s in truth["scenarios"]:
        assert s["malicious_events"], s["name"]
        for m in s["malicious_events"]:
            assert m["value"] in text, (s["name"], m)
        assert s["first_malicious_at"] <= (s["first_exfiltration_at"] or "~")
    # people-days employed, recounted from the stated hires and leavers
    days, staff = SMALL["days"], truth["staffing"]
    assert truth["user_days"] == (
        SMALL["employees"] * days
        + sum(days - h["first_day"] for h in staff["hires"])
        - sum(days - 1 - left["last_day"] for left in staff["leavers"])
    )
    assert staff["hires"] and staff["leavers"] and staff["trips"]


def test_cli_simulate_rejects_bad_options_clearly(tmp_path: Path):
    res = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--scenario", "nope"])
    assert res.exit_code == 2 and "unknown scenario 'nope'" in res.stderr
    res = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--days", "5"])
    assert res.exit_code == 2 and "--days 14" in res.stderr
    res = runner.invoke(app, ["simulate", "--out", str(tmp_path / "b"), "--customers", "1000",
                              "--employees", "40", "--benign-only"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "b" / "ground_truth.json").read_text())["scenarios"] == []


### Realistic noise (issue 12) ###


def _pools() -> list[tuple[str, Pool]]:
    named = [(f"office {c}", p) for c, p in OFFICE_POOLS.items()]
    named += [(f"home {c}", p) for c, ps in HOME_ISPS.items() for p in ps]
    named += [(f"carrier {c}", p) for c, ps in CARRIERS.items() for p in ps]
    named += [(f"hotel {c}", p) for c, p in HOTELS.items()]
    return [*named, ("chat vendor", VENDOR_EGRESS), ("clienteling", CLIENTELING_EGRESS)]


@pytest.mark.parametrize(("name", "pool"), _pools(), ids=[n for n, _ in _pools()])
def test_every_address_pool_is_the_organisation_it_names(name: str, pool: Pool):
    """Addresses drawn from a pool look up, in the bundled database, as the pool's own AS
    organisation (and country), so enrichment sees the simulated network as the real one."""
    lists = NetworkLists.load(EnrichConfig())
    rng = random.Random(name)
    seen = {(i.as_org, i.country) for i in
            (classify_ip(pool.pick(rng), lists) for _ in range(200))}  # fmt: skip
    assert {org for org, _ in seen} == {pool.org}
    if pool.country:
        assert {country for _, country in seen} == {pool.country}


def test_local_hours_follow_daylight_saving_time():
    # 09:00 in Paris is 07:00 UTC in summer time, 08:00 after the clocks go back (26 Oct)
    assert local("FR", dt.date(2025, 10, 24), 9) == dt.datetime(2025, 10, 24, 7)
    assert local("FR", dt.date(2025, 10, 27), 9) == dt.datetime(2025, 10, 27, 8)
    assert local("US", dt.date(2025, 11, 3), 9.5) == dt.datetime(2025, 11, 3, 14, 30)
    assert local("KR", dt.date(2025, 10, 27), 9) == dt.datetime(2025, 10, 27, 0)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Store]:
    out = tmp_path_factory.mktemp("noisy")
    simulate(out, customers=1000, employees=60, days=21, scenarios=[], seed=5,
             start=dt.date(2025, 10, 13))  # fmt: skip
    store = Store(out / "s.duckdb")
    ingest(store, [out / "logs"], config=Config.load(out / "crmwatch.toml"))
    yield out, store
    store.close()


def _labelled(out: Path, source: str) -> set[tuple[str, str]]:
    truth = json.loads((out / "ground_truth.json").read_text())
    return {(d["user"], d["date"]) for d in truth["noise_days"] if source in d["sources"]}


def test_labelled_mobile_days_have_a_phone_on_a_carriers_pool(noisy):
    out, store = noisy
    nets = [ipaddress.ip_network(c) for ps in CARRIERS.values() for p in ps for c in p.cidrs]
    days = {(u, str(d)) for u, d, ip in store.execute(
        "SELECT DISTINCT user_name, ts::DATE, src_ip FROM events WHERE ua_class = 'mobile-app' "
        "AND category = 'authentication'").rows
        if any(ipaddress.ip_address(ip) in n for n in nets)}  # fmt: skip
    labelled = _labelled(out, "mobile_cgnat")
    assert labelled and labelled == days


def test_office_sessions_come_from_undeclared_parts_of_the_nat_pools(noisy):
    out, store = noisy
    offices = store.execute(
        "SELECT count(*) FILTER (ip_class = 'corporate'), count(*) FROM events "
        "WHERE source_type = 'elf:Login' AND as_org IN (SELECT unnest(?))",
        [sorted({p.org for p in OFFICE_POOLS.values()})],
    ).first()
    assert 0 < offices[0] < offices[1]  # declared and undeclared addresses both in use
    assert _labelled(out, "office_nat_pool")
    # a person's office address changes from day to day
    changing = store.scalar(
        "SELECT count(*) FROM (SELECT user_name FROM events WHERE source_type = 'elf:Login' "
        "AND ua_class = 'browser' GROUP BY user_name HAVING count(DISTINCT src_ip) > 3)"
    )
    assert changing > 30


def test_the_noise_a_real_company_has_is_all_there(noisy):
    out, store = noisy
    truth = json.loads((out / "ground_truth.json").read_text())
    present = {s for d in truth["noise_days"] for s in d["sources"]}
    assert present == set(truth["noise_sources"]) - {"admin_data_loader"}  # none in this period
    assert store.scalar("SELECT count(DISTINCT user_agent) FROM events WHERE user_name = "
                        "'drift.integration@maison.example'") == 1  # fmt: skip
    assert store.scalar("SELECT count(DISTINCT src_ip) FROM events WHERE user_name = "
                        "'drift.integration@maison.example'") > 50  # autoscaling egress  # fmt: skip


def test_login_as_names_the_administrator_and_the_user_acted_as(noisy):
    _, store = noisy
    rows = store.execute(
        "SELECT DISTINCT e.user_name, e.target_user IS NOT NULL, e.target_user <> e.user_name "
        "FROM events e WHERE source_type = 'elf:LoginAs'"
    ).rows
    admins = {u.username for u in make_org(random.Random(5), 60).staff(role="admin")}
    assert rows and {r[0] for r in rows} <= admins and all(r[1] and r[2] for r in rows)


def test_usernames_are_unique(noisy):
    _, store = noisy
    people = store.execute(
        "SELECT user_name, count(DISTINCT json_extract_string(raw, '$.USER_ID')) FROM events "
        "WHERE source_type = 'elf:Login' GROUP BY 1 HAVING count(DISTINCT "
        "json_extract_string(raw, '$.USER_ID')) > 1"
    ).rows
    assert people == []


def test_clean_noise_keeps_the_regular_org(tmp_path: Path):
    simulate(tmp_path, customers=1000, employees=40, days=14, scenarios=[], seed=5,
             noise="clean")  # fmt: skip
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert "noise_days" not in truth and truth["user_days"] == 40 * 14
    toml = (tmp_path / "crmwatch.toml").read_text()
    assert all(f"{c.office}.0/24" in toml for c in COUNTRIES)
