"""Notification: every jurisdiction file passes the schema and decides known cases correctly;
deadlines are right across time zones and daylight-saving changes; drafts carry every field the
law requires; letters render to PDF whose text reads back in its own language."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest
import yaml
from pypdf import PdfReader
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.errors import ConfigError
from crmwatch.incidents import Incident, build_incidents
from crmwatch.ingest import ingest
from crmwatch.notify import package as package_module
from crmwatch.notify.cases import run_cases
from crmwatch.notify.elements import elements
from crmwatch.notify.facts import Facts, Group, gather
from crmwatch.notify.obligations import decide
from crmwatch.notify.org import Org, load_org
from crmwatch.notify.package import BASE_FACTS, REGULATOR_LABELS, _csv_field, _render, notify
from crmwatch.notify.regimes import check, load_regime, load_regimes, regimes_dir
from crmwatch.notify.text import letter_sections
from crmwatch.scope.exposure import scope_incident
from crmwatch.store import Store
from tests.breach import ANNA, SNAPSHOT, write_breach

AWARE = dt.datetime(2026, 3, 2, 9, 0)
NOW = dt.datetime(2026, 3, 2, 12, 0)
REGIMES = {r.id: r for r in load_regimes()}
NAME_EMAIL = ("FirstName", "LastName", "Email")
runner = CliRunner()


def incident(**kw) -> Incident:
    base = dict(
        id="INC-TEST", severity="critical", principals=["a@x.example"], user_ids=[],
        source_ips=["198.51.100.7"], apps=[], login_keys=[], tactics=["initial-access"],
        techniques=[], rules=["Successful sign-in from Tor or a commercial VPN"], alert_ids=["a1"],
        first_malicious_at="2026-02-27T08:00:00", first_malicious_event={"source_type": "elf:Login"},
        first_alert_at="2026-02-27T08:05:00", detected_at=None, time_to_detect_seconds=300.0,
        last_event_at="2026-02-27T09:00:00", events=10,
    )  # fmt: skip
    return Incident(**{**base, **kw})


def facts(*groups: tuple, outside: bool = True, aware: dt.datetime = AWARE) -> Facts:
    gs = [Group(c, s, frozenset(f), frozenset(elements(f)), n) for c, s, f, n in groups]
    return Facts(incident(tactics=["initial-access"] if outside else ["collection"]),
                 {"fields": sorted({x for g in gs for x in g.fields}), "categories": ["contact"]},
                 gs, sum(g.count for g in gs), aware, outside, "test vector",
                 ["identity", "contact"])  # fmt: skip


def obligations(f: Facts, org: Org | None = None, only: str | None = None) -> dict:
    regimes = [REGIMES[only]] if only else list(REGIMES.values())
    a = decide(regimes, f, org or Org(), NOW)
    return {(o.regime, o.recipient): o for o in a.obligations}


### the rule files ###


@pytest.mark.parametrize("path", sorted(regimes_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_every_rule_file_passes_the_schema_and_cites_its_law(path: Path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert check(data) == []
    r = load_regime(path)
    assert r.id == path.stem and r.citation and r.verified_on and r.sources
    assert r.verification  # what the rule rests on, by the kinds of its sources
    assert all(s["url"].startswith("http") for s in r.sources)
    assert r.cases, "every jurisdiction file carries its own cases"


def test_a_rule_resting_on_a_secondary_source_never_claims_the_statute_alone():
    pipa = REGIMES["kr-pipa"]
    assert pipa.verification == "statute text + secondary sources"
    assert REGIMES["us-other"].verification == "secondary sources"


def test_every_case_in_every_jurisdiction_file_passes():
    results = run_cases(list(REGIMES.values()))
    assert len(results) >= 50
    assert [(r.regime, r.name, r.problems) for r in results if not r.passed] == []


def test_a_wrong_expectation_in_a_case_fails_with_its_reason(tmp_path: Path):
    data = yaml.safe_load((regimes_dir() / "kr-pipa.yaml").read_text(encoding="utf-8"))
    data["cases"] = [{"name": "wrong", "people": [{"country": "KR", "fields": ["Email"],
                      "count": 3}], "expect": {"regulator": "not_required"}}]  # fmt: skip
    path = tmp_path / "kr-pipa.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (result,) = run_cases([load_regime(path)])
    assert result.problems == [
        "regulator: expected not_required, got required (the leak came from unauthorised "
        "outside access (any number of people))"
    ]
    result = runner.invoke(app, ["notify", "check", "--regimes", str(tmp_path)])
    assert result.exit_code == 1 and "FAIL kr-pipa: wrong" in result.output


def test_notify_check_runs_the_built_in_cases():
    result = runner.invoke(app, ["notify", "check"])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output


def test_a_time_zone_that_does_not_exist_is_refused():
    data = yaml.safe_load((regimes_dir() / "us-wa.yaml").read_text(encoding="utf-8"))
    data["regulator"]["deadline"]["tz"] = "America/Seatle"
    assert "regulator.deadline.tz: 'America/Seatle' is not an IANA time zone (e.g. Asia/Seoul)" in (
        check(data))  # fmt: skip


def test_the_schema_names_what_is_wrong(tmp_path: Path):
    data = yaml.safe_load((regimes_dir() / "kr-pipa.yaml").read_text(encoding="utf-8"))
    data["regulator"]["duty"] = "maybe"
    data["individuals"]["contents"].append("horoscope")
    del data["verified_on"]
    assert "verified_on: missing" in check(data)
    data["verified_on"] = dt.date(2026, 1, 1)
    errors = check(data)
    assert any(e.startswith("regulator.duty: 'maybe'") for e in errors)
    assert "individuals.contents: unknown slot 'horoscope'" in errors
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"regulator\.duty.*in .*bad\.yaml"):
        load_regime(bad)


REQUIRED = ("kr-pipa", "kr-network-act", "jp-appi", "cn-pipl", "cn-cac-incident", "eu-gdpr",
            "uk-gdpr", "sg-pdpa", "au-ndb", "ca-pipeda", "ca-qc", "ca-ab", "us-ca", "us-ny",
            "us-tx", "us-fl", "us-wa", "us-ma", "us-il", "us-other")  # fmt: skip


def test_every_required_regime_is_covered():
    assert set(REQUIRED) == set(REGIMES)


### known answers (issue 6) ###


def test_1200_korean_customers_names_and_emails_by_hacking():
    o = obligations(facts(("KR", None, NAME_EMAIL, 1200)))
    reg, ind = o[("kr-pipa", "regulator")], o[("kr-pipa", "individuals")]
    assert (reg.status, ind.status) == ("required", "required")
    assert reg.deadline_utc == ind.deadline_utc == "2026-03-05T09:00:00Z"  # 72 h
    assert "1,200 people affected" in reg.reason and "unauthorised outside access" in reg.reason
    assert reg.deadline_local.endswith("(Asia/Seoul)") and "18:00:00+09:00" in reg.deadline_local


def test_300_californians_name_and_email_only_do_not_trigger_california():
    o = obligations(facts(("US", "CA", NAME_EMAIL, 300)))
    for who in ("regulator", "individuals"):
        assert o[("us-ca", who)].status == "not_required"
        assert "data categories not covered" in o[("us-ca", who)].reason
        assert o[("us-ca", who)].deadline_utc is None


def test_eu_contact_data_gdpr_33_within_72h_and_34_for_assessment():
    o = obligations(facts(("FR", None, NAME_EMAIL, 40), ("DE", None, ("Email",), 10)))
    art33, art34 = o[("eu-gdpr", "regulator")], o[("eu-gdpr", "individuals")]
    assert (art33.status, art33.affected, art33.deadline_utc) == (
        "required",
        50,
        "2026-03-05T09:00:00Z",
    )
    assert art34.status == "assess" and "high risk" in art34.reason
    assert art33.time_left_hours == 69.0  # NOW is 3 hours after awareness


@pytest.mark.parametrize(("regime", "groups", "outside", "regulator", "individuals"), [
    ("uk-gdpr", [("GB", None, NAME_EMAIL, 10)], True, "required", "assess"),
    ("jp-appi", [("JP", None, NAME_EMAIL, 50)], True, "required", "required"),
    ("jp-appi", [("JP", None, NAME_EMAIL, 50)], False, "required", "required"),  # take-out
    ("jp-appi", [("JP", None, NAME_EMAIL, 1001)], False, "required", "required"),
    ("cn-pipl", [("CN", None, NAME_EMAIL, 5)], True, "required", "required"),
    ("sg-pdpa", [("SG", None, NAME_EMAIL, 600)], True, "required", "not_required"),
    ("sg-pdpa", [("SG", None, (*NAME_EMAIL, "Password__c"), 10)], True, "required", "required"),
    ("sg-pdpa", [("SG", None, NAME_EMAIL, 10)], True, "not_required", "not_required"),
    ("au-ndb", [("AU", None, NAME_EMAIL, 10)], True, "assess", "assess"),
    ("ca-pipeda", [("CA", None, NAME_EMAIL, 10)], True, "assess", "assess"),
    ("us-ca", [("US", "CA", ("Name", "Drivers_License_Number__c"), 600)], True, "required",
     "required"),
    ("us-ca", [("US", "CA", ("Name", "Drivers_License_Number__c"), 20)], True, "not_required",
     "required"),
    ("us-ny", [("US", "NY", ("Email", "Password__c"), 3)], True, "required", "required"),
    ("us-ny", [("US", "NY", NAME_EMAIL, 3)], True, "not_required", "not_required"),
    ("us-tx", [("US", "TX", ("FirstName", "LastName", "SSN__c"), 300)], True, "required",
     "required"),
    ("us-tx", [("US", "TX", ("FirstName", "LastName", "SSN__c"), 100)], True, "not_required",
     "required"),
    ("us-fl", [("US", "FL", ("FirstName", "LastName", "Passport_Number__c"), 600)], True,
     "required", "required"),
    ("us-wa", [("US", "WA", ("FirstName", "LastName", "Birthdate"), 5)], True, "not_required",
     "required"),
    ("us-wa", [("US", "WA", ("FirstName", "LastName", "Birthdate"), 501)], True, "required",
     "required"),
    ("us-ma", [("US", "MA", ("FirstName", "LastName", "Drivers_License__c"), 2)], True,
     "required", "required"),
    ("us-other", [("US", "NV", ("FirstName", "LastName", "SSN__c"), 2)], True, "assess",
     "required"),
    ("us-other", [("US", "NV", NAME_EMAIL, 2)], True, "assess", "assess"),  # not encoded
])  # fmt: skip
def test_each_regime_decides_known_cases(regime, groups, outside, regulator, individuals):
    o = obligations(facts(*groups, outside=outside), only=regime)
    assert (o[(regime, "regulator")].status, o[(regime, "individuals")].status) == (
        regulator, individuals), (o[(regime, "regulator")].reason, o[(regime, "individuals")].reason)  # fmt: skip


def test_japan_final_report_gets_60_days_for_unauthorised_access_and_a_preliminary():
    outside = obligations(facts(("JP", None, NAME_EMAIL, 5)), only="jp-appi")
    accident = facts(("JP", None, NAME_EMAIL, 2000), outside=False)
    accident.wrongful_purpose = False  # not an attack or a take-out: 30 days
    inside = obligations(accident, only="jp-appi")
    # 2 March 09:00 UTC is 18:00 in Tokyo: days count from that local date
    assert outside[("jp-appi", "regulator")].deadline_utc == "2026-05-01T14:59:59Z"  # +60 days
    assert inside[("jp-appi", "regulator")].deadline_utc == "2026-04-01T14:59:59Z"  # +30 days
    assert outside[("jp-appi", "regulator")].preliminary_deadline_utc == "2026-03-07T14:59:59Z"


def test_establishment_brings_every_customer_under_gdpr_and_no_org_file_is_said():
    f = facts(("KR", None, NAME_EMAIL, 7), ("US", "NY", NAME_EMAIL, 3))
    without = decide([REGIMES["eu-gdpr"]], f, Org(), NOW)
    assert without.obligations == [] and "Art. 3(2)" in without.assumptions[0]
    paris = Org(establishments=["FR"], path=Path("org.toml"))
    with_org = decide([REGIMES["eu-gdpr"]], f, paris, NOW)
    assert with_org.assumptions == []
    assert {o.affected for o in with_org.obligations} == {10}


def test_us_states_without_their_own_file_fall_back():
    o = obligations(facts(("US", "NV", ("FirstName", "LastName", "SSN__c"), 2),
                          ("US", "TX", ("FirstName", "LastName", "SSN__c"), 1)))  # fmt: skip
    assert o[("us-other", "individuals")].affected == 2  # Texas has its own file
    assert o[("us-tx", "individuals")].affected == 1


### deadline arithmetic ###


@pytest.mark.parametrize(("regime", "country", "state", "aware", "due", "local"), [
    # 72 hours across the EU's spring-forward (29 March 2026): elapsed time, not wall clock
    ("eu-gdpr", "FR", None, "2026-03-27T09:00:00", "2026-03-30T09:00:00Z",
     "2026-03-30T11:00:00+02:00 (Europe/Brussels)"),
    # 30 calendar days across the US spring-forward (8 March 2026): end of the local day
    ("us-wa", "US", "WA", "2026-03-02T02:00:00", "2026-04-01T06:59:59Z",
     "2026-03-31T23:59:59-07:00 (America/Los_Angeles)"),
    # 3 calendar days in Singapore, from a time that is already the next day there
    ("sg-pdpa", "SG", None, "2026-01-10T20:00:00", "2026-01-14T15:59:59Z",
     "2026-01-14T23:59:59+08:00 (Asia/Singapore)"),
    # 60 days in Texas across the autumn fall-back (1 November 2026)
    ("us-tx", "US", "TX", "2026-10-01T15:00:00", "2026-12-01T05:59:59Z",
     "2026-11-30T23:59:59-06:00 (America/Chicago)"),
    # awareness from an alert's millisecond timestamp: stated in whole seconds, rounded down
    ("kr-pipa", "KR", None, "2026-06-14T14:40:48.423", "2026-06-17T14:40:48Z",
     "2026-06-17T23:40:48+09:00 (Asia/Seoul)"),
])  # fmt: skip
def test_deadlines_across_time_zones_and_dst(regime, country, state, aware, due, local):
    fields = ("FirstName", "LastName", "Birthdate", "SSN__c", "Password__c", "Email")
    f = facts((country, state, fields, 600), aware=dt.datetime.fromisoformat(aware))
    who = "regulator" if regime != "us-tx" else "individuals"
    o = obligations(f, only=regime)[(regime, who)]
    assert (o.deadline_utc, o.deadline_local) == (due, local)


def test_clocks_running_from_determination_say_what_they_assumed():
    f = facts(("US", "TX", ("FirstName", "LastName", "SSN__c"), 300))
    o = obligations(f, only="us-tx")[("us-tx", "regulator")]
    assert "assumed at --aware-at" in o.clock


### the package ###


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("notify")
    with Store(tmp / "s.duckdb") as store:
        ingest(store, [write_breach(tmp / "logs")])
        detect(store, load_rules(None))
        iid = next(i.id for i in build_incidents(store) if i.principals == [ANNA])
        scope_incident(store, iid, [SNAPSHOT])
    return tmp / "s.duckdb", iid


ORG = """[controller]
name = "Maison Example SAS"
establishments = ["FR"]
[contact]
name = "Data Protection Officer"
email = "dpo@maison.example"
[response]
measures_taken = ["Revoked the My Ticket Portal tokens"]
"""


@pytest.fixture(scope="module")
def package(scoped, tmp_path_factory):
    db, iid = scoped
    tmp = tmp_path_factory.mktemp("pkg")
    (tmp / "org.toml").write_text(ORG)
    with Store(db) as store:
        return notify(store, iid, dt.datetime(2025, 6, 10, 12, 0), tmp / "out",
                      load_org(tmp / "org.toml"), now=dt.datetime(2025, 6, 11, 12, 0))  # fmt: skip


def test_package_obligations_follow_where_the_customers_live(package):
    got = {(o.regime, o.recipient): o.status for o in package.obligations}
    # contacts 1-2 (KR), 4-5 (FR), 6 (JP), 7-9 (US: no name exposed with an SSN or similar)
    assert got[("kr-pipa", "regulator")] == got[("jp-appi", "regulator")] == "required"
    assert got[("eu-gdpr", "regulator")] == "required"  # FR establishment: everyone
    assert got[("eu-gdpr", "individuals")] == "assess"
    # US: 7 (CA), 8 (NY), 9 (TX) had an e-mail and a customer number taken: no state covers that
    for state in ("us-ca", "us-ny", "us-tx"):
        assert got[(state, "individuals")] == "not_required"
    body = json.loads((package.out / "obligations.json").read_text())
    assert body["affected_customers"] == 8 and body["assumptions"] == []


def test_every_draft_has_every_field_the_law_requires(package):
    assert package.drafts
    for path in package.drafts:
        text = path.read_text(encoding="utf-8")
        regime = REGIMES[path.stem]
        for slot in regime.regulator.contents:
            assert f"## {REGULATOR_LABELS[slot]}" in text, (path.name, slot)
        for slot in BASE_FACTS:  # the facts every draft carries, whatever the law's list
            assert f"### {REGULATOR_LABELS[slot]}" in text, (path.name, slot)
        assert "Deadline:" in text and regime.citation in text
        if {"timeline", "when_and_how"} & set(regime.regulator.contents):
            assert "[TO COMPLETE: time the access was stopped]" in text  # no contained_at


def _section(text: str, heading: str) -> str:
    """The body under a Markdown heading of the draft, up to the next heading."""
    _, _, rest = text.partition(heading + "\n")
    return rest.split("\n#", 1)[0].strip()


def test_the_gdpr_draft_answers_article_33_3_from_the_evidence(package):
    """Independently of the rule file: GDPR Art. 33(3) asks for (a) the nature of the breach,
    the categories and approximate numbers of data subjects and of records, (b) the DPO's
    contact, (c) the likely consequences, (d) the measures taken or proposed. Each is in the
    draft with this incident's own facts: 8 customers (contacts 1-2, 4-6, 7-9), 10 records
    (8 contacts and 2 cases), the fields the attacker's queries named, the org file's DPO."""
    text = (package.out / "regulator" / "eu-gdpr.md").read_text(encoding="utf-8")
    people = _section(text, "## Approximate number of people concerned")
    assert people.startswith("8 people")
    assert _section(text, "## Approximate number of records concerned") == "10 customer records"
    categories = _section(text, "## Categories of personal data")
    assert "e-mail address" in categories and "Email" in categories and "Phone" in categories
    assert "dpo@maison.example" in _section(text, "## Contact point (DPO or other)")
    assert _section(text, "## Likely consequences")
    assert "Revoked the My Ticket Portal tokens" in _section(text, "## Measures taken")
    nature = _section(text, "## Nature of the breach")
    assert "Unauthorised access" in nature and "My Ticket Portal" in nature


@pytest.mark.parametrize(("letter", "expected"), [
    ("kr-pipa-ko", ["개인정보 유출 통지", "유출된 개인정보 항목", "이메일 주소", "피해 구제 절차"]),
    ("jp-appi-ja", ["個人情報漏えいに関するお知らせ", "漏えいした個人情報の項目"]),
    ("eu-gdpr-fr", ["Notification d'une violation de données personnelles",
                    "Ce que nous faisons", "Revoked the My Ticket Portal tokens"]),
    ("eu-gdpr-en", ["Notice of a data breach", "What this may mean for you",
                    "Data Protection Officer"]),
])  # fmt: skip
def test_letters_render_to_pdf_that_reads_back(package, letter, expected):
    # a regime with several sets of exposed items has a numbered template per set
    (pdf,) = sorted((package.out / "letters").glob(f"{letter}*.pdf"))[-1:]
    text = "".join(page.extract_text() for page in PdfReader(pdf).pages)
    for phrase in expected:
        assert phrase in text, (letter, phrase)
    html_text = pdf.with_suffix(".html").read_text(encoding="utf-8")
    assert expected[0].replace("'", "&#x27;") in html_text


def test_california_letter_uses_the_statutory_title_and_headings(tmp_path: Path):
    r = REGIMES["us-ca"]
    f = facts(("US", "CA", ("Name", "Drivers_License__c"), 3))
    sections = letter_sections(r.individuals.contents, f, Org(), "en", r.individuals.headings)
    # slots are grouped under the statute's five headings, each heading once
    assert [s.heading for s in sections] == ["What Happened", "What Information Was Involved",
        "What We Are Doing", "What You Can Do", "For More Information"]  # fmt: skip
    html_path, pdf = _render(tmp_path / "ca", "en", f, Org(), sections, r.individuals.title)
    text = "".join(p.extract_text() for p in PdfReader(pdf).pages)
    assert "What Happened" in html_path.read_text(encoding="utf-8")
    for heading in ("Notice of Data Breach", "What Happened", "What Information Was Involved",
                    "What We Are Doing", "What You Can Do", "For More Information"):  # fmt: skip
        assert heading in text


def test_mailing_list_holds_ids_and_channels_not_contact_details(package):
    with (package.out / "mailing_list.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and set(rows[0]) == {"customer_id", "regime", "channel", "language", "template"}
    kr = [r for r in rows if r["regime"] == "kr-pipa"]
    assert {r["language"] for r in kr} == {"ko"} and {r["channel"] for r in kr} == {"email"}
    assert {r["template"] for r in rows} <= {
        p.stem for p in (package.out / "letters").glob("*.pdf")
    }
    text = (package.out / "mailing_list.csv").read_text()
    assert "@" not in text and "Sejong" not in text


def _varied_snapshot(folder: Path) -> Path:
    """The fixture snapshot with every way to reach a customer: contacts without an e-mail
    address (or only spaces for one), some without a street either, preferred languages in
    several spellings, and cases whose contact is not in the snapshot or who have none."""
    shutil.copytree(SNAPSHOT, folder)
    with (SNAPSHOT / "Contact.csv").open(encoding="utf-8", newline="") as fh:
        contacts = list(csv.DictReader(fh))
    langs = ["ko", "fr-FR", " EN ", "", "xx", " ja"]
    for i, c in enumerate(contacts):
        c["Preferred_Language__c"] = langs[i % len(langs)]
        if i % 3 == 1:
            c["Email"] = "   " if i == 4 else ""
        if i % 4 == 2:
            c["Email"], c["MailingStreet"] = "", " " if i == 6 else ""
    with (folder / "Contact.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(contacts[0]))
        w.writeheader()
        w.writerows(contacts)
    with (folder / "Case.csv").open("a", encoding="utf-8") as fh:
        fh.write("500000000000003AAA,003000000000099AAA,Lost,Contact deleted,Open,"
                 "2025-03-05T10:00:00.000Z\n"
                 "500000000000004AAA,,Walk-in,No contact,Open,2025-03-06T10:00:00.000Z\n")  # fmt: skip
    return folder


def _mailing_list(pkg) -> list[dict[str, str]]:
    with (pkg.out / "mailing_list.csv").open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_notify_needs_no_snapshot_once_scope_recorded_the_channels(scoped, tmp_path: Path):
    """Scope stores how each customer can be written to (a channel and a language, not the
    address), so the snapshot may be moved after scope: the same mailing list as reading it."""
    db, iid = scoped
    shutil.copy(db, tmp_path / "s.duckdb")
    moved = shutil.copytree(SNAPSHOT, tmp_path / "snapshot")
    aware, now = dt.datetime(2025, 6, 10, 12, 0), dt.datetime(2025, 6, 11, 12, 0)
    with Store(tmp_path / "s.duckdb") as store:
        scope_incident(store, iid, [moved])
        stored = store.execute(
            "SELECT DISTINCT channel FROM exposures WHERE incident_id = ?", [iid]
        ).rows
        assert {r[0] for r in stored} <= {"email", "post", "none", "unknown"}
        before = notify(store, iid, aware, tmp_path / "before", Org(), now=now)
        shutil.rmtree(moved)
        after = notify(store, iid, aware, tmp_path / "after", Org(), now=now)
    assert not [a for a in after.assumptions if "not there any more" in a]
    rows = _mailing_list(after)
    assert rows == _mailing_list(before)
    assert {r["channel"] for r in rows} >= {"email"}


# when the varied snapshot's tests learn of the breach, and write the package
VARIED_AWARE, VARIED_NOW = dt.datetime(2025, 6, 10, 12), dt.datetime(2025, 6, 11, 12)


@contextmanager
def _scoped_on_varied(scoped, tmp_path: Path) -> Iterator[tuple[Store, str, Path]]:
    """A copy of the scoped store, its incident scoped again on the snapshot with every way
    to reach a customer (``_varied_snapshot``): the store, the incident and the snapshot."""
    db, iid = scoped
    shutil.copy(db, tmp_path / "s.duckdb")
    snap = _varied_snapshot(tmp_path / "snapshot")
    with Store(tmp_path / "s.duckdb") as store:
        scope_incident(store, iid, [snap])
        yield store, iid, snap


def test_channels_read_from_the_snapshot_for_a_scope_that_did_not_record_them(
    scoped, tmp_path: Path
):
    """A scope made before scope recorded channels: notify reads the snapshot itself, to the
    same mailing list; and when the snapshot has moved, says so rather than silently sending
    everyone substitute notice."""
    aware, now = VARIED_AWARE, VARIED_NOW
    org = Org(languages=["fr", "en", "ko", "ja"])
    with _scoped_on_varied(scoped, tmp_path) as (store, iid, moved):
        ways = store.execute("SELECT DISTINCT channel, language FROM exposures").rows
        assert {c for c, _ in ways} == {"email", "post", "none", "unknown"}
        assert {lang for _, lang in ways} == {"ko", "fr", "en", "ja", "xx", None}
        by_id = dict(store.execute("SELECT record_id, channel FROM exposures").rows)
        # an address of spaces is none: the street, then substitute notice
        assert (by_id["003000000000005AAA"], by_id["003000000000007AAA"]) == ("post", "none")
        recorded = notify(store, iid, aware, tmp_path / "recorded", org, now=now)
        store.execute("UPDATE exposures SET channel = NULL, language = NULL")
        read = notify(store, iid, aware, tmp_path / "read", org, now=now)
        shutil.rmtree(moved)
        pkg = notify(store, iid, aware, tmp_path / "out", org, now=now)
    rows = _mailing_list(recorded)
    assert rows == _mailing_list(read)
    assert {r["channel"] for r in rows} == {"email", "post"}
    assert {r["language"] for r in rows} == {"fr", "ko", "ja"}
    assert read.assumptions == recorded.assumptions
    said = [a for a in pkg.assumptions if "are not there any more" in a]
    assert len(said) == 1 and f"Contact: {moved / 'Contact.csv'}" in said[0]
    body = json.loads((pkg.out / "obligations.json").read_text())
    assert said[0] in body["assumptions"]
    assert {r["channel"] for r in _mailing_list(pkg)} == {"substitute notice"}


def test_a_snapshot_repeating_an_id_still_lists_each_customer_once_in_id_order(
    scoped, package, tmp_path: Path
):
    db, iid = scoped
    shutil.copy(db, tmp_path / "s.duckdb")
    snap = shutil.copytree(SNAPSHOT, tmp_path / "snapshot")
    with Store(tmp_path / "s.duckdb") as store:
        scope_incident(store, iid, [snap])
        # an export that repeats a contact, the second time without e-mail or street
        lines = (snap / "Contact.csv").read_text(encoding="utf-8").splitlines()
        first = next(row for row in csv.reader(lines[1:]))
        first[3] = first[5] = ""
        with (snap / "Contact.csv").open("a", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerow(first)
        pkg = notify(store, iid, dt.datetime(2025, 6, 10, 12, 0), tmp_path / "out",
                     load_org_text(tmp_path), now=dt.datetime(2025, 6, 11, 12, 0))  # fmt: skip
    with (pkg.out / "mailing_list.csv").open(encoding="utf-8") as fh:
        rows = [(r["customer_id"], r["regime"]) for r in csv.DictReader(fh)]
    with (package.out / "mailing_list.csv").open(encoding="utf-8") as fh:
        once = [(r["customer_id"], r["regime"]) for r in csv.DictReader(fh)]
    assert rows == sorted(set(rows)) == once and any(c == first[0] for c, _ in rows)


def _files(folder: Path) -> dict[str, bytes]:
    """Every file of a package but its PDFs (reportlab stamps each with the time it is made)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".pdf"}  # fmt: skip


