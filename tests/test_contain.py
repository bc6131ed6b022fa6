"""`crmwatch contain` against the loopback API server: a dry run sends no write and prints
each request; --apply sends each once and records it; a protected principal is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.incidents import build_incidents
from crmwatch.ingest import ingest
from crmwatch.store import Store
from tests.breach import ANNA, ANNA_ID, APP, okta_event, write_breach
from tests.fakeapi import OKTA_TOKEN, SF_CLIENT, SF_SECRET, FakeApi

runner = CliRunner()


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    logs = write_breach(tmp_path / "org" / "logs")
    (logs / "okta").mkdir()
    (logs / "okta" / "system_log.ndjson").write_text(
        json.dumps(
            okta_event("u-1", "2025-06-10T08:45:00.000Z", "user.session.start", ANNA, "90.3.99.23")
        )
        + "\n"
    )
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(store, [logs])
        detect(store, load_rules(None))
        iid = next(i.id for i in build_incidents(store) if i.principals == [ANNA])
    api = FakeApi(tmp_path / "org")
    api.start()
    api.user_logins[ANNA_ID] = {"Id": "060000000000001AAA", "IsFrozen": False}
    api.sessions = [{"Id": "0Ak000000000001AAA", "UsersId": ANNA_ID},
                    {"Id": "0Ak000000000002AAA", "UsersId": ANNA_ID},
                    {"Id": "0Ak000000000003AAA", "UsersId": "005000000000002AAA"}]  # fmt: skip
    api.okta_users[ANNA] = "00u1anna"
    monkeypatch.setenv("TEST_OKTA_TOKEN", OKTA_TOKEN)
    monkeypatch.setenv("TEST_SF_SECRET", SF_SECRET)
    config = tmp_path / "crmwatch.toml"
    config.write_text(
        f'[connectors.okta]\nurl = "{api.base}"\ntoken_env = "TEST_OKTA_TOKEN"\n'
        f'[connectors.salesforce]\nlogin_url = "{api.base}"\nclient_id = "{SF_CLIENT}"\n'
        'client_secret_env = "TEST_SF_SECRET"\n')  # fmt: skip
    yield api, db, iid, config
    api.stop()


def _run(db: Path, iid: str, config: Path, *extra: str):
    return runner.invoke(app, ["contain", iid, "--db", str(db), "--config", str(config),
                               *extra])  # fmt: skip


def test_a_dry_run_prints_every_request_and_sends_none(setup):
    api, db, iid, config = setup
    r = _run(db, iid, config)
    assert r.exit_code == 0, r.output
    assert api.mutations == []  # only reads were sent
    out = " ".join(r.output.split())
    assert (
        'PATCH /services/data/v62.0/sobjects/UserLogin/060000000000001AAA {"IsFrozen": true}' in out
    )
    assert "DELETE /services/data/v62.0/sobjects/AuthSession/0Ak000000000001AAA" in out
    assert "0Ak000000000003AAA" not in out  # another user's session
    assert "POST /services/oauth2/revoke token=<DeleteToken of OauthToken" in out
    assert "del-" not in out  # the token itself is never printed
    assert f"Connected Apps OAuth Usage → {APP} → Block" in out
    assert "DELETE /api/v1/users/00u1anna/sessions?oauthTokens=true" in out
    assert "POST /api/v1/users/00u1anna/lifecycle/reset_factors" in out
    assert "POST /api/v1/users/00u1anna/lifecycle/suspend" in out
    with Store(db) as store:
        rows = store.execute("SELECT dry_run, status FROM containment_actions").rows
    assert rows and set(rows) == {(True, "planned")}


def test_apply_sends_each_request_once_and_records_the_answer(setup):
    api, db, iid, config = setup
    r = _run(db, iid, config, "--apply")
    assert r.exit_code == 0, r.output
    sent = [(m, p) for m, p, _ in api.mutations]
    assert len(sent) == len(set(sent)) == 7  # freeze, 2 sessions, 1 token, 3 in Okta
    assert api.user_logins[ANNA_ID]["IsFrozen"] is True
    assert [s["Id"] for s in api.sessions] == ["0Ak000000000003AAA"]
    assert ("POST", "/services/oauth2/revoke", "token=del-0CJ000000000001AAA") in api.mutations
    with Store(db) as store:
        rows = store.execute("SELECT operator, dry_run, status FROM containment_actions").rows
    assert len(rows) == 7 and {(d, s[:5]) for _, d, s in rows} == {(False, "HTTP ")}
    assert all(op for op, _, _ in rows)
    # run again: the user is frozen and the sessions are gone; nothing is sent twice
    before = len(api.mutations)
    again = _run(db, iid, config, "--apply")
    assert again.exit_code == 0
    assert [m for m in api.mutations[before:] if "UserLogin" in m[1] or "AuthSession" in m[1]] == []


def test_a_protected_principal_is_never_touched(setup):
    api, db, iid, config = setup
    config.write_text(config.read_text() + f'[respond]\nprotected = ["{ANNA.upper()}"]\n')
    r = _run(db, iid, config, "--apply")
    assert r.exit_code == 0, r.output
    assert [m for m in api.mutations if "UserLogin" in m[1] or "AuthSession" in m[1]
            or "/api/v1/users" in m[1]] == []  # fmt: skip
    assert "refused: protected" in r.output


def test_the_console_lists_what_was_proposed_and_sent(setup):
    import socket
    import threading
    import time

    import uvicorn

    from crmwatch.console.accounts import add_user
    from crmwatch.console.app import create_app
    from tests.test_console import Client

    _, db, iid, config = setup
    assert _run(db, iid, config).exit_code == 0
    assert _run(db, iid, config, "--apply").exit_code == 0
    with Store(db) as store:
        add_user(store, "ana", "responder", "a long enough password")
    store = Store(db)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        c = Client(sock.getsockname()[1])
        assert c.log_in("ana", "a long enough password").status == 303
        page = c.get(f"/incidents/{iid}").text
        table = page.split('id="containment"', 1)[1].split("</table>", 1)[0]
        assert "proposed (dry run)" in table and "HTTP 204" in table
        assert "freeze_user" in table and "/lifecycle/suspend" in table
        assert "del-" not in page  # no token on the page either
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
        sock.close()


def test_people_are_paired_with_their_own_ids_and_protection_holds_by_any_form(
    tmp_path, monkeypatch
):
    """Two people signing in from one Tor exit are one incident; the protected one (named by
    an 18-character id) is untouched, the other frozen — never each other's UserLogin."""
    from tests.breach import _sf

    logs = tmp_path / "org" / "logs"
    logs.mkdir(parents=True)
    people = {"alice.admin@maison.example": "005000000000002AAA",  # sorts first, id second
              "bob.sales@maison.example": "005000000000001AAA"}  # fmt: skip
    records = [_sf("LoginEvent", n, EventDate=f"2025-06-10T09:0{n}:00.000+0000", Username=u,
                   UserId=i, SourceIp="185.220.101.5", LoginKey=f"LK{n}", Status="Success",
                   LoginUrl="login.salesforce.com", Browser="Chrome 125", Platform="Linux",
                   LoginType="Application")
               for n, (u, i) in enumerate(people.items(), 1)]  # fmt: skip
    (logs / "LoginEvent.json").write_text(json.dumps({"totalSize": 2, "done": True,
                                                      "records": records}))  # fmt: skip
    db = tmp_path / "s.duckdb"
    with Store(db) as store:
        ingest(store, [logs])
        detect(store, load_rules(None))
        incidents = [i for i in build_incidents(store) if set(i.principals) & set(people)]
    assert incidents
    api = FakeApi(tmp_path / "org")
    api.start()
    for n, uid in enumerate(people.values()):
        api.user_logins[uid] = {"Id": f"06000000000000{n}AAA", "IsFrozen": False}
    monkeypatch.setenv("TEST_SF_SECRET", SF_SECRET)
    config = tmp_path / "crmwatch.toml"
    config.write_text(f'[connectors.salesforce]\nlogin_url = "{api.base}"\n'
                      f'client_id = "{SF_CLIENT}"\nclient_secret_env = "TEST_SF_SECRET"\n'
                      '[respond]\nprotected = ["005000000000002AAA"]\n')  # fmt: skip
    try:
        for i in incidents:
            assert _run(db, i.id, config, "--apply").exit_code == 0
    finally:
        api.stop()
    assert api.user_logins["005000000000002AAA"]["IsFrozen"] is False  # alice: protected
    assert api.user_logins["005000000000001AAA"]["IsFrozen"] is True  # bob: frozen
