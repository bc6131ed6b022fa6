"""User configuration: ``crmwatch.toml`` (or ``$CRMWATCH_CONFIG``, or ``--config FILE``).

Example::

    [enrich]
    corporate_cidrs = ["203.0.113.0/24", "2001:db8:100::/48"]
    network_lists = ["networks.csv"]   # replaces the bundled tor/vpn/hosting list

    [incidents]                         # how findings become incidents (docs/scope.md)
    open_level = "high"                 # a finding at or above this level opens one itself
    risk_threshold = 60                 # risk that opens one within risk_window
    risk_window = "24h"
    gap = "24h"                         # how far apart linked findings may be
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from crmwatch.connectors.settings import ConnectorSettings
from crmwatch.errors import ConfigError, Location
from crmwatch.respond.settings import AlertSettings, RespondSettings
from crmwatch.schema import LEVELS
from crmwatch.timeutil import parse_duration

DEFAULT_CONFIG = "crmwatch.toml"


@dataclass(frozen=True)
class EnrichConfig:
    corporate_cidrs: tuple[str, ...] = ()
    network_lists: tuple[Path, ...] = ()


@dataclass(frozen=True)
class IncidentConfig:
    """How findings become incidents (crmwatch.incidents explains each)."""

    open_level: str = "high"
    risk_threshold: int = 60
    risk_window: dt.timedelta = dt.timedelta(hours=24)
    gap: dt.timedelta = dt.timedelta(hours=24)
    # Findings on the victim's own networks up to this long before the attacker-side chain
    # stay in the incident (the call that walks a victim through approving an app).
    lead: dt.timedelta = dt.timedelta(hours=1)
    origin_lookback: dt.timedelta = dt.timedelta(days=7)

    @classmethod
    def from_dict(cls, data: object, where: Location) -> IncidentConfig:
        if not isinstance(data, dict):
            raise ConfigError("[incidents] must be a table", where)
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"[incidents] has no key {unknown[0]!r}", where)
        values: dict = {}
        for key, value in data.items():
            if key == "open_level":
                if value not in LEVELS:
                    raise ConfigError(
                        f"[incidents] open_level must be one of {', '.join(LEVELS)}", where
                    )
                values[key] = value
            elif key == "risk_threshold":
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError("[incidents] risk_threshold must be a whole number > 0",
                                      where)  # fmt: skip
                values[key] = value
            else:
                try:
                    values[key] = parse_duration(value)
                except ValueError as e:
                    raise ConfigError(f"[incidents] {key}: {e}", where) from e
        return cls(**values)


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    incidents: IncidentConfig = field(default_factory=IncidentConfig)
    connectors: ConnectorSettings = field(default_factory=ConnectorSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    respond: RespondSettings = field(default_factory=RespondSettings)

    @classmethod
    def load(cls, path: Path | str | None = None) -> Config:
        """Load the explicit file, else ``$CRMWATCH_CONFIG``, else ./crmwatch.toml if present."""
        explicit = path or os.environ.get("CRMWATCH_CONFIG")
        candidate = Path(explicit) if explicit else Path(DEFAULT_CONFIG)
        if not candidate.exists():
            if explicit:
                raise ConfigError("config file not found", Location(candidate))
            return cls()
        try:
            data = tomllib.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read config: {e}", Location(candidate)) from e
        return cls.from_dict(data, candidate)

    @classmethod
    def from_dict(cls, data: dict, path: Path | None = None) -> Config:
        """Validate every key: a wrong one is an error naming the file, the key and what it
        should be, never a traceback and never a setting silently ignored."""
        where = Location(path or "config")
        known = ("enrich", "incidents", "connectors", "alerts", "respond")
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(f"unknown section {unknown[0]!r} (known: {', '.join(known)})",
                              where)  # fmt: skip
        enrich = data.get("enrich", {})
        if not isinstance(enrich, dict):
            raise ConfigError("[enrich] must be a table, like [enrich] corporate_cidrs = [...]",
                              where)  # fmt: skip
        unknown = sorted(set(enrich) - {f.name for f in fields(EnrichConfig)})
        if unknown:
            raise ConfigError(f"[enrich] has no key {unknown[0]!r}", where)
        cidrs = _strings(enrich, "corporate_cidrs", where)
        for c in cidrs:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError as e:
                raise ConfigError(f"[enrich] corporate_cidrs: {e}", where) from e
        base = path.parent if path else Path.cwd()
        lists = tuple(base / p for p in _strings(enrich, "network_lists", where))
        for p in lists:
            if not p.is_file():
                raise ConfigError("[enrich] network_lists: network list not found", Location(p))
        enrich_config = EnrichConfig(cidrs, lists)
        if lists:  # read them now: a bad row is an error before any file is ingested
            from crmwatch.enrich.ip import NetworkLists

            NetworkLists.load(enrich_config)
        incidents = IncidentConfig()
        if "incidents" in data:
            incidents = IncidentConfig.from_dict(data["incidents"], where)
        connectors = ConnectorSettings()
        if "connectors" in data:
            connectors = ConnectorSettings.from_dict(data["connectors"], where, base)
        alerts = AlertSettings()
        if "alerts" in data:
            alerts = AlertSettings.from_dict(data["alerts"], where, base)
        respond = RespondSettings()
        if "respond" in data:
            respond = RespondSettings.from_dict(data["respond"], where)
        return cls(path, enrich_config, incidents, connectors, alerts, respond)


def _strings(table: dict, key: str, where: Location) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f'[enrich] {key} must be a list of strings, like ["..."]', where)
    return tuple(value)
