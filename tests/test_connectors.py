"""`crmwatch pull` against a loopback server speaking the Okta and Salesforce API shapes
(tests/fakeapi.py), serving a simulated org's log files: the pull must land exactly what a
file ingest of the same files lands, survive 429s, 500s, cut bodies and dropped connections,
resume where it stopped (also after kill -9), and stop at the API-usage share it may take."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from crmwatch.config import Config
from crmwatch.connectors import okta as okta_conn
from crmwatch.connectors import salesforce as sf_conn
from crmwatch.connectors.http import ConnectorError
from crmwatch.connectors.settings import OktaSettings, SalesforceSettings, Secret
from crmwatch.connectors.state import Pull, position
from crmwatch.errors import ConfigError
from crmwatch.ingest import ingest
from crmwatch.simulate.org import simulate
from crmwatch.store import Store
from tests.fakeapi import OKTA_TOKEN, SF_CLIENT, SF_SECRET, FakeApi, Fault

SINCE = dt.datetime(2025, 5, 1)
FAST = {"backoff": 0.01}  # retries in milliseconds, not seconds
# What a pulled event must agree on with the same event ingested from its file.
COLUMNS = ("event_id", "ts", "source", "source_type", "category", "outcome", "user_id",
           "user_name", "session_key", "login_key", "src_ip", "user_agent", "client_app",
           "object", "operation", "query", "rows", "job_id", "native_id")  # fmt: skip


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("org")
    simulate(out, customers=1000, employees=40, days=14, seed=5)
    return out


@pytest.fixture(scope="module")
def from_files(org: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set]:
    """The events of a file ingest of the same logs, per source."""
    with Store(tmp_path_factory.mktemp("files") / "f.duckdb") as store:
        ingest(store, [org / "logs"])
        return _events(store)


def _events(store: Store) -> dict[str, set]:
    rows = store.execute(f"SELECT {', '.join(COLUMNS)} FROM events_base").rows
    return {src: {r for r in rows if r[2] == src} for src in ("okta", "salesforce")}


@pytest.fixture
def api(org: Path, monkeypatch: pytest.MonkeyPatch):
    fake = FakeApi(org)
    fake.start()
    monkeypatch.setenv("TEST_OKTA_TOKEN", OKTA_TOKEN)
    monkeypatch.setenv("TEST_SF_SECRET", SF_SECRET)
    yield fake
    fake.stop()


def _okta(api: FakeApi, **kw) -> OktaSettings:
    return OktaSettings(api.base, Secret(env="TEST_OKTA_TOKEN"), **kw)


def _sf(api: FakeApi, **kw) -> SalesforceSettings:
    return SalesforceSettings(api.base, SF_CLIENT, Secret(env="TEST_SF_SECRET"), **kw)


def _pull_both(store: Store, api: FakeApi, spool: Path, **okta_http) -> None:
    s, f = _okta(api), _sf(api)
    okta_conn.pull_okta(store, s, spool / "okta", Config(), since=SINCE,
                        http=okta_conn.client(s, **{**FAST, **okta_http}))  # fmt: skip
    sf_conn.pull_salesforce(store, f, spool / "sf", Config(), since=SINCE,
                            http=sf_conn.client(f, **FAST))  # fmt: skip


def test_a_full_pull_lands_what_the_file_ingest_lands(api, from_files, tmp_path):
    with Store(tmp_path / "p.duckdb") as store:
        _pull_both(store, api, tmp_path / "spool")
        pulled = _events(store)
        pulls = store.execute("SELECT connector, status, pages FROM connector_pulls").rows
    for source in ("okta", "salesforce"):
        assert pulled[source] == from_files[source], source
    assert len(from_files["okta"]) > api.page  # several pages were followed
    assert {(c, s) for c, s, _ in pulls} == {("okta", "ok"), ("salesforce", "ok")}
    # both sources' cursors were followed: more than one page of the busiest object
    assert any("/query/01g" in p for _, p in api.requests)
    assert any(p.startswith("/api/v1/logs?after=") for _, p in api.requests)


def test_a_second_pull_resumes_and_adds_only_what_is_new(api, org, tmp_path):
    with Store(tmp_path / "p.duckdb") as store:
        s = _okta(api)
        latest = api.okta[-40:]
        api.okta = api.okta[:-40]  # the last 40 events have not happened yet
        first = okta_conn.pull_okta(store, s, tmp_path / "spool", Config(), since=SINCE,
                                    http=okta_conn.client(s, **FAST))  # fmt: skip
        again = okta_conn.pull_okta(store, s, tmp_path / "spool", Config(),
                                    http=okta_conn.client(s, **FAST))  # fmt: skip
        api.okta += latest
        later = okta_conn.pull_okta(store, s, tmp_path / "spool", Config(),
                                    http=okta_conn.client(s, **FAST))  # fmt: skip
        total = store.scalar("SELECT count(*) FROM events_base WHERE source = 'okta'")
    assert (first.inserted, again.inserted, later.inserted) == (len(api.okta) - 40, 0, 40)
    assert total == len(api.okta)
    # the resumed pulls asked for the page after the last one stored, not from the start
    resumed = [p for _, p in api.requests if p.startswith("/api/v1/logs")][-3:]
    assert all("after=" in p for p in resumed)


def test_rate_limits_server_errors_and_cut_bodies_are_survived(api, from_files, tmp_path):
    api.faults = [Fault("/api/v1/logs", "429"), Fault("/api/v1/logs", "500", 2),
                  Fault("/api/v1/logs", "truncate"), Fault("/api/v1/logs", "drop"),
                  Fault("/query", "503"), Fault("/LogFile", "500"),
                  Fault("/services/oauth2/token", "502")]  # fmt: skip
    with Store(tmp_path / "p.duckdb") as store:
        _pull_both(store, api, tmp_path / "spool")
        pulled = _events(store)
        retries = dict(store.execute("SELECT connector, retries FROM connector_pulls").rows)
    assert pulled == from_files
    assert all(f.times == 0 for f in api.faults)  # every fault was met
    assert retries["okta"] >= 5 and retries["salesforce"] >= 2


def test_refused_credentials_stop_at_once_and_move_nothing(api, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_OKTA_TOKEN", "wrong")
    s = _okta(api)
    with Store(tmp_path / "p.duckdb") as store:
        with pytest.raises(ConnectorError, match="HTTP 401: the credentials were refused"):
            okta_conn.pull_okta(store, s, tmp_path / "spool", Config(), since=SINCE,
                                http=okta_conn.client(s, **FAST))  # fmt: skip
        # the stream still starts where asked: nothing was stored, so nothing moved past
        (where,) = store.execute("SELECT position FROM connector_state").rows
        assert where[0].startswith("/api/v1/logs?since=2025-05-01")
        assert store.execute("SELECT status FROM connector_pulls").rows == [("failed",)]
    assert sum(p.startswith("/api/v1/logs") for _, p in api.requests) == 1  # no retry
    # a missing permission (403) is said just as plainly
    monkeypatch.setenv("TEST_OKTA_TOKEN", OKTA_TOKEN)
    api.faults = [Fault("/api/v1/logs", "403")]
    with Store(tmp_path / "p2.duckdb") as store, pytest.raises(ConnectorError, match="HTTP 403"):
        okta_conn.pull_okta(store, s, tmp_path / "spool2", Config(), since=SINCE,
                            http=okta_conn.client(s, **FAST))  # fmt: skip


def test_a_redirect_is_not_followed_with_the_credentials(api, org, tmp_path):
    other = FakeApi(org)
    other.start()
    try:
        api.faults = [Fault("/api/v1/logs", f"redirect:{other.base}/api/v1/logs")]
        s = _okta(api)
        with Store(tmp_path / "p.duckdb") as store, pytest.raises(ConnectorError,
                                                                  match="redirect"):  # fmt: skip
            okta_conn.pull_okta(store, s, tmp_path / "spool", Config(), since=SINCE,
                                http=okta_conn.client(s, **FAST))  # fmt: skip
        assert other.requests == []  # the token never left for the other host
    finally:
        other.stop()


def test_the_oauth_flows_sign_their_assertions(api, from_files, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "key.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))  # fmt: skip
    pem.chmod(0o600)
    api.public_key = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    okta = OktaSettings(api.base, client_id="0oaservice", private_key=Secret(file=pem))
    sf = SalesforceSettings(api.base, SF_CLIENT, username="crmwatch@maison.example",
                            private_key=Secret(file=pem), objects=("LoginHistory",),
                            event_log_files=False)  # fmt: skip
    with Store(tmp_path / "p.duckdb") as store:
        okta_conn.pull_okta(store, okta, tmp_path / "o", Config(), since=SINCE,
                            http=okta_conn.client(okta, **FAST))  # fmt: skip
        sf_conn.pull_salesforce(store, sf, tmp_path / "s", Config(), since=SINCE,
                                http=sf_conn.client(sf, **FAST))  # fmt: skip
        assert _events(store)["okta"] == from_files["okta"]
        assert store.scalar("SELECT count(*) FROM events_base WHERE source_type = "
                            "'api:LoginHistory'") == len(api.objects["LoginHistory"])  # fmt: skip
    # a key others may read is refused before any request
    pem.chmod(0o644)
    with pytest.raises(ConfigError, match="may be read by others"):
        okta_conn.client(okta)


def test_the_pull_stops_at_its_share_of_the_orgs_api_requests(api, from_files, tmp_path):
    f = _sf(api)
    with Store(tmp_path / "p.duckdb") as store:
        api.api_used, api.api_limit = 7450, 15000  # crmwatch may take the org to 50 %
        result = sf_conn.pull_salesforce(store, f, tmp_path / "s", Config(), since=SINCE,
                                         http=sf_conn.client(f, **FAST))  # fmt: skip
        assert result.status == "stopped" and "7500 of its 15000" in result.detail
        assert api.api_used == 7500  # not one request more
        part = store.scalar("SELECT count(*) FROM events_base")
        # the next day's allowance: the pull resumes where it stopped and completes
        api.api_used = 0
        rest = sf_conn.pull_salesforce(store, f, tmp_path / "s", Config(),
                                       http=sf_conn.client(f, **FAST))  # fmt: skip
        assert rest.status == "ok" and 0 < part < part + rest.inserted
        assert _events(store)["salesforce"] == from_files["salesforce"]


def test_a_pull_killed_at_any_point_and_run_again_gives_the_same_store(api, org, from_files,
                                                                       tmp_path):  # fmt: skip
    (tmp_path / "crmwatch.toml").write_text(
        f'[connectors.okta]\nurl = "{api.base}"\ntoken_env = "TEST_OKTA_TOKEN"\npage_size = 50\n'
        f'[connectors.salesforce]\nlogin_url = "{api.base}"\nclient_id = "{SF_CLIENT}"\n'
        'client_secret_env = "TEST_SF_SECRET"\n')  # fmt: skip
    api.page = 50
    db = tmp_path / "p.duckdb"
    env = {**os.environ, "CRMWATCH_CONFIG": str(tmp_path / "crmwatch.toml")}
    for connector, pages in (("okta", 5), ("salesforce", 12)):
        command = [sys.executable, "-m", "crmwatch", "pull", connector, "--since",
                   "2025-05-01", "--db", str(db)]  # fmt: skip
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        spool = tmp_path / "p.pull" / connector
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if spool.is_dir() and len(list(spool.iterdir())) >= pages:
                break  # some pages stored (one perhaps half-written), more to come
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, "the pull ended before it was killed"
        again = subprocess.run([*command[:-4], "--db", str(db)], env=env, capture_output=True,
                               text=True)  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
    with Store(db) as store:
        assert _events(store) == from_files


def test_connector_settings_are_checked_when_the_file_is_read(tmp_path):
    bad = [
        ('[connectors.okta]\nurl = "https://x.okta.com"\n', "needs token_env"),
        ('[connectors.okta]\nurl = "ftp://x"\ntoken_env = "T"\n', "https:// URL"),
        ('[connectors.okta]\nurl = "http://okta.example"\ntoken_env = "T"\n', "https:// URL"),
        ('[connectors.okta]\nurl = "https://x.okta.com"\ntoken_env = "T"\ntoken_file = "f"\n',
         "not both"),
        ('[connectors.okta]\nurl = "https://x.okta.com"\ntoken_env = "T"\npage_size = true\n',
         "page_size"),
        ('[alerts.syslog]\nhost = "siem"\nport = "abc"\n', "port must be"),
        ('[[alerts.webhook]]\nurl = "http://hooks.example/x"\n', "https:// URL"),
        ('[connectors.github]\n', "no connector 'github'"),
        ('[connectors.salesforce]\nclient_secret_env = "S"\n', "needs client_id"),
        ('[connectors.salesforce]\nclient_id = "c"\nclient_secret_env = "S"\n'
         'max_api_share = 2\n', "max_api_share"),
    ]  # fmt: skip
    for text, said in bad:
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(ConfigError, match=said):
            Config.load(tmp_path / "c.toml")
    ok = Config.load(_write(tmp_path / "ok.toml", '[connectors.salesforce]\nclient_id = "c"\n'
                                                  'client_secret_file = "secret"\n'))  # fmt: skip
    assert ok.connectors.salesforce.client_secret.file == tmp_path / "secret"
    assert dataclasses.replace(ok.connectors.salesforce).objects[0] == "ApiEvent"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


### Streamed log files (issue 16: no stage holds a whole input file in memory) ###

BIG_COPIES = 24  # the simulated org's largest EventLogFile, made ~6 MB


@pytest.fixture(scope="module")
def big_org(org: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An org whose only log is one multi-MB EventLogFile: the simulated org's largest,
    its rows repeated with distinct REQUEST_IDs (so none is a duplicate of another)."""
    out = tmp_path_factory.mktemp("big_org")
    elf = out / "logs" / "salesforce" / "elf"
    elf.mkdir(parents=True)
    source = max((org / "logs" / "salesforce" / "elf").glob("*_URI.csv"),
                 key=lambda p: p.stat().st_size)  # fmt: skip
    with source.open(newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    rid = header.index("REQUEST_ID")
    with (elf / source.name).open("w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow(header)
        for k in range(BIG_COPIES):
            w.writerows([*r[:rid], f"{r[rid]}{k:02d}", *r[rid + 1 :]] for r in rows)
    return out


@pytest.fixture
def big_api(big_org: Path, monkeypatch: pytest.MonkeyPatch):
    fake = FakeApi(big_org)
    fake.start()
    monkeypatch.setenv("TEST_SF_SECRET", SF_SECRET)
    yield fake
    fake.stop()


def _pull_files(api: FakeApi, store: Store, spool: Path) -> Pull:
    f = _sf(api, objects=())
    return sf_conn.pull_salesforce(store, f, spool, Config(), since=SINCE,
                                   http=sf_conn.client(f, **FAST))  # fmt: skip


def _spooled(spool: Path) -> list[str]:
    return sorted(p.name for p in spool.iterdir()) if spool.exists() else []


@pytest.mark.parametrize("fault", [None, "503", "short", "truncate", "drop"])
def test_a_multi_mb_log_file_is_streamed_to_the_spool_and_ingested(big_api, big_org, fault,
                                                                   tmp_path):  # fmt: skip
    """Whole at once, or after a 503, a body cut off half-way (Content-Length unmet), a whole
    answer shorter than LogFileLength, a dropped connection: the same file, the same events."""
    (rec,) = big_api.elf
    source = Path(rec["_path"])
    assert source.stat().st_size > 5 * 2**20
    big_api.faults = [Fault("/LogFile", fault)] if fault else []
    spool = tmp_path / "spool"
    with Store(tmp_path / "p.duckdb") as store:
        pull = _pull_files(big_api, store, spool)
        pulled = _events(store)["salesforce"]
    with Store(tmp_path / "f.duckdb") as store:
        ingest(store, [source])
        from_file = _events(store)["salesforce"]
    (name,) = _spooled(spool)  # under its final name, no .part left
    landed = spool / name
    assert landed.read_bytes() == source.read_bytes()
    assert (landed.stat().st_mode & 0o777, spool.stat().st_mode & 0o777) == (0o600, 0o700)
    lines = source.read_bytes().count(b"\n")
    assert (pull.status, pull.records, pull.retries) == ("ok", lines - 1, 1 if fault else 0)
    assert pulled == from_file and len(pulled) == lines - 1
    assert all(f.times == 0 for f in big_api.faults)


def test_a_log_file_longer_than_its_record_says_is_refused(big_api, tmp_path):
    (rec,) = big_api.elf
    rec["LogFileLength"] = 1000  # the body runs ~6 MB past it
    spool = tmp_path / "spool"
    with Store(tmp_path / "p.duckdb") as store:
        with pytest.raises(ConnectorError,
                           match=rf"EventLogFile {rec['Id']} is over 1,049,701 bytes; refused"):  # fmt: skip
            _pull_files(big_api, store, spool)
        assert store.execute("SELECT status FROM connector_pulls").rows == [("failed",)]
        # the stream still starts where asked, for the next pull
        assert position(store, "salesforce", "EventLogFile") == f"{SINCE.isoformat()}|"
        assert store.scalar("SELECT count(*) FROM events_base") == 0
    assert _spooled(spool) == []  # neither the file nor its .part
    assert sum("/LogFile" in p for _, p in big_api.requests) == 1  # refused, not retried


def test_a_log_file_refused_by_permission_is_not_retried(big_api, tmp_path):
    big_api.faults = [Fault("/LogFile", "403")]
    spool = tmp_path / "spool"
    with Store(tmp_path / "p.duckdb") as store, pytest.raises(
        ConnectorError, match=r"GET /services/data/v[\d.]+/sobjects/EventLogFile/\w+/LogFile: "
        r"HTTP 403: the credentials were refused or lack a permission"
    ):  # fmt: skip
        _pull_files(big_api, store, spool)
    assert _spooled(spool) == []
    assert sum("/LogFile" in p for _, p in big_api.requests) == 1


def test_a_download_holds_no_whole_file_in_memory(big_api, tmp_path):
    """A 50 MB body goes to disk with a traced peak of a few MB: the chunk buffer, not the
    body (the fake server sends it with sendfile, so its side allocates nothing either)."""
    body = tmp_path / "big.csv"
    line = b'"URI","' + b"x" * 90 + b'"\n'
    with body.open("wb") as f:
        f.write(b'"EVENT_TYPE","URI"\n')
        for _ in range(50):
            f.write(line * (2**20 // len(line)))
    size = body.stat().st_size
    assert size > 48 * 2**20
    rec = {**big_api.elf[0], "Id": "0ATbig000000000AAA", "LogFileLength": size,
           "_path": str(body)}  # fmt: skip
    big_api.elf.append(rec)
    http = sf_conn.client(_sf(big_api), **FAST)
    with (tmp_path / "out.csv").open("wb") as out:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            records = sf_conn.log_file(http, "/services/data/v62.0", rec, out)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert records == body.read_bytes().count(b"\n") - 1
    assert (tmp_path / "out.csv").read_bytes() == body.read_bytes()
    assert peak < 4 * 2**20, f"peak {peak:,} bytes for a {size:,}-byte body"
