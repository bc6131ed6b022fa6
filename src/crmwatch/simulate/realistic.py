"""A realistic month of benign CRM activity: the noise real companies' logs are made of.

The clean org (``--noise clean``, :mod:`crmwatch.simulate.benign`) is regular by
construction: one office address per boutique, one home address per person, business hours
in fixed offsets. Rules tuned on it learn nothing about precision. This module writes the
same retailer the way its logs really look (docs/scenarios.md lists each source of noise with
the public facts it follows, and the ground truth labels every person-day with the noise that
shaped it, so ``crmwatch eval`` can say which noise each false positive came from):

- office egress from the ISP's NAT pool, only partly declared in crmwatch.toml;
- home broadband re-addressed every 1–7 days; hybrid work at home;
- the Salesforce mobile app on carrier-grade NAT (a new address per session) and on home
  Wi-Fi, reading through the REST API;
- business trips: hotel Wi-Fi, a local eSIM or the home carrier's roaming, the company's
  office abroad;
- new hires and leavers; new laptops and phones (with an MFA enrolment); browser upgrades;
- Login-As by the CRM administrators, who are also the support desk;
- the administrator's scheduled monthly Data Loader export from headquarters;
- a clienteling integration onboarded mid-period on Azure, a chat vendor on autoscaling
  Google Cloud egress, the nightly marketing sync from AWS;
- boutique weekend shifts, public holidays, and local hours that follow daylight saving time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import random
from dataclasses import dataclass, field

from crmwatch.simulate.activity import Log, User, sf_id
from crmwatch.simulate.benign import (
    DRIFT_APP,
    DRIFT_UA,
    Org,
    _marketing_sync,
)
from crmwatch.simulate.networks import (
    CARRIERS,
    CLIENTELING_EGRESS,
    DECLARED,
    HOLIDAYS,
    HOME_ISPS,
    HOTELS,
    OFFICE_POOLS,
    VENDOR_EGRESS,
    Pool,
    local,
    utc_offset,
)
from crmwatch.simulate.world import BY_CODE, STAFF_SHARE

# The noise sources, as ground_truth.json names them (docs/scenarios.md describes each).
SOURCES: dict[str, str] = {
    "office_nat_pool": "office egress from a part of the ISP's NAT pool crmwatch.toml omits",
    "home_readdressing": "home broadband on an address the person has not used before",
    "mobile_cgnat": "the Salesforce mobile app on a carrier's NAT pool",
    "trip": "a business trip abroad",
    "new_hire": "a new hire's first two weeks",
    "leaver": "a leaver's last day",
    "new_device": "a new laptop or phone (with an MFA enrolment)",
    "browser_upgrade": "a browser upgraded to a new major version",
    "login_as": "Login-As by an administrator",
    "admin_data_loader": "the administrator's scheduled Data Loader export",
    "new_integration": "an integration onboarded mid-period",
    "vendor_autoscaling": "a vendor integration on autoscaling cloud egress",
    "weekend_holiday_shift": "work on a weekend or a public holiday",
    "dst_change": "the days around a daylight-saving-time change",
}

# Browsers of the period: Chrome 137 → 138 rolled out in late June 2025.
CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36"
)
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36"
)
EDGE = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/{v}.0.0.0 Safari/537.36 Edg/{v}.0.0.0"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.5 Safari/605.1.15"
)
# The Salesforce mobile app's user agent, in the Mobile SDK's own format
# (forcedotcom/SalesforceMobileSDK-iOS, SalesforceSDKManager: "SalesforceMobileSDK/%@ %@/%@
# (%@) %@/%@ %@%@ uid_%@ ftr_%@ %@", the last part being the web view's user agent).
MOBILE_IOS = (
    "SalesforceMobileSDK/12.2.0 iOS/18.5 (iPhone) Salesforce/256.010(2560100) Native "
    "uid_{uid} ftr_ Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
)
MOBILE_ANDROID = (
    "SalesforceMobileSDK/12.2.0 android mobile/15 (SM-S921B) Salesforce/256.010(2560100) "
    "Native uid_{uid} ftr_ Mozilla/5.0 (Linux; Android 15; SM-S921B Build/AP3A.240905.015; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/137.0.0.0 Mobile Safari/537.36"
)
MOBILE_APPS = {"ios": "Salesforce for iOS", "android": "Salesforce for Android"}
# The boutique team's shared reports (one per country each), run and exported week after week.
TEAM_REPORTS = ("Client book", "Birthdays next 7 days", "No visit in 90 days", "New clients")

DATA_LOADER_APP = "Dataloader Bulk"
DATA_LOADER_UA = "Dataloader/62.0.2 (Windows Server 2022; Java 17.0.11)"
CLIENTELING_APP = "Clienteling Cloud"
CLIENTELING_UA = "ClientelingSync/1.4 okhttp/4.12.0"

# Rates (docs/scenarios.md gives the facts behind them).
TRIPS_PER_PERSON_MONTH = 0.04
HIRES_PER_PERSON_MONTH = 0.03
LEAVERS_PER_PERSON_MONTH = 0.02
LAPTOPS_PER_PERSON_MONTH = 0.02
PHONES_PER_PERSON_MONTH = 0.03
MOBILE_APP_USERS = 0.65
WORK_FROM_HOME = {"advisor": 0.03, "manager": 0.12, "admin": 0.35}
FOUNDING = 22  # make_org: a manager and an advisor per country, and the two administrators


@dataclass
class Habits:
    """One person's devices, networks and working pattern over the period."""

    user: User
    home: Pool
    carrier: Pool
    desktop: str  # format string with {v}, or a fixed user agent
    chrome_upgrade_day: int
    mobile: str | None  # "ios" | "android" | None (no app)
    first_day: int = 0
    last_day: int | None = None
    sunday: bool = False
    weekday_off: int = 2  # boutique staff who work Saturday take a weekday off
    export_day: int = 0  # a manager's day for the weekly client-book export
    home_ip: str = ""
    home_until: int = -1
    home_seen: set[str] = field(default_factory=set)
    office_ip: str = ""
    laptop_day: int | None = None
    phone_day: int | None = None
    uid: str = ""

    def active(self, day: int) -> bool:
        return day >= self.first_day and (self.last_day is None or day <= self.last_day)

    def desktop_ua(self, day: int) -> str:
        fmt = self.desktop
        if self.laptop_day is not None and day >= self.laptop_day:
            fmt = SAFARI_MAC if "Chrome" in fmt else CHROME_WIN
        return fmt.format(v=138 if day >= self.chrome_upgrade_day else 137)

    def mobile_ua(self, day: int) -> str:
        kind = self.mobile_kind(day)
        return (MOBILE_IOS if kind == "ios" else MOBILE_ANDROID).format(uid=self.uid)

    def mobile_kind(self, day: int) -> str:
        kind = self.mobile or "ios"
        if self.phone_day is not None and day >= self.phone_day:
            kind = "android" if kind == "ios" else "ios"
        return kind


