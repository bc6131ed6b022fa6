"""User configuration: ``crmwatch.toml`` (or ``$CRMWATCH_CONFIG``, or ``--config FILE``).

Example::

    [enrich]
    corporate_cidrs = ["203.0.113.0/24", "2001:db8:100::/48"]
    network_lists = ["networks.csv"]   # replaces the bundled tor/vpn/hosting list
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from crmwatch.errors import ConfigError, Location

DEFAULT_CONFIG = "crmwatch.toml"


@dataclass(frozen=True)
class EnrichConfig:
    corporate_cidrs: tuple[str, ...] = ()
    network_lists: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    enrich: EnrichConfig = field(default_factory=EnrichConfig)

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
        enrich = data.get("enrich", {})
        cidrs = tuple(enrich.get("corporate_cidrs", ()))
        for c in cidrs:
            try:
                ipaddress.ip_network(c, strict=False)
            except ValueError as e:
                raise ConfigError(f"corporate_cidrs: {e}", Location(path or "config")) from e
        base = path.parent if path else Path.cwd()
        lists = tuple(base / p for p in enrich.get("network_lists", ()))
        for p in lists:
            if not p.exists():
                raise ConfigError("network list not found", Location(p))
        return cls(path, EnrichConfig(cidrs, lists))