@pytest.mark.parametrize("repeat", [None, "in the file", "file gone"])
def test_customers_one_per_exposure_give_the_package_grouping_them_gives(
    scoped, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repeat: str | None
):
    """Scoped against its Contact file alone, no case links to a contact: notify takes each
    exposure as its own customer instead of grouping them, and writes the same package as
    when it groups. A contact the snapshot held twice when scoped (so the exposures hold it
    twice) is caught, whether the file is still there to show it twice or gone, and the
    package is made again with the exposures grouped: each customer once."""
    db, iid = scoped
    shutil.copy(db, tmp_path / "s.duckdb")
    snap = tmp_path / "snapshot"
    snap.mkdir()
    shutil.copy(SNAPSHOT / "Contact.csv", snap / "Contact.csv")
    if repeat:
        lines = (snap / "Contact.csv").read_text(encoding="utf-8").splitlines()
        with (snap / "Contact.csv").open("a", encoding="utf-8", newline="") as fh:
            fh.write(lines[1] + "\n")
    org, aware, now = load_org_text(tmp_path), dt.datetime(2025, 6, 10, 12), NOW
    calls: list[bool] = []

    def spy(*args, group: bool = False):
        calls.append(group)
        return gather(*args, group=group)

    with Store(tmp_path / "s.duckdb") as store:
        scope_incident(store, iid, [snap])
        if repeat == "file gone":
            shutil.rmtree(snap)
        assert gather(store, iid, aware).per_record
        monkeypatch.setattr(package_module, "gather", spy)
        one = notify(store, iid, aware, tmp_path / "one", org, now=now)
        assert calls == ([False, True] if repeat else [False])
        monkeypatch.setattr(package_module, "gather", lambda *a: gather(*a, group=True))
        grouped = notify(store, iid, aware, tmp_path / "grouped", org, now=now)
    assert _files(one.out) == _files(grouped.out)
    with (one.out / "mailing_list.csv").open(encoding="utf-8") as fh:
        rows = [(r["customer_id"], r["regime"]) for r in csv.DictReader(fh)]
    assert rows and rows == sorted(set(rows))