@dataclass(frozen=True)
class Trip:
    start: int
    days: int
    dest: str
    lodging: str  # office | hotel
    phone: str  # esim | roaming
    hotel_ip: str

    def covers(self, day: int) -> bool:
        return self.start <= day < self.start + self.days


@dataclass
class Where:
    """Where a session comes from: the address, its AS organisation (as Okta reports it),
    its country, and the noise that put it there."""

    ip: str
    as_org: str
    country: str
    labels: tuple[str, ...] = ()


def realistic_staff(rng: random.Random, org: Org, days: int) -> None:
    """Add the period's new hires to ``org`` and give every person habits (stored on the org).

    The first ``FOUNDING`` people (a manager and an advisor per country, the administrators)
    neither leave nor travel: scenarios pick their victims among them, and a victim abroad on
    the attack day would make the scenario's first malicious event ambiguous."""
    months = days / 30
    codes, weights = list(STAFF_SHARE), list(STAFF_SHARE.values())
    base = len(org.users)
    for i in range(max(1, round(HIRES_PER_PERSON_MONTH * base * months))):
        n = base + i
        code = rng.choices(codes, weights)[0]
        c = BY_CODE[code]
        first = c.romanised[rng.randrange(len(c.romanised))][0] if c.romanised else (
            c.first_names[rng.randrange(len(c.first_names))])  # fmt: skip
        last = c.romanised[rng.randrange(len(c.romanised))][1] if c.romanised else (
            c.last_names[rng.randrange(len(c.last_names))])  # fmt: skip
        first = "".join(ch for ch in first if ch.isascii() and ch != " ") + str(n)
        org.users.append(User(
            n, first, last.replace(" ", ""), code, "manager" if i % 5 == 4 else "advisor",
            f"{c.office}.{10 + n % 200}", f"{c.home}.{20 + n % 200}", f"00u{n:05d}maison",
            CHROME_WIN.format(v=137), sf_id("005", 500 + n),
        ))  # fmt: skip
    habits: dict[int, Habits] = {}
    for u in org.users:
        desktop = rng.choices((CHROME_WIN, CHROME_MAC, EDGE, SAFARI_MAC), (50, 15, 15, 20))[0]
        h = Habits(
            u,
            rng.choice(HOME_ISPS[u.country]),
            rng.choice(CARRIERS[u.country]),
            desktop,
            rng.randrange(max(1, days // 3), max(2, 2 * days // 3 + 1)),
            rng.choice(("ios", "android")) if rng.random() < MOBILE_APP_USERS else None,
            sunday=rng.random() < 0.2,
            weekday_off=rng.randrange(5),
            export_day=rng.randrange(6),
            uid=f"{rng.getrandbits(64):016x}",
        )
        if u.n >= base:
            h.first_day = rng.randrange(2, max(3, days - 2))
        habits[u.n] = h
    movable = org.users[FOUNDING:base]
    leavers = min(len(movable), round(LEAVERS_PER_PERSON_MONTH * base * months))
    for u in rng.sample(movable, leavers):
        habits[u.n].last_day = rng.randrange(3, max(4, days - 1))
    for u in rng.sample(org.users, round(LAPTOPS_PER_PERSON_MONTH * len(org.users) * months)):
        habits[u.n].laptop_day = rng.randrange(1, days)
    for u in rng.sample(org.users, round(PHONES_PER_PERSON_MONTH * len(org.users) * months)):
        if habits[u.n].mobile:
            habits[u.n].phone_day = rng.randrange(1, days)
    org.habits = habits
    org.trips = _trips(rng, org, days)


def staffing(org: Org) -> dict[str, list[dict]]:
    """Who joined and who left in the period (day numbers from the first day), and who
    travelled where, for ground_truth.json."""
    return {
        "hires": [{"user": h.user.username, "first_day": h.first_day}
                  for h in org.habits.values() if h.first_day > 0],
        "leavers": [{"user": h.user.username, "last_day": h.last_day}
                    for h in org.habits.values() if h.last_day is not None],
        "trips": [{"user": org.habits[n].user.username, "first_day": t.start, "days": t.days,
                   "to": t.dest, "lodging": t.lodging, "phone": t.phone}
                  for n, t in sorted(org.trips.items())],
    }  # fmt: skip


def _trips(rng: random.Random, org: Org, days: int) -> dict[int, Trip]:
    travellers = [u for u in org.users if u.n >= FOUNDING]
    count = max(1, round(TRIPS_PER_PERSON_MONTH * len(travellers) * days / 30))
    trips: dict[int, Trip] = {}
    for u in rng.sample(travellers, min(count, len(travellers))):
        h = org.habits[u.n]
        length = rng.randint(2, 5)
        lo = h.first_day + 1
        hi = (h.last_day if h.last_day is not None else days) - length
        if hi <= lo:
            continue
        if u.country == "FR":
            dest = rng.choice(("IT", "GB", "US", "JP", "KR", "HK"))
        else:
            dest = "FR" if rng.random() < 0.6 else rng.choice(("US", "GB", "JP", "HK", "SG"))
        if dest == u.country:
            dest = "FR"
        trips[u.n] = Trip(
            rng.randrange(lo, hi),
            length,
            dest,
            rng.choice(("office", "hotel")),
            "esim" if rng.random() < 0.4 else "roaming",
            HOTELS[dest].pick(rng),
        )
    return trips


_DECLARED_NETS = tuple(ipaddress.ip_network(c) for c in DECLARED)


def _declared(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in _DECLARED_NETS)


def realistic(log: Log, org: Org, rng: random.Random, start: dt.datetime, days: int) -> int:
    """Every benign record of the period; returns the user-days (people × days employed)."""
    admins = org.staff(role="admin")
    user_days = 0
    for u in org.users:
        log.oauth_token(
            start + dt.timedelta(hours=rng.uniform(1, 100)), u,
            MOBILE_APPS[org.habits[u.n].mobile or "ios"], start + dt.timedelta(days=days - 1),
            rng.randint(5, 60),
        )  # fmt: skip
    integrations = _Integrations(log, org, rng, start, days)
    for day in range(days):
        date = (start + dt.timedelta(days=day)).date()
        for u in org.users:
            h = org.habits[u.n]
            if not h.active(day):
                continue
            user_days += 1
            if day == h.first_day and h.first_day > 0:
                _hired(log, org, rng, admins, u, date)
            _person_day(log, org, rng, h, day, date)
            if h.last_day == day:
                _left(log, rng, admins, u, date)
        for a in admins:
            if date.weekday() < 5 and date not in HOLIDAYS["FR"]:
                _support_desk(log, org, rng, a, day, date)
        if date.weekday() == 2:
            log.setup_change(
                local("FR", date, 10), admins[0], "changedUserProfile", "Manage Users",
                "Changed profile for a boutique advisor",
            )  # fmt: skip
        integrations.day(day, date)
    return user_days


def _is_dst_window(country: str, date: dt.date) -> bool:
    before = utc_offset(country, date - dt.timedelta(days=1))
    after = utc_offset(country, date + dt.timedelta(days=1))
    return before != after


def _workday(h: Habits, date: dt.date) -> tuple[bool, bool]:
    """(works today, a weekend or holiday shift)."""
    u = h.user
    wd = date.weekday()
    holiday = date in HOLIDAYS.get(u.country, frozenset())
    if u.role == "admin":
        return wd < 5 and not holiday, False
    # Boutiques open Monday to Saturday (Sunday in some cities): staff work Saturday and take
    # a weekday off; a fifth also cover Sundays; holidays run on half the staff.
    if wd == 6:
        works = h.sunday
    elif wd == 5:
        works = True
    else:
        works = wd != h.weekday_off
    if holiday:
        works = works and (u.n % 2 == 0)
    return works, works and (wd >= 5 or holiday)


def _person_day(log: Log, org: Org, rng: random.Random, h: Habits, day: int, date: dt.date) -> None:
    u = h.user
    works, shift = _workday(h, date)
    trip = org.trips.get(u.n)
    abroad = trip is not None and trip.covers(day) and day > trip.start
    here = trip.dest if abroad and trip else u.country
    if _is_dst_window(u.country, date):
        _label_day(log, u, here, date, "dst_change")
    if h.laptop_day is not None and h.laptop_day <= day <= h.laptop_day + 3:
        _label_day(log, u, here, date, "new_device")
    if day == h.chrome_upgrade_day and "Chrome" in h.desktop:
        _label_day(log, u, here, date, "browser_upgrade")
    if h.first_day > 0 and day - h.first_day < 14:
        _label_day(log, u, here, date, "new_hire")
    if abroad:
        _label_day(log, u, here, date, "trip")
    if works and rng.random() > 0.04:  # holidays taken, sick days
        if shift:
            _label_day(log, u, here, date, "weekend_holiday_shift")
        _desk_session(log, org, rng, h, day, date, trip if abroad else None)
    if h.mobile and (works or rng.random() < 0.15):
        for when in _mobile_times(rng, works):
            _mobile_session(log, org, rng, h, day, date, when, trip if abroad else None)
    if h.phone_day == day:
        where = _home(rng, h, day)
        when = local(here, date, 20.5)
        for label in ("new_device", *where.labels):
            log.label(u, when, label)
        log.okta_event(
            when, u, "user.mfa.factor.activate", where.ip,
            as_org=where.as_org, country=where.country, session=log.key(),
            ua=h.desktop_ua(day),
        )  # fmt: skip


def _mobile_times(rng: random.Random, works: bool) -> list[float]:
    """Local hours of today's mobile-app sessions: on the shop floor and in the evening."""
    times = []
    if works and rng.random() < 0.5:
        times.append(rng.uniform(11, 18))
    if rng.random() < 0.5:
        times.append(rng.uniform(19, 22.5))
    return times


def _label_day(log: Log, u: User, country: str, date: dt.date, source: str) -> None:
    """Label a local day: the UTC dates its first and last hour fall on."""
    for hour in (0, 23.9):
        log.label(u, local(country, date, hour), source)


def _office(rng: random.Random, h: Habits, country: str) -> Where:
    pool = OFFICE_POOLS[country]
    # the NAT pool hands the host the same address on some days, another on most
    if not h.office_ip or country != h.user.country or rng.random() < 0.7:
        ip = pool.pick(rng)
        if country == h.user.country:
            h.office_ip = ip
    else:
        ip = h.office_ip
    labels = () if _declared(ip) else ("office_nat_pool",)
    return Where(ip, pool.org, country, labels)


def _home(rng: random.Random, h: Habits, day: int) -> Where:
    if day >= h.home_until:
        h.home_ip = h.home.pick(rng)
        h.home_until = day + rng.randint(1, 7)
    labels: tuple[str, ...] = ()
    if h.home_ip not in h.home_seen:
        labels = ("home_readdressing",) if h.home_seen else ()
        h.home_seen.add(h.home_ip)
    return Where(h.home_ip, h.home.org, h.user.country, labels)


def _desk_session(
    log: Log, org: Org, rng: random.Random, h: Habits, day: int, date: dt.date, trip: Trip | None
) -> None:
    u = h.user
    country = trip.dest if trip else u.country
    hq = u.role == "admin"
    begin_hour = rng.uniform(8.3, 9.6) if hq else rng.uniform(9.3, 10.4)
    begin = local(country, date, begin_hour)
    if trip and trip.lodging == "hotel":
        pool = HOTELS[trip.dest]
        where = Where(trip.hotel_ip, pool.org, trip.dest, ("trip",))
    elif trip:
        where = _office(rng, h, trip.dest)
    elif rng.random() < WORK_FROM_HOME.get(u.role, 0.03):
        where = _home(rng, h, day)
    else:
        where = _office(rng, h, u.country)
    for label in where.labels:
        log.label(u, begin, label)
    ua = h.desktop_ua(day)
    okta_session = log.key()
    seen = {"as_org": where.as_org, "country": where.country, "session": okta_session, "ua": ua}
    if rng.random() < 0.03:  # a mistyped password first
        log.okta_event(begin - dt.timedelta(minutes=1), u, "user.session.start", where.ip,
                       **seen, result="FAILURE", reason="INVALID_CREDENTIALS")  # fmt: skip
    log.okta_event(begin, u, "user.session.start", where.ip, **seen)
    log.okta_event(begin + dt.timedelta(seconds=8), u, "user.authentication.auth_via_mfa",
                   where.ip, **seen)  # fmt: skip
    if h.laptop_day == day:
        log.okta_event(begin + dt.timedelta(minutes=2), u, "user.mfa.factor.activate", where.ip,
                       **seen)  # fmt: skip
    clients = org.contacts_by_country.get(u.country) or []
    first_weeks = h.first_day > 0 and day - h.first_day < 10
    t = begin
    # the working day in one or two Salesforce sessions (SSO again after lunch)
    for part in range(1 if rng.random() < 0.5 else 2):
        t = begin + dt.timedelta(hours=4.5 * part, seconds=20)
        log.okta_event(t, u, "user.authentication.sso", where.ip, **seen, target_app="Salesforce")
        key, session = log.key(), log.key()
        t += dt.timedelta(seconds=5)
        log.login(t, u, where.ip, key, session, ua=ua)
        views = rng.randint(15, 50) if first_weeks else rng.randint(4, 22)
        for _ in range(views if clients and u.role != "admin" else rng.randint(0, 3)):
            t += dt.timedelta(minutes=rng.uniform(2, 12))
            if clients:
                log.view(t, u, where.ip, key, session, "Contact", rng.choice(clients))
        if part == 0 and u.role == "manager" and clients:
            t = _manager_reports(log, rng, h, date, where, key, session, t, clients)
        if rng.random() < 0.2 and clients:  # a team report looked at on screen, not exported
            name = rng.choice(TEAM_REPORTS)
            log.report_run(t + dt.timedelta(minutes=3), u, where.ip, key, session,
                           report_id=team_report_id(name, u.country), obj="Contact",
                           rows=rng.randint(20, 200))  # fmt: skip
        t += dt.timedelta(minutes=rng.uniform(5, 40))
        log.logout(t, u, where.ip, key, session, ua=ua)


def team_report_id(name: str, country: str) -> str:
    """The id of a boutique team's shared report: the same report every week."""
    digest = hashlib.sha256(f"{name}/{country}".encode()).hexdigest()
    return sf_id("00O", int(digest[:10], 16))


def _manager_reports(
    log: Log, rng: random.Random, h: Habits, date: dt.date, where: Where, key: str,
    session: str, t: dt.datetime, clients: list[str],
) -> dt.datetime:  # fmt: skip
    """A manager exports the client book on their own weekday, and now and then another of
    the team's reports; each export follows a run of the same report."""
    u = h.user
    exports = []
    if date.weekday() == h.export_day:
        exports.append(("Client book", rng.randint(80, 160)))
    if rng.random() < 0.08:
        exports.append((rng.choice(TEAM_REPORTS[1:]), rng.randint(15, 120)))
    for name, rows in exports:
        rid = team_report_id(name, u.country)
        t += dt.timedelta(minutes=rng.uniform(3, 20))
        log.report_run(t, u, where.ip, key, session, report_id=rid, obj="Contact", rows=rows)
        log.report_export(
            t + dt.timedelta(seconds=rng.uniform(20, 90)), u, where.ip, key, session,
            report=f"{name} {u.country}",
            columns=[("FIRST_NAME", "First Name"), ("LAST_NAME", "Last Name"),
                     ("EMAIL", "Email"), ("TOTAL_PURCHASES__C", "Total Purchases")],
            obj="Contact", records=sorted(rng.sample(clients, min(len(clients), rows))),
            report_id=rid,
        )  # fmt: skip
    return t


def _mobile_session(
    log: Log, org: Org, rng: random.Random, h: Habits, day: int, date: dt.date, hour: float,
    trip: Trip | None,
) -> None:  # fmt: skip
    u = h.user
    country = trip.dest if trip else u.country
    evening = hour >= 19
    if trip:
        if evening and rng.random() < 0.6:
            where = Where(trip.hotel_ip, HOTELS[trip.dest].org, trip.dest, ("trip",))
        elif trip.phone == "esim":
            pool = CARRIERS[trip.dest][0]
            where = Where(pool.pick(rng), pool.org, trip.dest, ("trip", "mobile_cgnat"))
        else:  # roaming is home-routed: the address is the home carrier's, at home
            where = Where(h.carrier.pick(rng), h.carrier.org, u.country, ("trip", "mobile_cgnat"))
    elif evening and rng.random() < 0.6:
        where = _home(rng, h, day)
    else:
        where = Where(h.carrier.pick(rng), h.carrier.org, u.country, ("mobile_cgnat",))
    t = local(country, date, hour)
    for label in where.labels:
        log.label(u, t, label)
    kind = h.mobile_kind(day)
    ua = h.mobile_ua(day)
    key, session = log.key(), log.key()
    log.login(t, u, where.ip, key, session, ua=ua, login_type="Remote Access 2.0",
              app=MOBILE_APPS[kind], uri="/services/oauth2/token")  # fmt: skip
    clients = org.contacts_by_country.get(u.country) or []
    if not clients:
        return
    t += dt.timedelta(seconds=rng.uniform(3, 20))
    log.api_event(
        t, u, where.ip, key, session,
        query="SELECT Id, Name, Phone, Email FROM Contact WHERE OwnerId = "
        f"'{u.sf_id}' ORDER BY LastModifiedDate DESC LIMIT 50",
        obj="Contact", rows=rng.randint(12, 50), app=MOBILE_APPS[kind], ua=ua,
    )  # fmt: skip
    for _ in range(rng.randint(1, 6)):
        t += dt.timedelta(seconds=rng.uniform(10, 120))
        cid = rng.choice(clients)
        log.rest_get(
            t,
            u,
            where.ip,
            key,
            session,
            uri=f"/services/data/v62.0/ui-api/records/{cid}",
            obj="Contact",
            rows=1,
        )
        if rng.random() < 0.15:
            log.edit(t + dt.timedelta(seconds=40), u, where.ip, key, session, "Contact", cid)


def _hired(log: Log, org: Org, rng: random.Random, admins: list[User], u: User,
           date: dt.date) -> None:  # fmt: skip
    """The day before a new hire starts, an administrator creates their user."""
    log.setup_change(local("FR", date - dt.timedelta(days=1), 15), admins[1], "createdUser",
                     "Manage Users", f"Created new user {u.username}")  # fmt: skip
    _label_day(log, u, u.country, date, "new_hire")


def _left(log: Log, rng: random.Random, admins: list[User], u: User, date: dt.date) -> None:
    log.setup_change(local("FR", date + dt.timedelta(days=1), 9.5), admins[1], "frozeUser",
                     "Manage Users", f"Froze user {u.username}")  # fmt: skip
    _label_day(log, u, u.country, date, "leaver")


def _support_desk(
    log: Log, org: Org, rng: random.Random, admin: User, day: int, date: dt.date
) -> None:
    """The CRM administrators are the support desk: they log in as a user to see what the
    user sees, a few times a week each."""
    if rng.random() > 0.5:
        return
    staff = [u for u in org.users if u.role in ("advisor", "manager")
             and org.habits[u.n].active(day)]  # fmt: skip
    target = rng.choice(staff)
    where = _office(rng, org.habits[admin.n], "FR")
    t = local("FR", date, rng.uniform(10, 17))
    key, session = log.key(), log.key()
    log.login_as(t, admin, target, where.ip, key, session)
    clients = org.contacts_by_country.get(target.country) or []
    for _ in range(rng.randint(1, 4) if clients else 0):
        t += dt.timedelta(minutes=rng.uniform(1, 5))
        log.view(t, target, where.ip, key, session, "Contact", rng.choice(clients))
    log.label(admin, t, "login_as")
    log.label(target, t, "login_as")


class _Integrations:
    """The integrations' traffic: marketing's nightly sync (as in the clean org), the chat
    vendor on autoscaling egress, the clienteling app onboarded a third into the period, and
    the administrator's monthly Data Loader export."""

    def __init__(self, log: Log, org: Org, rng: random.Random, start: dt.datetime,
                 days: int) -> None:  # fmt: skip
        self.log, self.org, self.rng, self.start, self.days = log, org, rng, start, days
        self.onboard = max(1, days // 3)
        n = 9003
        self.clienteling = User(n, "clienteling", "integration", "FR", "integration",
                                CLIENTELING_EGRESS.cidrs[0].split("/")[0],
                                CLIENTELING_EGRESS.cidrs[1].split("/")[0], "00u-clt",
                                CLIENTELING_UA, sf_id("005", n))  # fmt: skip
        org.integrations["clienteling"] = self.clienteling
        self.drift_token_ips = [VENDOR_EGRESS.pick(rng) for _ in range(3)]

    def day(self, day: int, date: dt.date) -> None:
        log, org, rng = self.log, self.org, self.rng
        midnight = dt.datetime(date.year, date.month, date.day)
        _marketing_sync(log, org, rng, midnight)
        self._drift(midnight)
        if day == self.onboard:
            self._onboard(date)
        if day >= self.onboard:
            self._clienteling(day, date)
        first_weekday = next(d for d in range(1, 8)
                             if dt.date(date.year, date.month, d).weekday() < 5)  # fmt: skip
        if date.day == first_weekday:
            self._data_loader(date)

    def _drift(self, midnight: dt.datetime) -> None:
        log, rng = self.log, self.rng
        d = self.org.integrations["drift"]
        key, session = log.key(), log.key()
        t = midnight + dt.timedelta(hours=rng.uniform(0, 1))
        log.login(t, d, rng.choice(self.drift_token_ips), key, session, ua=DRIFT_UA,
                  login_type="Remote Access 2.0", app=DRIFT_APP,
                  uri="/services/oauth2/token")  # fmt: skip
        log.label(d, midnight, "vendor_autoscaling")
        for _ in range(rng.randint(20, 40)):
            t += dt.timedelta(minutes=rng.uniform(10, 45))
            if t >= midnight + dt.timedelta(days=1):
                break
            log.api_event(
                t, d, VENDOR_EGRESS.pick(rng), key, session,
                query="SELECT Id, Email, FirstName, LastName FROM Lead "
                f"WHERE Email = 'visitor{rng.randrange(10**6)}@example.com' LIMIT 1",
                obj="Lead", rows=rng.randint(0, 1), app=DRIFT_APP, ua=DRIFT_UA,
            )  # fmt: skip

    def _onboard(self, date: dt.date) -> None:
        log, admin, c = self.log, self.org.staff(role="admin")[1], self.clienteling
        t = local("FR", date, 11)
        log.setup_change(t, admin, "insertConnectedApplication", "Connected Apps",
                         f"Created Connected App {CLIENTELING_APP}")  # fmt: skip
        log.oauth_token(t + dt.timedelta(minutes=20), c, CLIENTELING_APP,
                        t + dt.timedelta(days=self.days), 500)  # fmt: skip
        log.label(admin, t, "new_integration")

    def _clienteling(self, day: int, date: dt.date) -> None:
        """An initial full sync on the first day, then hourly changes in Paris shop hours
        (a local schedule: it moves in UTC when Paris changes its clocks)."""
        log, rng, c = self.log, self.rng, self.clienteling
        key, session = log.key(), log.key()
        t = local("FR", date, 7.9)
        _label_day(log, c, "FR", date, "new_integration")
        ip = CLIENTELING_EGRESS.pick(rng)
        log.login(t, c, ip, key, session, ua=CLIENTELING_UA, login_type="Remote Access 2.0",
                  app=CLIENTELING_APP, uri="/services/oauth2/token")  # fmt: skip
        if day == self.onboard:
            everyone = sum(len(v) for v in self.org.contacts_by_country.values())
            log.bulk_job(t + dt.timedelta(minutes=2), c, ip, key, session,
                         query="SELECT Id, FirstName, LastName, Email, Phone, OwnerId, "
                         "Total_Purchases__c FROM Contact", obj="Contact", rows=everyone,
                         ua=CLIENTELING_UA)  # fmt: skip
        for hour in range(8, 21):
            t = local("FR", date, hour + rng.uniform(0, 0.1))
            log.api_call(
                t, c, CLIENTELING_EGRESS.pick(rng), key, session,
                query="SELECT Id, FirstName, LastName, Email, Phone, OwnerId FROM Contact "
                "WHERE LastModifiedDate > LAST_N_DAYS:1 LIMIT 200",
                obj="Contact", rows=rng.randint(0, 40), app=CLIENTELING_APP, ua=CLIENTELING_UA,
            )  # fmt: skip

    def _data_loader(self, date: dt.date) -> None:
        """03:00 in Paris on the first working day of the month: the administrator's
        scheduled Data Loader backup of contacts, accounts and cases, from a headquarters
        server under their own account."""
        log, rng, org = self.log, self.rng, self.org
        admin = org.staff(role="admin")[1]
        ip = OFFICE_POOLS["FR"].pick(rng)
        t = local("FR", date, 3)
        key, session = log.key(), log.key()
        log.login(t, admin, ip, key, session, ua=DATA_LOADER_UA,
                  login_type="Remote Access 2.0", app=DATA_LOADER_APP,
                  uri="/services/oauth2/token")  # fmt: skip
        log.describe(t + dt.timedelta(seconds=4), admin, ip, key, session,
                     method="describeGlobal", obj="", app=DATA_LOADER_APP)  # fmt: skip
        contacts = sum(len(v) for v in org.contacts_by_country.values())
        for i, (obj, rows) in enumerate((("Contact", contacts), ("Account", 10 + contacts // 400),
                                         ("Case", contacts // 5))):  # fmt: skip
            t += dt.timedelta(seconds=10)
            log.describe(t, admin, ip, key, session, method="describeSObjects", obj=obj,
                         app=DATA_LOADER_APP)  # fmt: skip
            _, t = log.bulk_job(t + dt.timedelta(seconds=3 + i), admin, ip, key, session,
                                query=f"SELECT FIELDS(STANDARD) FROM {obj}", obj=obj,
                                rows=rows, ua=DATA_LOADER_UA)  # fmt: skip
        log.label(admin, t, "admin_data_loader")
