"""IP → country, AS organisation, AS number and network class, offline.

Country and AS organisation come from geoip2fast's bundled database (MaxMind GeoLite2 data,
IPv4 and IPv6; its date is recorded in the store's ``meta`` table as ``geoip_database``). That
database carries the AS *organisation* but not the AS *number*: ``asn`` is filled from the
source where it reports one (Okta's ``securityContext.asNumber``) and from the network list for
the organisations it names; baselines key on ``as_org``.

Class precedence: private > corporate > tor > vpn > hosting > unknown.
"""

from __future__ import annotations

import csv
import ipaddress
from dataclasses import dataclass
from functools import cache
from importlib import resources

from crmwatch.config import EnrichConfig
from crmwatch.errors import ConfigError, Location

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CLASS_ORDER = ("tor", "vpn", "hosting")
BUNDLED_LIST = "networks.csv"


@dataclass(frozen=True)
class IpInfo:
    ip: str
    country: str | None
    asn: int | None
    as_org: str | None
    ip_class: str
    class_source: str | None


class _CidrSet:
    """Membership by prefix length: one set lookup per distinct length, not per network."""

    def __init__(self) -> None:
        self.by_len: dict[tuple[int, int], dict[int, str]] = {}

    def add(self, net: Network, label: str) -> None:
        key = (net.version, net.prefixlen)
        self.by_len.setdefault(key, {})[int(net.network_address)] = label

    def match(self, ip: IpAddress) -> str | None:
        bits = ip.max_prefixlen
        value = int(ip)
        for (version, plen), nets in self.by_len.items():
            if version != ip.version:
                continue
            masked = value >> (bits - plen) << (bits - plen) if plen else 0
            if masked in nets:
                return nets[masked]
        return None


@dataclass
class NetworkLists:
    cidrs: dict[str, _CidrSet]
    as_orgs: dict[str, tuple[str, int | None, str]]  # as_org → (class, asn, label)
    corporate: _CidrSet
    sources: tuple[str, ...]

    @classmethod
    def load(cls, config: EnrichConfig) -> NetworkLists:
        files = list(config.network_lists) or [
            resources.files("crmwatch.enrich.data") / BUNDLED_LIST
        ]
        cidrs = {c: _CidrSet() for c in CLASS_ORDER}
        as_orgs: dict[str, tuple[str, int | None, str]] = {}
        for f in files:
            for line_no, row in _rows(f):
                cls_name, kind, match = row.get("class"), row.get("kind"), row.get("match")
                if cls_name not in CLASS_ORDER or kind not in ("cidr", "as_org") or not match:
                    raise ConfigError(f"bad network list row: {row}", Location(str(f), line_no))
                label = row.get("label") or cls_name
                if kind == "cidr":
                    try:
                        cidrs[cls_name].add(ipaddress.ip_network(match, strict=False), label)
                    except ValueError as e:
                        raise ConfigError(str(e), Location(str(f), line_no)) from e
                else:
                    asn = row.get("asn")
                    if asn and not asn.isdigit():
                        raise ConfigError(
                            f"asn must be a number: {asn!r}", Location(str(f), line_no)
                        )
                    as_orgs[match] = (cls_name, int(asn) if asn else None, label)
        corporate = _CidrSet()
        for c in config.corporate_cidrs:
            corporate.add(ipaddress.ip_network(c, strict=False), "corporate")
        return cls(cidrs, as_orgs, corporate, tuple(str(f) for f in files))


def _rows(path) -> list[tuple[int, dict[str, str]]]:
    """Data rows with their line numbers; ``#`` lines are comments (the list's provenance)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read network list (a UTF-8 CSV): {e}", Location(str(path))
        ) from e
    lines = [
        (i, ln)
        for i, ln in enumerate(text.splitlines(), start=1)
        if ln.strip() and not ln.startswith("#")
    ]
    reader = csv.DictReader([ln for _, ln in lines])
    return [(lines[k + 1][0], row) for k, row in enumerate(reader)]


@cache
def _geoip():
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast(geoip2fast_data_file="geoip2fast-asn-ipv6.dat.gz", verbose=False)


def geoip_database() -> str:
    """The bundled database's own description, e.g. its MaxMind release date."""
    # The attribute, not get_database_info(): that recounts every network on each call.
    return str(getattr(_geoip(), "source_info", "unknown"))


def classify_ip(ip_text: str, lists: NetworkLists) -> IpInfo:
    try:
        ip = ipaddress.ip_address(ip_text)
    except ValueError:
        return IpInfo(ip_text, None, None, None, "unknown", None)
    if not ip.is_global:
        return IpInfo(ip_text, None, None, None, "private", "not globally routable")
    country = as_org = None
    geo = _geoip().lookup(ip_text)
    if getattr(geo, "country_code", "") and geo.country_code not in ("--", ""):
        country = geo.country_code
    as_org = getattr(geo, "asn_name", "") or None
    org_entry = lists.as_orgs.get(as_org) if as_org else None
    asn = org_entry[1] if org_entry else None
    if label := lists.corporate.match(ip):
        return IpInfo(ip_text, country, asn, as_org, "corporate", label)
    for cls_name in CLASS_ORDER:
        if label := lists.cidrs[cls_name].match(ip):
            return IpInfo(ip_text, country, asn, as_org, cls_name, label)
        if org_entry and org_entry[0] == cls_name:
            return IpInfo(ip_text, country, asn, as_org, cls_name, org_entry[2])
    return IpInfo(ip_text, country, asn, as_org, "unknown", None)
