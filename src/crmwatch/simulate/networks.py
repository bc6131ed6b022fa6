"""Where the realistic org's traffic comes from: address pools, time zones and holidays.

Every pool is a real allocation of the organisation it names, checked against the bundled
geoip database by the tests (``tests/test_simulate.py``), so that enrichment sees simulated
traffic as it would see a real company's:

- **Office egress** goes through the boutique ISP's NAT pool: a /24 to a /22 that hands out
  another address most days (RFC 4787 §4.1 names the two "IP address pooling" behaviours,
  arbitrary and paired; Cisco's PAT documentation: without paired pooling "the next available
  address in the IP address pool is allocated", and a paired mapping lasts only while the
  host's sessions do).
- **Home broadband** re-addresses every one to seven days (dynamic residential addressing;
  the ranges are each ISP's residential blocks).
- **Mobile carriers** put phones behind carrier-grade NAT: a new public address per session
  from a large pool (RFC 6598's shared space inside, RFC 6888's CGN requirements; the public
  address is the carrier's pool's, not the subscriber's).
- **Hotels** are on a business ISP of the destination country.

Only the offices the security team knew about are declared in the simulated crmwatch.toml
(:data:`DECLARED`): the rest of the pools classify as ordinary ISP addresses, as they do in
an org whose configuration lags behind its network.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from dataclasses import dataclass
from functools import cached_property
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Pool:
    """Addresses one organisation hands out, as CIDR blocks (all checked to be its own)."""

    org: str  # the AS organisation the bundled geoip database names
    country: str  # "" where cloud blocks geolocate to several countries
    cidrs: tuple[str, ...]

    @cached_property
    def _nets(self) -> tuple[ipaddress.IPv4Network, ...]:
        return tuple(ipaddress.ip_network(c) for c in self.cidrs)

    def pick(self, rng: random.Random) -> str:
        net = self._nets[rng.randrange(len(self._nets))]
        return str(net.network_address + rng.randrange(1, net.num_addresses - 1))


# The boutiques' office lines: the NAT pool of each office's ISP (the clean org's fixed
# office address lies inside it).
OFFICE_POOLS: dict[str, Pool] = {
    "KR": Pool("Korea Telecom", "KR", ("121.134.8.0/22",)),
    "JP": Pool("SoftBank Corp.", "JP", ("126.33.10.0/23",)),
    "CN": Pool("China Unicom Beijing Province Network", "CN", ("123.112.5.0/24",)),
    "FR": Pool("Orange", "FR", ("90.3.8.0/22",)),
    "US": Pool("COMCAST-7922", "US", ("73.162.10.0/23",)),
    "GB": Pool("British Telecommunications PLC", "GB", ("109.144.4.0/22",)),
    "IT": Pool("Telecom Italia", "IT", ("79.20.5.0/24",)),
    "AE": Pool("Emirates Integrated Telecommunications Company PJSC", "AE", ("94.200.4.0/23",)),
    "SG": Pool("Singtel Fibre Broadband", "SG", ("116.14.5.0/24",)),
    "HK": Pool("HKT Limited", "HK", ("113.28.4.0/23",)),
}

# What IT had written into crmwatch.toml: headquarters whole, some boutiques' first /24, the
# rest not at all.
DECLARED: tuple[str, ...] = (
    "90.3.8.0/22",  # Paris headquarters and boutique
    "79.20.5.0/24",  # Milan
    "109.144.4.0/24",  # London: a quarter of the pool
    "73.162.10.0/24",  # New York: half of the pool
    "121.134.10.0/24",  # Seoul: a quarter of the pool
    "116.14.5.0/24",  # Singapore
)

HOME_ISPS: dict[str, tuple[Pool, ...]] = {
    "KR": (Pool("LG DACOM Corporation", "KR", ("1.209.16.0/20", "1.209.32.0/20")),),
    "JP": (
        Pool("NTT Communications Corporation", "JP", ("153.156.0.0/16",)),
        Pool("SoftBank Corp.", "JP", ("60.65.0.0/16",)),
    ),
    "CN": (Pool("Chinanet", "CN", ("183.6.0.0/16",)),),
    "FR": (
        Pool("Free SAS", "FR", ("82.64.0.0/16",)),
        Pool("Societe Francaise Du Radiotelephone - SFR SA", "FR", ("77.158.0.0/16",)),
    ),
    "US": (
        Pool("COMCAST-7922", "US", ("24.5.0.0/16",)),
        Pool("TWC-12271-NYC", "US", ("66.108.0.0/16",)),
    ),
    "GB": (Pool("Virgin Media", "GB", ("86.5.0.0/16", "62.31.0.0/16")),),
    "IT": (Pool("Fastweb", "IT", ("93.45.0.0/16", "2.224.0.0/16")),),
    "AE": (
        Pool(
            "Emirates Telecommunications Group Company (etisalat Group) Pjsc",
            "AE",
            ("86.96.0.0/16", "94.56.0.0/16"),
        ),
    ),
    "SG": (Pool("SingNet", "SG", ("165.21.0.0/20", "165.21.32.0/20")),),
    "HK": (Pool("HKT Limited", "HK", ("219.76.0.0/16", "58.152.0.0/16")),),
}

CARRIERS: dict[str, tuple[Pool, ...]] = {
    "KR": (Pool("SK Telecom", "KR", ("223.38.0.0/16",)),),
    "JP": (Pool("NTT DOCOMO, INC.", "JP", ("49.98.0.0/16",)),),
    "CN": (
        Pool(
            "China Mobile Communications Group Co., Ltd.",
            "CN",
            ("117.136.128.0/20", "117.136.144.0/20", "117.136.160.0/20"),
        ),
    ),
    "FR": (
        Pool("Bouygues Telecom SA", "FR", ("80.215.0.0/16",)),
        Pool("Free Mobile SAS", "FR", ("37.170.0.0/16",)),
    ),
    "US": (
        Pool("T-MOBILE-AS21928", "US", ("172.56.0.0/16",)),
        Pool("CELLCO-PART", "US", ("174.205.0.0/16",)),
    ),
    "GB": (
        Pool("Three", "GB", ("92.40.0.0/16",)),
        Pool("British Telecommunications PLC", "GB", ("31.94.0.0/16",)),  # EE
    ),
    "IT": (Pool("Wind Tre S.p.A.", "IT", ("151.46.0.0/16",)),),
    "AE": (Pool("Emirates Integrated Telecommunications Company PJSC", "AE", ("5.30.0.0/16",)),),
    "SG": (
        Pool("MobileOne Ltd. MobileInternet Service Provider Singapore", "SG", ("175.156.0.0/16",)),
    ),
    "HK": (Pool("HKT Limited", "HK", ("42.2.0.0/16",)),),  # CSL
}

# Hotel Wi-Fi in the countries staff travel to: a business ISP of the destination.
HOTELS: dict[str, Pool] = {
    "FR": Pool("Societe Francaise Du Radiotelephone - SFR SA", "FR", ("77.158.0.0/16",)),
    "IT": Pool("Fastweb", "IT", ("2.224.0.0/16",)),
    "GB": Pool("Virgin Media", "GB", ("62.31.0.0/16",)),
    "US": Pool("TWC-12271-NYC", "US", ("66.108.0.0/16",)),
    "JP": Pool("NTT Communications Corporation", "JP", ("123.225.0.0/16",)),
    "KR": Pool("Korea Telecom", "KR", ("61.74.0.0/20",)),
    "HK": Pool("HKT Limited", "HK", ("58.152.0.0/16",)),
    "SG": Pool("Starhub Ltd", "SG", ("101.127.0.0/20",)),
    "AE": Pool(
        "Emirates Telecommunications Group Company (etisalat Group) Pjsc", "AE", ("94.56.0.0/16",)
    ),
}

# A chat vendor on autoscaling cloud egress: many addresses, one AS (Google Cloud).
VENDOR_EGRESS = Pool(
    "GOOGLE-CLOUD-PLATFORM", "US", ("34.102.0.0/16", "34.120.0.0/16", "34.149.0.0/16")
)
# The clienteling integration onboarded mid-period runs on Azure in the Netherlands.
# (Azure's West Europe blocks geolocate to NL, GB or IE address by address: country "".)
CLIENTELING_EGRESS = Pool("MICROSOFT-CORP-MSN-AS-BLOCK", "", ("20.101.0.0/16", "20.50.0.0/16"))

ZONES: dict[str, ZoneInfo] = {
    code: ZoneInfo(name)
    for code, name in {
        "KR": "Asia/Seoul",
        "JP": "Asia/Tokyo",
        "CN": "Asia/Shanghai",
        "FR": "Europe/Paris",
        "US": "America/New_York",
        "GB": "Europe/London",
        "IT": "Europe/Rome",
        "AE": "Asia/Dubai",
        "SG": "Asia/Singapore",
        "HK": "Asia/Hong_Kong",
    }.items()
}

# Public holidays of 2025 that fall in the periods the simulator is usually run over (June,
# October–November). Headquarters staff take them off; boutiques open with a skeleton shift.
HOLIDAYS: dict[str, frozenset[dt.date]] = {
    code: frozenset(dt.date.fromisoformat(d) for d in days)
    for code, days in {
        "KR": ("2025-06-03", "2025-06-06", "2025-10-03", "2025-10-06", "2025-10-07",
               "2025-10-08", "2025-10-09"),
        "JP": ("2025-07-21", "2025-10-13", "2025-11-03", "2025-11-24"),
        "CN": ("2025-06-02", "2025-10-01", "2025-10-02", "2025-10-03", "2025-10-06",
               "2025-10-07", "2025-10-08"),
        "FR": ("2025-06-09", "2025-07-14", "2025-11-11"),
        "US": ("2025-06-19", "2025-07-04", "2025-11-27"),
        "GB": ("2025-08-25",),
        "IT": ("2025-06-02", "2025-11-01"),
        "AE": ("2025-06-05", "2025-06-06", "2025-06-09", "2025-06-26"),
        "SG": ("2025-06-07", "2025-10-20"),
        "HK": ("2025-07-01", "2025-10-01", "2025-10-07", "2025-10-29"),
    }.items()
}  # fmt: skip


def local(country: str, date: dt.date, hour: float) -> dt.datetime:
    """``hour`` o'clock (a float) on ``date`` in the country's zone, as naive UTC: the local
    working day moves in UTC when daylight saving time starts or ends."""
    h = int(hour)
    m = round((hour - h) * 60)
    when = dt.datetime(date.year, date.month, date.day, tzinfo=ZONES[country])
    when += dt.timedelta(hours=h, minutes=m)
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def utc_offset(country: str, date: dt.date) -> float:
    """The country's UTC offset in hours at noon on ``date`` (DST included)."""
    noon = dt.datetime(date.year, date.month, date.day, 12, tzinfo=ZONES[country])
    off = noon.utcoffset()
    return off.total_seconds() / 3600 if off else 0.0
