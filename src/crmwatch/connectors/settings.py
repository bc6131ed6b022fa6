"""The ``[connectors.okta]`` and ``[connectors.salesforce]`` tables of crmwatch.toml.

Secrets never sit in the file itself: each is named by an environment variable
(``…_env``) or a file (``…_file``) that only its owner may read (mode 0600 or stricter), and
they are read when a pull starts, never logged.

    [connectors.okta]
    url = "https://maison.okta.com"
    token_env = "OKTA_API_TOKEN"            # an API token (SSWS), or an OAuth service app:
    # client_id = "0oa…"; private_key_file = "okta-key.pem"   (scope okta.logs.read)

    [connectors.salesforce]
    login_url = "https://login.salesforce.com"
    client_id = "3MVG…"
    client_secret_env = "SF_CLIENT_SECRET"  # client-credentials flow, or the JWT bearer flow:
    # username = "crmwatch@maison.example"; private_key_file = "sf-key.pem"
    api_version = "62.0"
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from crmwatch.errors import ConfigError, Location

# Event Monitoring objects read with a high-water mark on EventDate (then EventIdentifier),
# and the standard objects read on their creation time (then Id).
EVENT_OBJECTS = (
    "ApiEvent",
    "LoginEvent",
    "ReportEvent",
    "BulkApiResultEventStore",
    "ListViewEvent",
    "LoginAsEvent",
)
STANDARD_OBJECTS = ("LoginHistory", "SetupAuditTrail", "OauthToken")


@dataclass(frozen=True)
class Secret:
    """Where a secret is: an environment variable's name, or a file's path."""

    env: str | None = None
    file: Path | None = None

    def read(self, what: str) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"{what}: the environment variable {self.env} is not set")
            return value.strip()
        if self.file:
            try:
                mode = self.file.stat().st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise ConfigError(
                        f"{what}: {self.file} may be read by others (chmod 600 it)",
                        Location(self.file),
                    )
                return self.file.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ConfigError(
                    f"{what}: cannot read it: {e.strerror}", Location(self.file)
                ) from e
        raise ConfigError(f"{what}: not configured")

    @property
    def given(self) -> bool:
        return bool(self.env or self.file)


@dataclass(frozen=True)
class OktaSettings:
    url: str
    token: Secret = field(default_factory=Secret)
    client_id: str | None = None
    private_key: Secret = field(default_factory=Secret)
    page_size: int = 1000


@dataclass(frozen=True)
class SalesforceSettings:
    login_url: str = "https://login.salesforce.com"
    client_id: str = ""
    client_secret: Secret = field(default_factory=Secret)
    username: str | None = None
    private_key: Secret = field(default_factory=Secret)
    api_version: str = "62.0"
    objects: tuple[str, ...] = EVENT_OBJECTS + STANDARD_OBJECTS
    event_log_files: bool = True
    interval: str | None = None  # Hourly | Daily | None (both)
    # Stop pulling when the org's daily API requests (Sforce-Limit-Info) pass this share.
    max_api_share: float = 0.5


@dataclass(frozen=True)
class ConnectorSettings:
    okta: OktaSettings | None = None
    salesforce: SalesforceSettings | None = None

    @classmethod
    def from_dict(cls, data: object, where: Location, base: Path) -> ConnectorSettings:
        if not isinstance(data, dict):
            raise ConfigError("[connectors] must be a table", where)
        unknown = sorted(set(data) - {"okta", "salesforce"})
        if unknown:
            raise ConfigError(
                f"[connectors] has no connector {unknown[0]!r} (known: okta, salesforce)", where
            )
        okta = _okta(data["okta"], where, base) if "okta" in data else None
        sf = _salesforce(data["salesforce"], where, base) if "salesforce" in data else None
        return cls(okta, sf)


def table(value: object, name: str, allowed: set[str], where: Location) -> dict:
    """A crmwatch.toml table ``[name]`` that has only the keys ``allowed``."""
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table", where)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(
            f"[{name}] has no key {unknown[0]!r} (known: {', '.join(sorted(allowed))})", where
        )
    return value


def secure_url(value: object) -> bool:
    """An https:// URL, or http:// to this machine (a local relay, the tests' servers)."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


