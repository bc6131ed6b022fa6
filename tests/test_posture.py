"""Posture: checks as data with their own cases, real public metadata and Okta objects, the
simulated org's gaps, drift between audits, and outputs an auditor can be handed safely."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.detect.rules import load_rules
from crmwatch.errors import ConfigError
from crmwatch.posture import posture
from crmwatch.posture.audit import read_org
from crmwatch.posture.checks import builtin_check_dir, load_checks, run_cases
from crmwatch.posture.report import to_html, to_ocsf
from crmwatch.posture.results import DRIFT_APP, stored_findings
from crmwatch.simulate.config import GAPS
from crmwatch.simulate.org import simulate
from crmwatch.store import Store

REAL = Path(__file__).parent / "fixtures" / "posture"
runner = CliRunner()


def test_every_case_of_every_check_passes():
    checks = load_checks()
    results = run_cases(checks)
    assert [r for r in results if not r.passed] == []
    assert len(checks) == len(list(builtin_check_dir().glob("*.yaml"))) >= 20


def test_a_wrong_expectation_fails_with_its_reason(tmp_path: Path):
    text = (builtin_check_dir() / "sf-session-not-locked-to-ip.yaml").read_text()
    (tmp_path / "c.yaml").write_text(text.replace("fails: [org-a]", "fails: [org-b]"))
    problems = [p for r in run_cases(load_checks([tmp_path], builtin=False)) for p in r.problems]
    assert "org-a fails; the case says it passes" in problems
    assert "org-b passes; the case says it fails" in problems


def test_a_check_without_a_passing_case_is_refused_by_its_cases(tmp_path: Path):
    text = (builtin_check_dir() / "sf-session-not-locked-to-ip.yaml").read_text()
    (tmp_path / "c.yaml").write_text(
        text.replace("      - {name: org-b, lock_sessions_to_ip: true}\n", "")
    )
    (result,) = [r for r in run_cases(load_checks([tmp_path], builtin=False)) if not r.passed]
    assert result.name == "(coverage)"


@pytest.mark.parametrize(("old", "new", "reason"), [
    ("lock_sessions_to_ip: false", "lock_sessions_to_ip|near: false", "unknown modifier 'near'"),
    ("severity: medium", "severity: urgent", "severity must be one of"),
    ("controls: [ip_restriction]", "controls: [firewall]", "controls are some of"),
    ("  - kind: vendor\n", "  - kind: blog\n", "sources are a list"),
])  # fmt: skip
def test_a_malformed_check_names_its_file_and_key(tmp_path: Path, old: str, new: str, reason):
    text = (builtin_check_dir() / "sf-session-not-locked-to-ip.yaml").read_text()
    assert old in text
    (tmp_path / "bad.yaml").write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError, match=reason) as e:
        load_checks([tmp_path], builtin=False)
    assert "bad.yaml" in str(e.value)


def test_every_check_names_detections_that_exist_in_the_pack():
    stems = {rf.path.stem for rf in load_rules()}
    named = {d for c in load_checks() for d in c.detections}
    assert named and named <= stems, named - stems


def test_the_real_public_fixtures_are_read_with_no_problem():
    model = read_org([REAL])
    files = [p.resolve() for p in REAL.rglob("*") if p.is_file() and p.name != "PROVENANCE.md"]
    assert model.problems == [] and model.skipped == 1  # PROVENANCE.md
    assert sorted(model.files) == sorted(map(str, files))
    holders = model.subjects["permission_holder"]
    # a range of 0.0.0.0–255.255.255.255 restricts nothing
    assert holders["profile/Admin"].get("login_ip_ranges") == 0
    assert holders["profile/Admin"].get("open_login_ip_ranges") == 1
    assert {"ViewAllData", "ModifyAllData", "ApiEnabled"} <= set(
        holders["profile/Admin"].get("powerful")
    )
    # "APIEnabled" as a real file spells it is the API Enabled permission
    assert holders["profile/SuperUser"].get("permissions") == ["ApiEnabled"]
    assert holders["permission_set_group/SalesPersona"].get("permission_sets") == [
        "ReadAccessToTradeStyle"
    ]
    assert holders["profile/Coral Cloud Profile"].get("kind") == "profile"  # MDAPI's `.profile`
    app = model.subjects["connected_app"]["slackApp"]
    assert app.get("self_authorize") is False and app.get("refresh_token_policy") == "infinite"
    assert app.get("ip_relaxation") is None  # absent in the file: not guessed
    org = model.subjects["salesforce_org"]["org"]
    assert org.get("session_timeout_minutes") == 120 and org.get("lock_sessions_to_ip") is False
    okta = model.subjects["okta_org"]["org"]
    assert okta.get("anonymizers_blocked") is True  # the TorAnonymizer zone in the block list
    assert okta.get("phishing_resistant_authenticator") is False  # webauthn is INACTIVE


def test_malformed_xml_names_file_and_line_and_the_rest_is_audited(tmp_path: Path):
    root = tmp_path / "force-app" / "profiles"
    root.mkdir(parents=True)
    shutil.copy(REAL / "salesforce" / "dreaminvest" / "profiles" / "Admin.profile-meta.xml", root)
    (root / "Broken.profile-meta.xml").write_text(
        '<?xml version="1.0"?>\n<Profile xmlns="http://soap.sforce.com/2006/04/metadata">\n'
        "  <userPermissions><enabled>true</name></userPermissions>\n</Profile>\n"
    )
    model = read_org([tmp_path])
    (problem,) = model.problems
    assert problem.where == str(root.resolve() / "Broken.profile-meta.xml") + ":3"
    assert problem.reason == "malformed XML at column 34: mismatched tag"
    assert "profile/Admin" in model.subjects["permission_holder"]


def test_entity_expansion_is_refused_not_expanded(tmp_path: Path):
    root = tmp_path / "profiles"
    root.mkdir()
    (root / "Bomb.profile-meta.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n'
        "<Profile><custom>&b;</custom></Profile>\n"
    )
    problem, nothing = read_org([tmp_path]).problems
    assert problem.where == str(root.resolve() / "Bomb.profile-meta.xml")
    assert problem.reason.startswith("refused: EntitiesForbidden")
    assert nothing.reason.startswith("nothing posture reads was found")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("org")
    simulate(out, customers=1000, employees=40, days=14, seed=5)
    return out


def _inputs(sim: Path) -> list[Path]:
    return [sim / "config", sim / "logs" / "salesforce" / "objects" / "OauthToken.json"]


def test_the_simulated_org_has_the_gaps_its_scenarios_need(sim: Path, tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as store:
        audit = posture(store, _inputs(sim))
    assert audit.problems == []
    failed = {o.check_id for o in audit.outcomes if o.status == "fail"}
    needed = {c for gaps in json.loads((sim / "ground_truth.json").read_text())[
        "posture_gaps"].values() for c in gaps}  # fmt: skip
    assert needed == {c for gaps in GAPS.values() for c in gaps} <= failed
    assert not [o for o in audit.outcomes if o.status == "not_assessed"]
    by_id = {f.check_id: f for f in audit.findings}
    assert [s["name"] for s in by_id["sf-uninstalled-app-with-tokens"].subjects] == [
        "My Ticket Portal"]  # fmt: skip
    assert [s["name"] for s in by_id["sf-dormant-admin"].subjects] == [
        "claude.former-admin@maison.example"]  # fmt: skip
    assert [s["name"] for s in by_id["sf-connected-app-ip-relaxed"].subjects] == ["Drift"]


def test_drift_mfa_turned_off_and_a_new_app_and_rerun_is_idempotent(sim: Path, tmp_path: Path):
    config = tmp_path / "config"
    shutil.copytree(sim / "config", config)
    security = config / "salesforce" / "settings" / "Security.settings-meta.xml"
    security.write_text(security.read_text().replace(
        "<enableMFADirectUILoginOptIn>false", "<enableMFADirectUILoginOptIn>true"))  # fmt: skip
    with Store(tmp_path / "s.duckdb") as store:
        before = posture(store, [config])
        assert "sf-mfa-not-enforced" not in {f.check_id for f in before.findings}
        security.write_text(security.read_text().replace(
            "<enableMFADirectUILoginOptIn>true", "<enableMFADirectUILoginOptIn>false"))  # fmt: skip
        apps = config / "salesforce" / "connectedApps"
        shutil.copy(apps / "Drift.connectedApp-meta.xml", apps / "Helpdesk.connectedApp-meta.xml")
        after = posture(store, [config])
        drift = {f.check_id: f for f in after.findings if f.drift}
        assert drift["sf-mfa-not-enforced"].drift == f"newly failing since audit {before.audit_id}"
        # everyone who signs in interactively, but the admins whose profile requires MFA
        assert len(drift["sf-mfa-not-enforced"].subjects) == len([
            u for u in after.model.of("user")
            if u.get("interactive") and "ForceTwoFactor" not in u.get("permissions")])  # fmt: skip
        assert [s["name"] for s in drift[DRIFT_APP].subjects] == ["Helpdesk"]
        rows = store.scalar("SELECT count(*) FROM posture_findings")
        again = posture(store, [config])
        assert again.audit_id == after.audit_id
        assert store.scalar("SELECT count(*) FROM posture_findings") == rows
        assert store.scalar("SELECT count(*) FROM posture_audits") == 2
        assert {f["check_id"] for f in stored_findings(store)} == {
            f.check_id for f in again.findings}  # fmt: skip


HOSTILE_USER = '<script>alert(1)</script>"@maison.example'
HOSTILE_APP = '"><img src=x onerror=alert(1)>\u202e'


def test_reports_escape_what_the_org_files_say(tmp_path: Path):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "OauthToken.json").write_text(json.dumps({"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "OauthToken"}, "AppName": HOSTILE_APP, "UserId": "005x",
         "LastUsedDate": "2025-01-01T00:00:00.000+0000", "UseCount": 1,
         "CreatedDate": "2024-01-01T00:00:00.000+0000"}]}))  # fmt: skip
    (exports / "User.csv").write_text(
        "Id,Username,IsActive,UserType,Profile.Name,LastLoginDate\n"
        f'005x,"{HOSTILE_USER.replace(chr(34), chr(34) * 2)}",true,Standard,Admin,'
        "2024-01-01T00:00:00.000+0000\n"
    )
    shutil.copytree(REAL / "salesforce" / "dreaminvest", tmp_path / "meta")
    with Store(tmp_path / "s.duckdb") as store:
        audit = posture(store, [tmp_path], as_of=dt.datetime(2026, 1, 1))
    names = {s["name"] for f in audit.findings for s in f.subjects}
    assert HOSTILE_USER in names and HOSTILE_APP in names
    page = to_html(audit, load_checks())
    assert "<script" not in page and "<img" not in page and "\u202e" not in page
    assert "&lt;script&gt;" in page and "\\u202e" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_ocsf_compliance_findings(sim: Path, tmp_path: Path):
    checks = load_checks()
    with Store(tmp_path / "s.duckdb") as store:
        audit = posture(store, _inputs(sim), checks)
    records = to_ocsf(audit, checks)
    assert len(records) == len(checks)
    assert {r["class_uid"] for r in records} == {2003}
    assert {r["type_uid"] for r in records} == {200301}
    by_control = {r["compliance"]["control"]: r for r in records}
    fail = by_control["sf-connected-app-ip-relaxed"]
    assert fail["compliance"]["status_id"] == 3 and fail["severity"] == "Medium"
    assert fail["resources"] == [{"name": "Drift", "type": "connected_app"}]
    passed = by_control["sf-clickjack-csrf-off"]
    assert passed["compliance"]["status_id"] == 1 and passed["resources"] == []


def test_cli_check_json_ocsf_and_html(sim: Path, tmp_path: Path):
    result = runner.invoke(app, ["posture", "check"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output
    db, ocsf, html = tmp_path / "s.duckdb", tmp_path / "f.jsonl", tmp_path / "r.html"
    args = ["posture", *map(str, _inputs(sim)), "--db", str(db), "--ocsf", str(ocsf),
            "--html", str(html), "--json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["checks"]["fail"] == len(body["outcomes"]) - body["checks"]["pass"]
    assert len(ocsf.read_text().splitlines()) == len(body["outcomes"])
    assert "Controls the PIPC cited" in html.read_text()
    missing = runner.invoke(app, ["posture", str(tmp_path / "nowhere"), "--db", str(db)])
    assert missing.exit_code == 2 and "not found" in missing.output


def test_sf_cli_json_wrapper_and_csv_exports_are_read(tmp_path: Path):
    (tmp_path / "users.json").write_text(json.dumps({"status": 0, "result": {
        "totalSize": 1, "done": True, "records": [
            {"attributes": {"type": "User"}, "Id": "005A", "Username": "a@x", "IsActive": True,
             "UserType": "Standard", "Profile": {"Name": "Admin"}}]}}))  # fmt: skip
    (tmp_path / "tokens.csv").write_text(
        "AppName,UserId,CreatedDate,LastUsedDate,UseCount\n"
        "My Ticket Portal,005A,2025-06-01T00:00:00.000+0000,2025-06-02T00:00:00.000+0000,3\n"
        "My Ticket Portal,005A,2025-06-01T00:00:00.000+0000\n"
    )
    model = read_org([tmp_path])
    assert list(model.subjects["user"]) == ["a@x"]
    assert model.subjects["connected_app"]["My Ticket Portal"].get("token_users") == 1
    assert model.subjects["connected_app"]["My Ticket Portal"].get("days_unused") == 0
    # the short row is read with its missing cells empty, not dropped, and said so
    assert [str(p) for p in model.problems] == [
        f"{(tmp_path / 'tokens.csv').resolve()}:3: fewer cells than the header has; the "
        "missing ones are empty"
    ]


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


PROFILE = '<?xml version="1.0" encoding="{enc}"?>\n<Profile xmlns="{ns}">{body}</Profile>\n'
NS = "http://soap.sforce.com/2006/04/metadata"


def _profile(body: str, enc: str = "UTF-8") -> str:
    return PROFILE.format(enc=enc, ns=NS, body=body)


def _perm(name: str, enabled: str = "true") -> str:
    return f"<userPermissions><enabled>{enabled}</enabled><name>{name}</name></userPermissions>"


def test_hostile_shapes_are_reported_and_the_rest_is_audited(tmp_path: Path):
    """What a sweep with hostile inputs found: none may stop the audit or pass unsaid."""
    root = _write(tmp_path, {
        "p/profiles/Bogus.profile-meta.xml": _profile("", enc="x-bogus-9"),
        "p/profiles/Admin.profile-meta.xml": _profile(_perm("ModifyAllData", "1")),
        # a permission set named like the profile must not replace it
        "p/permissionsets/Admin.permissionset-meta.xml": _profile(_perm("RunReports")),
        "okta/policies.json": json.dumps([
            {"id": "p1", "type": "ACCESS_POLICY", "name": "Okta Admin Console",
             "status": "ACTIVE", "conditions": None, "_embedded": ["not", "an", "object"]},
            {"id": "p2", "type": "ACCESS_POLICY", "name": "x", "conditions": None,
             "_embedded": {"rules": [{"type": "ACCESS_POLICY", "actions": {"appSignOn": "x"},
                                      "_links": [], "conditions": {"network": {
                                          "include": [{"id": 1}]}}}]}},
            {"type": "DYNAMIC", "id": {"x": 1}, "usage": "BLOCKLIST", "status": "ACTIVE",
             "proxyType": ["Tor"], "ipServiceCategories": ["ALL_ANONYMIZERS"]},
            {"key": ["webauthn"], "status": "ACTIVE", "type": "security_key"},
        ]),
        "exports/User.json": json.dumps({"totalSize": 3, "done": True, "records": [
            {"attributes": {"type": ["User"]}, "Id": "005A", "Username": "a@x", "IsActive": "1",
             "UserType": "Standard", "Profile": {"Name": "Admin"},
             "LastLoginDate": "2025-01-01T00:00:00.000+0000"},
            {"attributes": {"type": "User"}, "Id": "005B", "Username": "b@x", "IsActive": "yes",
             "Profile": {"Name": {"nested": True}}, "LastLoginDate": "2099-01-01T00:00:00Z"},
            {"attributes": {"type": "User"}, "Id": "005C", "Username": "c@x", "IsActive": "maybe",
             "Profile": {"Name": "Admin"}, "LastLoginDate": "last tuesday"},
        ]}),
        "empty/readme.txt": "nothing here",
    })  # fmt: skip
    model = read_org([root / "p", root / "okta", root / "exports", root / "p"])
    reasons = [p.reason for p in model.problems]
    assert any(r.startswith("cannot decode: unknown encoding") for r in reasons), reasons
    holders = model.subjects["permission_holder"]
    assert holders["profile/Admin"].get("permissions") == ["ModifyAllData"]  # <enabled>1
    assert holders["permission_set/Admin"].get("permissions") == ["RunReports"]
    users = model.subjects["user"]
    assert users["a@x"].get("active") is True and users["a@x"].get("admin") is True
    assert users["b@x"].get("active") is True and users["b@x"].get("profile") is None
    assert users["c@x"].get("active") is None
    # the 2099 login does not become the audit's "now"; the unreadable one is reported
    assert model.as_of == dt.datetime(2025, 1, 1)
    for expected in ("User.Profile.Name is not a single value; left out",
                     "User.IsActive is not a boolean ('maybe'); unknown",
                     "1 User.LastLoginDate value(s) lie in the future; not used for the "
                     "audit's 'as of' time",
                     "1 User.LastLoginDate value(s) are not ISO 8601 times; read as unknown",
                     "policy _embedded is not an object; ignored",
                     "rule actions.appSignOn is not an object; ignored",
                     "rule _links is not an object; ignored",
                     "rule conditions.network.include is not a list of texts; ignored",
                     "zone id is not a text; ignored", "zone proxyType is not a text; ignored",
                     "zone ipServiceCategories is not an object; ignored",
                     "authenticator key is not a text; ignored"):  # fmt: skip
        assert expected in reasons, (expected, reasons)
    # each file once, though its folder was named twice
    assert len(model.files) == len(set(model.files)) == 4  # the bogus encoding is not read
    okta = model.subjects["okta_org"]["org"]
    assert okta.get("anonymizers_blocked") is False
    assert okta.get("admin_console_phishing_resistant") is None  # its rules were unreadable
    nothing = read_org([root / "empty"])
    assert nothing.skipped == 1
    assert [p.reason.split(":")[0] for p in nothing.problems] == ["nothing posture reads was found"]


def test_a_check_says_pass_only_on_inputs_that_tell_it(sim: Path, tmp_path: Path):
    """Helper review: without the OauthToken export no uninstalled app can be seen, and with a
    connected app's file unreadable its checks cannot pass on what is left."""
    with Store(tmp_path / "s.duckdb") as store:
        status = {o.check_id: o for o in posture(store, [sim / "config"]).outcomes}
    uninstalled = status["sf-uninstalled-app-with-tokens"]
    assert uninstalled.status == "not_assessed" and "token_users" in uninstalled.why_not
    config = shutil.copytree(sim / "config", tmp_path / "config")
    app = config / "salesforce" / "connectedApps" / "Drift.connectedApp-meta.xml"
    app.write_text(app.read_text().replace("</label>", "</lable>"))
    with Store(tmp_path / "t.duckdb") as store:
        status = {o.check_id: o for o in posture(store, [config]).outcomes}
    relaxed = status["sf-connected-app-ip-relaxed"]  # Drift was the one failing app
    assert relaxed.status == "not_assessed" and "could not be read" in relaxed.why_not


