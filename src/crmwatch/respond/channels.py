"""The ways an incident reaches people: a webhook (crmwatch's JSON, or Slack's incoming-
webhook payload), e-mail over SMTP, syslog (RFC 5424) and a file of OCSF Incident Findings.

Each message says what a responder needs first — severity, who, since when, how many
customers — and links to the console; none carries a customer's identifier or contact
details. Every value from a log is made inert for its medium: Slack's ``&``, ``<`` and ``>``
escaped (Slack, "Formatting text for app surfaces"), syslog structured-data values with
``"``, ``\\`` and ``]`` escaped (RFC 5424 §6.3.3), control characters shown as escapes in mail
headers and bodies.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from crmwatch import __version__
from crmwatch.connectors.http import ConnectorError, Http
from crmwatch.detect.ocsf import SEVERITY, metadata, ms
from crmwatch.incidents import Incident
from crmwatch.markup import visible
from crmwatch.respond.settings import Email, Syslog, Webhook

# OCSF 1.4.0 Incident Finding (schema.ocsf.io/1.4.0/classes/incident_finding): class 2005 in
# Findings; activity 1 Create, 2 Update; the incident profile named in metadata.profiles.
INCIDENT_CLASS = 2005
ACTIVITY = {"opened": (1, "Create"), "escalated": (2, "Update")}
# RFC 5424 severities (§6.2.1) by level; facility 4, security/authorization messages.
SYSLOG_SEVERITY = {"critical": 2, "high": 3, "medium": 4, "low": 5, "informational": 6}
FACILITY = 4
# RFC 5612's enterprise number for documentation examples: crmwatch has none of its own.
SD_ID = "crmwatch@32473"


@dataclass
class Notice:
    """One incident, as delivered: opened, or escalated from ``previous``."""

    incident: Incident
    activity: str  # opened | escalated
    previous: str | None
    affected: int | None
    link: str | None

    @property
    def who(self) -> str:
        i = self.incident
        return ", ".join(i.principals or i.user_ids) or "unknown principal"

    def summary(self) -> str:
        i = self.incident
        rose = f" (was {self.previous})" if self.previous else ""
        return visible(f"[crmwatch] {i.severity.upper()}{rose} {i.id}: {self.who}")

    def lines(self) -> list[str]:
        i = self.incident
        customers = "not scoped yet" if self.affected is None else f"{self.affected:,}"
        objects = (
            ", ".join(
                f"{o['object']} ({o['rows'] if o['rows'] is not None else '?'} rows)"
                for o in i.objects[:5]
            )
            or "-"
        )
        return [
            visible(x)
            for x in (
                f"{i.id} {self.activity}: severity {i.severity}",
                f"who: {self.who}",
                f"source IPs: {', '.join(i.source_ips) or '-'}",
                f"apps: {', '.join(i.apps) or '-'}",
                f"first malicious event: {i.first_malicious_at}",
                f"first alert: {i.first_alert_at}",
                f"objects: {objects}",
                f"affected customers: {customers}",
                f"findings: {'; '.join(i.rules)}",
                *([f"console: {self.link}"] if self.link else []),
            )
        ]

    def json(self) -> dict[str, Any]:
        i = self.incident
        return {
            "source": "crmwatch",
            "version": __version__,
            "event": f"incident.{self.activity}",
            "previous_severity": self.previous,
            "affected_customers": self.affected,
            "link": self.link,
            "incident": {
                k: v
                for k, v in i.to_dict().items()
                if k not in ("alert_ids", "first_malicious_event")
            },
        }


def webhook(hook: Webhook, notice: Notice, **http_options) -> str:
    origin = "/".join(hook.url.split("/", 3)[:3])
    http = Http("webhook", origin, {"Content-Type": "application/json"}, **http_options)
    if hook.secret.given:
        http.headers["Authorization"] = f"Bearer {hook.secret.read('webhook secret')}"
    payload = _slack(notice) if hook.format == "slack" else notice.json()
    resp = http.request("POST", hook.url, json.dumps(payload).encode())
    return f"HTTP {resp.status}; {http.retries} retries"


def _slack_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(notice: Notice) -> dict[str, Any]:
    lines = [_slack_text(x) for x in notice.lines()]
    head = f"*{lines[0]}*"
    if notice.link:  # a link crmwatch built from its own settings and ids
        head += f" <{notice.link}|open in the console>"
    return {
        "text": _slack_text(notice.summary()),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join([head, *lines[1:]])}}
        ],
    }


def email(cfg: Email, notice: Notice, timeout: float = 30.0) -> str:
    msg = EmailMessage()
    msg["Subject"] = notice.summary()
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg.set_content("\n".join(notice.lines()) + "\n")
    try:
        with smtplib.SMTP(cfg.host, cfg.port, timeout=timeout) as smtp:
            if cfg.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if cfg.username:
                smtp.login(cfg.username, cfg.password.read("smtp password"))
            refused = smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as e:
        raise ConnectorError(f"email via {cfg.host}:{cfg.port}: {e}") from e
    if refused:
        raise ConnectorError(f"email: refused for {', '.join(refused)}")
    return f"sent to {len(cfg.to)}"


def _sd_value(text: str) -> str:
    return visible(text).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def syslog_message(notice: Notice, now: dt.datetime | None = None) -> bytes:
    """An RFC 5424 message: header, one structured-data element, then the summary."""
    i = notice.incident
    pri = FACILITY * 8 + SYSLOG_SEVERITY.get(i.severity, 5)
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    host = (socket.gethostname() or "-")[:255].replace(" ", "_")
    params = {
        "incident": i.id,
        "severity": i.severity,
        "event": notice.activity,
        "who": notice.who,
        "first_malicious": i.first_malicious_at,
        "affected": "" if notice.affected is None else str(notice.affected),
    }
    sd = "[" + SD_ID + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    header = f"<{pri}>1 {stamp} {host} crmwatch - incident {sd} "
    return header.encode() + b"\xef\xbb\xbf" + notice.summary().encode("utf-8")


def syslog(cfg: Syslog, notice: Notice, timeout: float = 10.0) -> str:
    data = syslog_message(notice)
    try:
        if cfg.protocol == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(data, (cfg.host, cfg.port))
        else:  # octet counting (RFC 6587 §3.4.1)
            with socket.create_connection((cfg.host, cfg.port), timeout=timeout) as s:
                s.sendall(str(len(data)).encode() + b" " + data)
    except OSError as e:
        raise ConnectorError(f"syslog to {cfg.host}:{cfg.port}: {e}") from e
    return f"{len(data)} bytes over {cfg.protocol}"


def ocsf_finding(notice: Notice) -> dict[str, Any]:
    i = notice.incident
    activity_id, activity = ACTIVITY[notice.activity]
    severity_id = SEVERITY.get(i.severity, 0)
    return {
        "class_uid": INCIDENT_CLASS,
        "class_name": "Incident Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": INCIDENT_CLASS * 100 + activity_id,
        "time": ms(dt.datetime.now(dt.UTC).replace(tzinfo=None)),
        "severity_id": severity_id,
        "severity": i.severity.capitalize(),
        "status_id": 1,
        "status": "New",
        "metadata": metadata(profiles=["incident"]),
        "finding_info_list": [{"uid": a, "title": "crmwatch alert"} for a in i.alert_ids],
        "desc": "; ".join(i.rules),
        "src_url": notice.link,
        "start_time": ms(dt.datetime.fromisoformat(i.first_malicious_at.removesuffix("Z"))),
        "end_time": ms(dt.datetime.fromisoformat(i.last_event_at.removesuffix("Z"))),
        "unmapped": {
            "incident_id": i.id,
            "principals": i.principals,
            "source_ips": i.source_ips,
            "apps": i.apps,
            "affected_customers": notice.affected,
            "previous_severity": notice.previous,
        },
    }


def ocsf_file(path: Path, notice: Notice) -> str:
    line = json.dumps(ocsf_finding(notice), ensure_ascii=False) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
    except OSError as e:
        raise ConnectorError(f"ocsf file {path}: {e.strerror}") from e
    return f"appended to {path.name}"
