"""Offline enrichment: IP classes, user-agent classes, user-configured corporate ranges."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from crmwatch.config import Config, EnrichConfig
from crmwatch.enrich.ip import NetworkLists, classify_ip
from crmwatch.enrich.useragent import classify_user_agent
from crmwatch.errors import ConfigError

BUNDLED = NetworkLists.load(EnrichConfig())


@pytest.mark.parametrize(("ip", "ip_class", "country", "as_org"), [
    ("44.215.108.109", "hosting", "US", "AMAZON-AES"),       # UNC6395 recon (AWS)
    ("208.68.36.90", "hosting", "US", "DIGITALOCEAN-ASN"),   # UNC6395 exfiltration
    ("185.220.101.5", "tor", "DE", "Stiftung Erneuerbare Freiheit"),
    ("192.42.116.16", "tor", "NL", "SURF B.V."),
    ("193.138.218.1", "vpn", "SE", "31173 Services AB"),     # Mullvad
    ("2a01:4f8::1", "hosting", "DE", "Hetzner Online GmbH"),  # IPv6
    ("10.0.0.1", "private", None, None),
    ("121.134.0.1", "unknown", "KR", "Korea Telecom"),       # a residential ISP
    ("not-an-ip", "unknown", None, None),
])  # fmt: skip
def test_classify_ip(ip, ip_class, country, as_org):
    info = classify_ip(ip, BUNDLED)
    assert (info.ip_class, info.country, info.as_org) == (ip_class, country, as_org)


def test_asn_number_from_the_list_for_named_networks():
    assert classify_ip("208.68.36.90", BUNDLED).asn == 14061


def test_corporate_ranges_win_over_hosting(tmp_path: Path):
    (tmp_path / "crmwatch.toml").write_text('[enrich]\ncorporate_cidrs = ["44.215.108.0/24"]\n')
    lists = NetworkLists.load(Config.load(tmp_path / "crmwatch.toml").enrich)
    assert classify_ip("44.215.108.109", lists).ip_class == "corporate"
    assert classify_ip("44.215.109.1", lists).ip_class == "hosting"


def test_replacement_network_list(tmp_path: Path):
    (tmp_path / "tor.csv").write_text("class,kind,match,asn,label\ntor,cidr,203.0.113.7/32,,exit\n")
    (tmp_path / "c.toml").write_text('[enrich]\nnetwork_lists = ["tor.csv"]\n')
    lists = NetworkLists.load(Config.load(tmp_path / "c.toml").enrich)
    assert classify_ip("203.0.113.7", lists).ip_class == "private"  # documentation range
    assert classify_ip("44.215.108.109", lists).ip_class == "unknown"  # bundled list replaced


def test_bad_config_is_a_clear_error(tmp_path: Path):
    (tmp_path / "c.toml").write_text('[enrich]\ncorporate_cidrs = ["10.0.0.0/33"]\n')
    with pytest.raises(ConfigError, match=r"c\.toml"):
        Config.load(tmp_path / "c.toml")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[incidents]\nrisk_threshold = 0", "risk_threshold must be a whole number > 0"),
        ("[incidents]\nrisk_threshold = 'high'", "risk_threshold must be a whole number"),
        ("[incidents]\nopen_level = 'severe'", "open_level must be one of"),
        ("[incidents]\ngap = '1.5h'", "gap: not a duration"),
        ("[incidents]\nrisk_windw = '24h'", "has no key 'risk_windw'"),
        ("incidents = 5", r"\[incidents\] must be a table"),
    ],
)
def test_incident_settings_are_checked_when_read(tmp_path: Path, table: str, message: str):
    (tmp_path / "c.toml").write_text(table + "\n")
    with pytest.raises(ConfigError, match=message):
        Config.load(tmp_path / "c.toml")


def test_incident_settings_are_read(tmp_path: Path):
    (tmp_path / "c.toml").write_text("[incidents]\nrisk_threshold = 80\nrisk_window = '12h'\n")
    cfg = Config.load(tmp_path / "c.toml").incidents
    assert (cfg.risk_threshold, cfg.risk_window, cfg.open_level) == (
        80,
        dt.timedelta(hours=12),
        "high",
    )


@pytest.mark.parametrize(("ua", "cls"), [
    ("Salesforce-Multi-Org-Fetcher/1.0", "salesforce-tool"),
    ("Salesforce-CLI/1.0", "salesforce-tool"),
    ("DataLoaderBulkUI/58.0", "salesforce-tool"),
    ("python-requests/2.32.4", "script"),
    ("Python/3.11 aiohttp/3.12.15", "script"),
    ("Go-http-client/1.1", "script"),
    ("curl/8.5.0", "script"),
    ("Python Requests 2.x", "script"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/126.0 Safari/537.36", "browser"),
    ("Chrome 120", "browser"),
    # the Salesforce mobile app: its web view part alone would read as a browser
    ("SalesforceMobileSDK/12.2.0 android mobile/15 (SM-S921B) Salesforce/256.010(2560100) "
     "Native uid_a1 ftr_ Mozilla/5.0 (Linux; Android 15; SM-S921B; wv) AppleWebKit/537.36 "
     "(KHTML, like Gecko) Version/4.0 Chrome/137.0.0.0 Mobile Safari/537.36", "mobile-app"),
    ("SalesforceMobileSDK/12.2.0 iOS/18.5 (iPhone) Salesforce/256.010 Native uid_b2 ftr_ "
     "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15", "mobile-app"),
    ("Unknown", "unknown"),
    (None, "unknown"),
])  # fmt: skip
def test_classify_user_agent(ua, cls):
    assert classify_user_agent(ua) == cls


def test_new_values_are_classified_a_page_at_a_time(tmp_path: Path, monkeypatch):
    """Pages smaller than the batch: every new address and agent is classified once, as the
    classifier classifies it alone; those classified before are left as they were."""
    import crmwatch.enrich as enrichment
    from crmwatch.store import Store

    ips = [f"44.215.108.{i}" for i in range(11)] + ["10.0.0.7", "2a01:4f8::1", "not-an-ip"]
    agents = [f"python-requests/2.{i}" for i in range(7)] + ["Mozilla/5.0 (Windows NT 10.0)"]
    store = Store(tmp_path / "s.duckdb")
    store.insert("ip_info", [("44.215.108.0", "ZZ", None, None, "corporate", "kept")])
    store.execute(
        "INSERT INTO events_base (event_id, src_ip, user_agent) "
        "SELECT 'e' || i, ips[1 + i % len(ips)], agents[1 + i % len(agents)] "
        "FROM range(100) r(i), (SELECT $ips AS ips, $agents AS agents)",
        {"ips": ips, "agents": agents},
    )
    monkeypatch.setattr(enrichment, "PAGE", 3)
    with store.transaction():  # as ingest runs it, with the batch's events
        counts = enrichment.enrich(store, EnrichConfig())
    assert counts == {"enrich_ips": len(ips) - 1, "enrich_user_agents": len(agents)}
    stored = {r[0]: r[1:] for r in store.execute("SELECT * FROM ip_info").rows}
    assert stored.pop("44.215.108.0") == ("ZZ", None, None, "corporate", "kept")
    for ip, row in stored.items():
        info = classify_ip(ip, BUNDLED)
        assert row == (info.country, info.asn, info.as_org, info.ip_class, info.class_source)
    assert sorted(stored) == sorted(ips[1:])
    classes = dict(store.execute("SELECT * FROM ua_info").rows)
    assert classes == {a: classify_user_agent(a) for a in agents}
    assert enrichment.enrich(store, EnrichConfig()) == {"enrich_ips": 0, "enrich_user_agents": 0}
    assert not store.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = '_enrich_new'").rows
