"""The org file (``--org``, TOML or YAML): who the controller is, where it is established, who
answers questions, which languages it writes in, and what it has done so far.

Example (TOML)::

    [controller]
    name = "Maison Example SAS"
    establishments = ["FR", "KR", "US"]      # ISO country codes
    languages = ["fr", "en", "ko", "ja"]
    kr_ict_service_provider = true           # Korea's Network Act Art. 48-3 (24-hour report)
    cn_cii_operator = false                  # China: critical information infrastructure
    ma_wisp = true                           # Massachusetts: a written security program

    [contact]                                # DPO or other contact point
    name = "Data Protection Officer"
    email = "dpo@maison.example"
    phone = "+33 1 00 00 00 00"
    address = "1 rue de la Paix, 75002 Paris, France"

    [response]
    contained_at = "2025-06-13T10:00:00Z"
    measures_taken = ["Revoked the connected app's tokens", "Reset the victim's password"]
    measures_proposed = ["Restrict API access to allow-listed IP ranges"]
    self_help = ["Be wary of calls or e-mails that mention your purchases"]
    law_enforcement_delay = false            # was notice delayed for the police? (California)
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from crmwatch.errors import ConfigError, Location
from crmwatch.notify.regimes import ORG_FLAGS
from crmwatch.timeutil import parse_utc, utc_naive


@dataclass
class Org:
    name: str | None = None
    establishments: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    contact: dict[str, str] = field(default_factory=dict)
    contained_at: dt.datetime | None = None
    measures_taken: list[str] = field(default_factory=list)
    measures_proposed: list[str] = field(default_factory=list)
    self_help: list[str] = field(default_factory=list)
    law_enforcement_delay: bool | None = None
    # Facts about the controller some regimes turn on (regimes.ORG_FLAGS); absent: unknown.
    flags: dict[str, bool] = field(default_factory=dict)
    path: Path | None = None

    @property
    def given(self) -> bool:
        return self.path is not None


def load_org(path: Path | None) -> Org:
    """The org file, or an empty Org (every assumption then said in the package)."""
    if path is None:
        return Org()
    if not path.exists():
        raise ConfigError("org file not found", Location(path))
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read org file: {e}", Location(path)) from e
    if not isinstance(data, dict):
        raise ConfigError("org file must be a table/mapping", Location(path))
    where = Location(path)
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(f"unknown section {unknown[0]!r} (known: {', '.join(_KEYS)})", where)
    controller, contact, response = (_table(data, k, where) for k in _KEYS)
    for section, table in zip(_KEYS, (controller, contact, response), strict=True):
        extra = sorted(set(table) - set(_KEYS[section]))
        if extra:
            raise ConfigError(f"{section} has no key {extra[0]!r} (known: "
                              f"{', '.join(_KEYS[section])})", where)  # fmt: skip
    contained = response.get("contained_at")
    if isinstance(contained, str):
        try:
            contained = parse_utc(contained)
        except ValueError as e:
            raise ConfigError(f"response.contained_at: {e}", where) from e
    elif isinstance(contained, dt.datetime):
        contained = utc_naive(contained)
    elif contained is not None:
        raise ConfigError("response.contained_at must be an ISO time", where)
    establishments = [c.upper() for c in _texts(controller, "controller", "establishments", where)]
    bad = [c for c in establishments if len(c) != 2]
    if bad:
        raise ConfigError(
            f"controller.establishments: {bad[0]!r} is not an ISO country code", where
        )
    delay = response.get("law_enforcement_delay")
    if delay is not None and not isinstance(delay, bool):
        raise ConfigError("response.law_enforcement_delay must be true or false", where)
    flags = {}
    for flag in ORG_FLAGS:
        if flag in controller:
            if not isinstance(controller[flag], bool):
                raise ConfigError(f"controller.{flag} must be true or false", where)
            flags[flag] = controller[flag]
    name = controller.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError("controller.name must be text", where)
    return Org(
        name=name,
        establishments=establishments,
        languages=[x.lower() for x in _texts(controller, "controller", "languages", where)],
        contact={k: str(v) for k, v in contact.items()},
        contained_at=contained,
        measures_taken=_texts(response, "response", "measures_taken", where),
        measures_proposed=_texts(response, "response", "measures_proposed", where),
        self_help=_texts(response, "response", "self_help", where),
        law_enforcement_delay=delay,
        flags=flags,
        path=path,
    )


# Sections and their keys: anything else is a typo that would silently drop a setting.
_KEYS: dict[str, tuple[str, ...]] = {
    "controller": ("name", "establishments", "languages", *ORG_FLAGS),
    "contact": ("name", "email", "phone", "address"),
    "response": (
        "contained_at",
        "measures_taken",
        "measures_proposed",
        "self_help",
        "law_enforcement_delay",
    ),
}


def _table(data: dict, key: str, where: Location) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table (a [{key}] section)", where)
    return value


def _texts(table: dict, section: str, key: str, where: Location) -> list[str]:
    value = table.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{section}.{key} must be a list of texts", where)
    return list(value)
