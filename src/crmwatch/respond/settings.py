"""The ``[alerts]`` table of crmwatch.toml: where incidents are delivered.

[alerts]
min_severity = "medium"                 # incidents below this level are not delivered
console_url = "https://127.0.0.1:8765"  # links in messages (optional)

[[alerts.webhook]]
url = "https://hooks.example/crmwatch"
format = "json"                         # or "slack" (Slack's incoming-webhook payload)
# secret_env = "WEBHOOK_SECRET"         # sent as "Authorization: Bearer <secret>"

[alerts.email]
host = "smtp.example"                   # port 587 with STARTTLS unless told otherwise
port = 587
starttls = true
sender = "crmwatch@maison.example"
to = ["soc@maison.example", "dpo@maison.example"]
# username = "crmwatch"; password_env = "SMTP_PASSWORD"

[alerts.syslog]
host = "siem.example"
port = 514
protocol = "udp"                        # or "tcp" (octet-counted framing, RFC 6587)

[alerts.ocsf]
path = "crmwatch-incidents.jsonl"       # OCSF Incident Findings, one per line
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from crmwatch.connectors.settings import Secret, secure_url, table
from crmwatch.errors import ConfigError, Location
from crmwatch.schema import LEVELS


@dataclass(frozen=True)
class Webhook:
    url: str
    format: str = "json"
    secret: Secret = field(default_factory=Secret)

    @property
    def channel(self) -> str:
        """The name deliveries are logged under: the host and a hash of the URL, never the
        URL itself (a Slack webhook's path is its secret)."""
        parts = urlsplit(self.url)
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:10]
        return f"webhook:{parts.scheme}://{parts.netloc}/…#{digest}"


@dataclass(frozen=True)
class Email:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: Secret = field(default_factory=Secret)


@dataclass(frozen=True)
class Syslog:
    host: str
    port: int = 514
    protocol: str = "udp"


@dataclass(frozen=True)
class AlertSettings:
    min_severity: str = "medium"
    console_url: str | None = None
    webhooks: tuple[Webhook, ...] = ()
    email: Email | None = None
    syslog: Syslog | None = None
    ocsf_path: Path | None = None

    @property
    def channels(self) -> list[str]:
        """The names deliveries are logged under, one per destination."""
        names = [w.channel for w in self.webhooks]
        if self.email:
            names.append(f"email:{','.join(self.email.to)}")
        if self.syslog:
            names.append(f"syslog:{self.syslog.host}:{self.syslog.port}")
        if self.ocsf_path:
            names.append(f"ocsf:{self.ocsf_path}")
        return names

    @classmethod
    def from_dict(cls, data: object, where: Location, base: Path) -> AlertSettings:
        t = table(
            data,
            "alerts",
            {"min_severity", "console_url", "webhook", "email", "syslog", "ocsf"},
            where,
        )
        level = t.get("min_severity", "medium")
        if level not in LEVELS:
            raise ConfigError(f"[alerts] min_severity must be one of {', '.join(LEVELS)}", where)
        hooks = t.get("webhook", [])
        if not isinstance(hooks, list):
            raise ConfigError("[alerts] webhook is a list: [[alerts.webhook]] tables", where)
        webhooks = []
        for h in hooks:
            h = table(h, "alerts.webhook", {"url", "format", "secret_env", "secret_file"}, where)
            if not secure_url(h.get("url")):
                raise ConfigError("[[alerts.webhook]] url must be an https:// URL (http:// only "
                                  "to this machine)", where)  # fmt: skip
            if h.get("format", "json") not in ("json", "slack"):
                raise ConfigError("[[alerts.webhook]] format must be json or slack", where)
            file = h.get("secret_file")
            secret = Secret(h.get("secret_env"), base / file if file else None)
            if secret.file is not None and not secret.file.is_file():
                raise ConfigError("[[alerts.webhook]] secret_file not found", Location(secret.file))
            webhooks.append(Webhook(h["url"], h.get("format", "json"), secret))
        email = None
        if "email" in t:
            e = table(
                t["email"],
                "alerts.email",
                {
                    "host",
                    "port",
                    "starttls",
                    "sender",
                    "to",
                    "username",
                    "password_env",
                    "password_file",
                },
                where,
            )
            to = e.get("to")
            if not isinstance(to, list) or not to or not all(isinstance(x, str) for x in to):
                raise ConfigError("[alerts.email] to must be a list of addresses", where)
            for key in ("host", "sender"):
                if not isinstance(e.get(key), str) or not e[key]:
                    raise ConfigError(f"[alerts.email] needs {key}", where)
            for addr in (e["sender"], *to):
                if any(c in addr for c in "\r\n") or "@" not in addr:
                    raise ConfigError(f"[alerts.email] not an address: {addr!r}", where)
            file = e.get("password_file")
            email = Email(
                e["host"],
                e["sender"],
                tuple(to),
                _port(e.get("port", 587), "alerts.email", where),
                bool(e.get("starttls", True)),
                e.get("username"),
                Secret(e.get("password_env"), base / file if file else None),
            )
        syslog = None
        if "syslog" in t:
            s = table(t["syslog"], "alerts.syslog", {"host", "port", "protocol"}, where)
            if s.get("protocol", "udp") not in ("udp", "tcp"):
                raise ConfigError("[alerts.syslog] protocol must be udp or tcp", where)
            if not isinstance(s.get("host"), str):
                raise ConfigError("[alerts.syslog] needs host", where)
            syslog = Syslog(
                s["host"],
                _port(s.get("port", 514), "alerts.syslog", where),
                s.get("protocol", "udp"),
            )
        ocsf = None
        if "ocsf" in t:
            o = table(t["ocsf"], "alerts.ocsf", {"path"}, where)
            if not isinstance(o.get("path"), str):
                raise ConfigError("[alerts.ocsf] needs path", where)
            ocsf = base / o["path"]
        return cls(level, t.get("console_url"), tuple(webhooks), email, syslog, ocsf)


def _port(value: object, table: str, where: Location) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ConfigError(f"[{table}] port must be a whole number from 1 to 65535", where)
    return value


@dataclass(frozen=True)
class RespondSettings:
    """``[respond]``: who containment never acts on (break-glass administrators), by login
    name or user id."""

    protected: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, data: object, where: Location) -> RespondSettings:
        t = table(data, "respond", {"protected"}, where)
        names = t.get("protected", [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError("[respond] protected must be a list of names", where)
        return cls(frozenset(n.lower() for n in names))