def test_an_incident_scoped_twice_gives_the_package_it_gave_once(scoped, package, tmp_path):
    db, iid = scoped
    shutil.copy(db, tmp_path / "s.duckdb")
    with Store(tmp_path / "s.duckdb") as store:
        scope_incident(store, iid, [SNAPSHOT])
        scope_incident(store, iid, [SNAPSHOT])
        again = notify(store, iid, dt.datetime(2025, 6, 10, 12, 0), tmp_path / "out",
                       load_org_text(tmp_path), now=dt.datetime(2025, 6, 11, 12, 0))  # fmt: skip
    assert _files(again.out) == _files(package.out)


def test_mailing_list_cells_are_quoted_as_duckdbs_csv_writer_quotes_them(tmp_path: Path):
    """The mailing list's lines are written with quoting off, each cell quoted beforehand:
    exactly as DuckDB's writer would, for every ASCII character and a few others."""
    values = ["", " ", "plain", "003000000000001AAA", 'a"b', '"', "'=1", "é", "ko 한국", "\\N"]
    values += [f"a{chr(c)}b" for c in range(1, 128)] + [chr(c) for c in range(1, 128)]
    path = tmp_path / "q.csv"
    con = duckdb.connect()
    con.execute("CREATE TABLE v (i INTEGER, s VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?, ?)", list(enumerate(values)))
    con.execute(f"COPY (SELECT s, i FROM v ORDER BY i) TO '{path}' (FORMAT csv, HEADER false)")
    written = path.read_bytes().decode("utf-8")
    assert written == "".join(f"{_csv_field(v)},{i}\n" for i, v in enumerate(values))