def _table(value: object, name: str, allowed: set[str], where: Location) -> dict:
    """A ``[connectors.name]`` table, its values strings but for the few that are not."""
    t = table(value, f"connectors.{name}", allowed, where)
    for k, v in t.items():
        if k not in ("objects", "event_log_files", "page_size", "max_api_share") and not isinstance(
            v, str
        ):
            raise ConfigError(f"[connectors.{name}] {k} must be a string", where)
    return t


def _secret(t: dict, key: str, base: Path) -> Secret:
    if t.get(f"{key}_env") and t.get(f"{key}_file"):
        raise ConfigError(f"give {key}_env or {key}_file, not both")
    file = t.get(f"{key}_file")
    return Secret(t.get(f"{key}_env"), base / file if file else None)


def _url(value: object, key: str, name: str, where: Location) -> str:
    if not secure_url(value):
        raise ConfigError(f"[connectors.{name}] {key} must be an https:// URL (http:// only "
                          "to this machine)", where)  # fmt: skip
    return str(value).rstrip("/")


def _okta(value: object, where: Location, base: Path) -> OktaSettings:
    t = _table(
        value,
        "okta",
        {
            "url",
            "token_env",
            "token_file",
            "client_id",
            "private_key_env",
            "private_key_file",
            "page_size",
        },
        where,
    )
    s = OktaSettings(
        _url(t.get("url"), "url", "okta", where),
        _secret(t, "token", base),
        t.get("client_id"),
        _secret(t, "private_key", base),
        t.get("page_size", 1000),
    )
    if not s.token.given and not (s.client_id and s.private_key.given):
        raise ConfigError(
            "[connectors.okta] needs token_env / token_file (an API token), or "
            "client_id and private_key_file (an OAuth service app)",
            where,
        )
    if (
        isinstance(s.page_size, bool)
        or not isinstance(s.page_size, int)
        or not (1 <= s.page_size <= 1000)
    ):
        raise ConfigError("[connectors.okta] page_size must be 1 to 1000", where)
    return s


def _salesforce(value: object, where: Location, base: Path) -> SalesforceSettings:
    names = {f.name for f in fields(SalesforceSettings)} - {"client_secret", "private_key"}
    t = _table(
        value,
        "salesforce",
        names | {"client_secret_env", "client_secret_file", "private_key_env", "private_key_file"},
        where,
    )
    objects = t.get("objects", list(EVENT_OBJECTS + STANDARD_OBJECTS))
    if not isinstance(objects, list) or not all(
        isinstance(o, str) and o.isidentifier() for o in objects
    ):
        raise ConfigError("[connectors.salesforce] objects must be a list of object names", where)
    if t.get("interval") not in (None, "Hourly", "Daily"):
        raise ConfigError("[connectors.salesforce] interval must be Hourly or Daily", where)
    share = t.get("max_api_share", 0.5)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ConfigError("[connectors.salesforce] max_api_share must be above 0, at most 1", where)
    s = SalesforceSettings(
        _url(t.get("login_url", "https://login.salesforce.com"), "login_url", "salesforce", where),
        t.get("client_id", ""),
        _secret(t, "client_secret", base),
        t.get("username"),
        _secret(t, "private_key", base),
        t.get("api_version", "62.0"),
        tuple(objects),
        bool(t.get("event_log_files", True)),
        t.get("interval"),
        float(share),
    )
    if not s.client_id:
        raise ConfigError(
            "[connectors.salesforce] needs client_id (the connected app's consumer key)", where
        )
    if not s.client_secret.given and not (s.username and s.private_key.given):
        raise ConfigError(
            "[connectors.salesforce] needs client_secret_env / _file (client "
            "credentials flow), or username and private_key_file (JWT bearer "
            "flow)",
            where,
        )
    return s
