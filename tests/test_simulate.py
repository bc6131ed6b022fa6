"""The simulator: deterministic, real formats that ingest cleanly, networks that enrich as the
real ones do, a snapshot that looks like a retailer's, and ground truth that names real events."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.config import EnrichConfig
from crmwatch.enrich.ip import NetworkLists, classify_ip
from crmwatch.ingest import ingest
from crmwatch.simulate.activity import id18
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
    assert truth["user_days"] == SMALL["employees"] * SMALL["days"]


def test_cli_simulate_rejects_bad_options_clearly(tmp_path: Path):
    res = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--scenario", "nope"])
    assert res.exit_code == 2 and "unknown scenario 'nope'" in res.stderr
    res = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x"), "--days", "5"])
    assert res.exit_code == 2 and "--days 14" in res.stderr
    res = runner.invoke(app, ["simulate", "--out", str(tmp_path / "b"), "--customers", "1000",
                              "--employees", "40", "--benign-only"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "b" / "ground_truth.json").read_text())["scenarios"] == []
