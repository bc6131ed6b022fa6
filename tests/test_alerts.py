"""`crmwatch alerts deliver` to real receivers on loopback: an HTTP server for the webhook and
Slack payloads, aiosmtpd for e-mail, UDP and TCP sockets for syslog, and a file for OCSF."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.incidents import build_incidents, stored_incidents
from crmwatch.ingest import ingest
from crmwatch.respond.channels import Notice, syslog_message
from crmwatch.respond.deliver import deliver, due
from crmwatch.respond.settings import AlertSettings, Email, Syslog, Webhook
from crmwatch.schema import LEVELS
from crmwatch.scope.exposure import scope_incident
from crmwatch.store import Store
from tests.breach import ANNA, SNAPSHOT, write_breach

runner = CliRunner()


class Receiver:
    """Webhook receiver: answers ``fail`` 500s first, then 200; keeps every body."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.fail = fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail:
                    receiver.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                receiver.headers.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("alerts")
    db = tmp / "s.duckdb"
    with Store(db) as store:
        ingest(store, [write_breach(tmp / "logs")])
        detect(store, load_rules(None))
        incidents = build_incidents(store)
        anna = next(i for i in incidents if i.principals == [ANNA])
        scope_incident(store, anna.id, [SNAPSHOT])
    return db


@pytest.fixture
def receivers(tmp_path: Path):
    hook, slack, mailbox = Receiver(fail=2), Receiver(), Mailbox()
    with socket.socket() as probe:  # a free port for the SMTP sink
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    settings = AlertSettings(
        min_severity="low",
        console_url="http://127.0.0.1:8765",
        webhooks=(Webhook(hook.url), Webhook(slack.url, "slack")),
        email=Email("127.0.0.1", "crmwatch@maison.example", ("soc@maison.example",),
                    smtp_port, starttls=False),
        syslog=Syslog("127.0.0.1", udp.getsockname()[1], "udp"),
        ocsf_path=tmp_path / "incidents.jsonl",
    )  # fmt: skip
    yield settings, hook, slack, mailbox, udp
    hook.close()
    slack.close()
    smtp.stop()
    udp.close()


def test_each_incident_reaches_every_channel_once_then_again_when_it_escalates(
    store_path, receivers, tmp_path
):
    settings, hook, slack, mailbox, udp = receivers
    db = tmp_path / "s.duckdb"
    db.write_bytes(store_path.read_bytes())
    with Store(db) as store:
        incidents = [i for i in stored_incidents(store) if i.severity != "informational"]
        assert incidents
        done = deliver(store, settings, backoff=0.01)
        assert {d.status for d in done} == {"delivered"}
        assert len(done) == len(incidents) * len(settings.channels)
        # the webhook answered 500 twice: retried, delivered once per incident
        assert sorted(b["incident"]["id"] for b in hook.bodies) == sorted(i.id for i in incidents)
        assert max(d.attempts for d in done if d.channel.startswith("webhook:http")) == 3
        assert {b["event"] for b in hook.bodies} == {"incident.opened"}
        assert all(b["blocks"][0]["text"]["type"] == "mrkdwn" for b in slack.bodies)
        assert len(mailbox.messages) == len(incidents)
        datagrams = [udp.recv(65535) for _ in incidents]
        assert all(d.startswith(b"<") and b" crmwatch - incident [crmwatch@32473 " in d
                   for d in datagrams)  # fmt: skip
        lines = [json.loads(x) for x in settings.ocsf_path.read_text().splitlines()]
        assert [x["class_uid"] for x in lines] == [2005] * len(incidents)
        assert {x["activity_name"] for x in lines} == {"Create"}
        # nothing more is owed: a second run sends nothing
        assert due(store, settings) == [] and deliver(store, settings) == []
        # the scoped incident's message carries its count of affected customers
        anna = next(i for i in incidents if i.principals == [ANNA])
        assert next(b for b in hook.bodies
                    if b["incident"]["id"] == anna.id)["affected_customers"] == 8  # fmt: skip
        # an incident's severity rises to critical: delivered again, as an escalation
        low = min(incidents, key=lambda i: LEVELS.index(i.severity))
        assert low.severity != "critical"
        body = json.loads(store.scalar("SELECT body FROM incidents WHERE incident_id = ?",
                                       [low.id]))  # fmt: skip
        store.execute("UPDATE incidents SET body = ? WHERE incident_id = ?",
                      [json.dumps({**body, "severity": "critical"}), low.id])  # fmt: skip
        again = deliver(store, settings, backoff=0.01)
        assert {(d.incident_id, d.activity) for d in again} == {(low.id, "escalated")}
        assert len(again) == len(settings.channels)
        assert hook.bodies[-1]["event"] == "incident.escalated"
        assert hook.bodies[-1]["previous_severity"] == low.severity
        assert json.loads(settings.ocsf_path.read_text().splitlines()[-1])["activity_id"] == 2
        logged = store.scalar("SELECT count(*) FROM deliveries WHERE status = 'delivered'")
        assert logged == len(done) + len(again)


def test_a_channel_that_stays_down_is_logged_failed_and_owed_next_run(store_path, tmp_path):
    db = tmp_path / "s.duckdb"
    db.write_bytes(store_path.read_bytes())
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = AlertSettings(min_severity="low",
                             webhooks=(Webhook(f"http://127.0.0.1:{dead}/hook"),))  # fmt: skip
    with Store(db) as store:
        done = deliver(store, settings, attempts=2, backoff=0.01)
        assert done and {d.status for d in done} == {"failed"}
        assert all(d.attempts == 2 for d in done)
        assert len(due(store, settings)) == len(done)  # still owed


def test_log_values_are_inert_in_every_medium(store_path):
    with Store(store_path) as store:
        incident = stored_incidents(store)[0]
    hostile = replace(incident, principals=['x"] <script>\n\u202eevil@x.example'],
                      apps=["<!channel> *bold*"])  # fmt: skip
    notice = Notice(hostile, "opened", None, 3, None)
    from crmwatch.respond.channels import _slack

    slack = json.dumps(_slack(notice))
    assert "<script>" not in slack and "&lt;script&gt;" in slack
    assert "<!channel>" not in slack and "&lt;!channel&gt;" in slack
    message = syslog_message(notice)
    # the value's quote and bracket escaped, its newline and override made visible
    assert b'who="x\\"\\] <script>\\\\x0a\\\\u202eevil@x.example"' in message
    assert b"\n" not in message
    assert "\n" not in notice.summary() and "\u202e" not in notice.summary()


def test_deliver_without_channels_is_a_usage_error(tmp_path):
    r = runner.invoke(app, ["alerts", "deliver", "--db", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 2 and "no channel in [alerts]" in r.output


def test_syslog_over_tcp_is_octet_counted(store_path):
    with Store(store_path) as store:
        incident = stored_incidents(store)[0]
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    from crmwatch.respond.channels import syslog

    notice = Notice(incident, "opened", None, None, None)
    syslog(Syslog("127.0.0.1", listener.getsockname()[1], "tcp"), notice)
    conn, _ = listener.accept()
    data = b""
    while chunk := conn.recv(65535):
        data += chunk
    conn.close()
    listener.close()
    length, _, message = data.partition(b" ")
    assert int(length) == len(message) and message.startswith(b"<")
    assert message.endswith(notice.summary().encode())


def test_a_webhook_url_is_not_written_to_the_log_or_screen():
    hook = Webhook("https://hooks.slack.com/services/T000/B000/SECRETPATH", "slack")
    assert "SECRETPATH" not in hook.channel and hook.channel.startswith(
        "webhook:https://hooks.slack.com/…#")  # fmt: skip