def load_org_text(folder: Path) -> Org:
    (folder / "org.toml").write_text(ORG)
    return load_org(folder / "org.toml")


def test_transparency_flags_what_is_missing(package):
    t = package.transparency
    assert t["affected count"] == {"present": True, "value": 8}
    assert t["remediation"]["present"] and t["attack vector"]["present"]
    assert not t["timeline"]["present"] and t["timeline"]["missing"] == ["contained"]


def test_cli_notify_and_a_clear_error_before_scope(scoped, tmp_path: Path):
    db, iid = scoped
    res = runner.invoke(app, ["notify", iid, "--aware-at", "2025-06-10T21:00:00+09:00",
                              "--db", str(db), "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "assumed" in res.stdout  # no --org
    body = json.loads((tmp_path / iid / "obligations.json").read_text())
    assert body["aware_at"] == "2025-06-10T12:00:00Z"
    with Store(db) as store:
        other = next(i.id for i in build_incidents(store) if i.principals != [ANNA])
    res = runner.invoke(app, ["notify", other, "--aware-at", "2025-06-13T00:00:00Z",
                              "--db", str(db), "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 2 and "has not been scoped" in res.stderr


@pytest.mark.parametrize(("lang", "said", "not_said"), [
    ("en", "name", "date of birth"), ("fr", "nom", "naissance"), ("ko", "성명", "생년월일"),
    ("ja", "氏名", "生年月日"),
])  # fmt: skip
def test_a_name_only_leak_is_listed_as_a_name_in_every_language(lang, said, not_said):
    f = facts(("FR", None, ("FirstName", "LastName"), 3))
    (section,) = letter_sections(("categories",), f, Org(), lang)
    assert section.body == [said] and not_said not in section.body[0]


def test_a_password_is_called_a_password_and_purchases_are_not_mentioned_unless_taken():
    f = facts(("US", "CA", ("Email", "Password__c"), 3))
    sections = letter_sections(("categories", "likely_consequences", "self_help"), f, Org(), "en")
    text = " ".join(p for s in sections for p in s.body)
    assert "password" in text and "sensitive" not in text and "purchase" not in text


def test_a_snapshot_without_email_or_street_columns_is_said(scoped, tmp_path: Path):
    """A Contact file with neither an e-mail nor a street column: scope notes it and notify
    says why its customers are listed for substitute notice, rather than silently."""
    db, iid = scoped
    shutil.copy(db, tmp_path / "s.duckdb")
    snap = shutil.copytree(SNAPSHOT, tmp_path / "snapshot")
    with (SNAPSHOT / "Contact.csv").open(encoding="utf-8", newline="") as fh:
        contacts = list(csv.DictReader(fh))
    keep = [k for k in contacts[0] if k not in ("Email", "MailingStreet")]
    with (snap / "Contact.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keep, extrasaction="ignore")
        w.writeheader()
        w.writerows(contacts)
    aware, now = dt.datetime(2025, 6, 10, 12, 0), dt.datetime(2025, 6, 11, 12, 0)
    with Store(tmp_path / "s.duckdb") as store:
        result = scope_incident(store, iid, [snap])
        pkg = notify(store, iid, aware, tmp_path / "out", Org(), now=now)
    assert any("Contact.csv has no e-mail or street column" in n for n in result.notes)
    said = [a for a in pkg.assumptions if "no e-mail or street column" in a]
    assert len(said) == 1 and "Contact:" in said[0] and "Account" not in said[0]
    assert {r["channel"] for r in _mailing_list(pkg)} == {"substitute notice"}


def test_affected_customers_no_regime_covers_are_said_not_dropped(scoped, tmp_path: Path):
    """Cases whose contact the snapshot lacks, or who have none, leave customers with no
    country: no regime decides for them and the mailing list cannot list them, so the
    package says how many, rather than leaving them out of sight."""
    aware, now = VARIED_AWARE, VARIED_NOW
    with _scoped_on_varied(scoped, tmp_path) as (store, iid, _):
        nowhere = store.scalar(
            "SELECT count(*) FROM exposure_details WHERE incident_id = ? AND country IS NULL",
            [iid],
        )
        pkg = notify(store, iid, aware, tmp_path / "out", Org(), now=now)
    said = [a for a in pkg.assumptions if "have no known country" in a]
    assert nowhere == 2 and len(said) == 1 and said[0].startswith("2 affected customers")
    listed = {r["customer_id"] for r in _mailing_list(pkg)}
    assert not listed & {"003000000000099AAA", "500000000000004AAA"}


def test_letters_are_in_the_languages_the_controller_writes_in(scoped, tmp_path: Path):
    """``controller.languages`` bounds the letters' languages: a customer's preferred (or
    country's) language when the controller writes in it, else the first it does; a regime
    that names its own language (Korea's) keeps it."""
    aware, now = VARIED_AWARE, VARIED_NOW
    with _scoped_on_varied(scoped, tmp_path) as (store, iid, _):
        anyone = notify(store, iid, aware, tmp_path / "any", Org(), now=now)
        english = notify(store, iid, aware, tmp_path / "en", Org(languages=["en"]), now=now)
    fixed = {r.id for r in load_regimes() if r.individuals.languages}  # Korea's, Japan's, …
    free = {(r["regime"], r["language"]) for r in _mailing_list(anyone)}
    bound = {(r["regime"], r["language"]) for r in _mailing_list(english)}
    assert {lang for regime, lang in free if regime not in fixed} - {"en"}
    assert {lang for regime, lang in bound if regime not in fixed} == {"en"}
    assert {lang for regime, lang in bound if regime == "kr-pipa"} == {"ko"}
    assert {(g, lang) for g, lang in free if g in fixed} == {
        (g, lang) for g, lang in bound if g in fixed
    }