def test_drift_ignores_checks_the_earlier_audit_could_not_assess(sim: Path, tmp_path: Path):
    config = shutil.copytree(sim / "config", tmp_path / "config")
    exports = shutil.move(config / "salesforce" / "exports", tmp_path / "exports")
    with Store(tmp_path / "s.duckdb") as store:
        first = posture(store, [config])
        assert not [o for o in first.outcomes if o.check_id == "sf-mfa-not-enforced"
                    and o.status != "not_assessed"]  # fmt: skip
        second = posture(store, [config, exports])
        assert [f for f in second.findings if f.drift] == []
        # an input with nothing readable is no audit to compare with
        (tmp_path / "empty").mkdir()
        empty = posture(store, [tmp_path / "empty"])
        assert store.scalar("SELECT count(*) FROM posture_audits WHERE audit_id = ?",
                            [empty.audit_id]) == 0  # fmt: skip


def test_a_misspelt_attribute_is_refused_when_the_check_is_loaded(tmp_path: Path):
    text = (builtin_check_dir() / "sf-session-timeout-long.yaml").read_text()
    (tmp_path / "c.yaml").write_text(
        text.replace("session_timeout_minutes|gt", "session_timout|gt")
    )
    with pytest.raises(ConfigError, match="salesforce_org has no attribute 'session_timout'"):
        load_checks([tmp_path], builtin=False)
    (tmp_path / "c.yaml").write_text(text + "  - {name: broken\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:\d+: not valid YAML"):
        load_checks([tmp_path], builtin=False)
