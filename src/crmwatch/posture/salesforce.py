"""A Salesforce metadata retrieve folder → posture subjects.

Reads what ``sf project retrieve start`` (source format: ``*.profile-meta.xml``) or a Metadata
API retrieve (``*.profile``) writes, found by file suffix anywhere under the folder given:
profiles, permission sets and groups, ``Security.settings``, connected apps and Transaction
Security policies. Element names are the Metadata API's (Metadata API Developer Guide,
developer.salesforce.com/docs/atlas.en-us.api_meta.meta; docs/posture.md cites each).

A folder of a type that is present but empty is read as "none of these" (no Transaction
Security policy); a type whose folder is absent is not known, and checks that need it say so.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import unquote

from crmwatch.errors import Location
from crmwatch.posture.model import OrgModel, Subject, permission, where
from crmwatch.posture.xmlfile import Element, parse

# metadata type → (folder name, suffixes: source format, MDAPI format)
TYPES = {
    "profile": ("profiles", (".profile-meta.xml", ".profile")),
    "permission_set": ("permissionsets", (".permissionset-meta.xml", ".permissionset")),
    "permission_set_group": (
        "permissionsetgroups",
        (".permissionsetgroup-meta.xml", ".permissionsetgroup"),
    ),
    "settings": ("settings", (".settings-meta.xml", ".settings")),
    "connected_app": ("connectedApps", (".connectedApp-meta.xml", ".connectedApp")),
    "transaction_security_policy": (
        "transactionSecurityPolicies",
        (".transactionSecurityPolicy-meta.xml", ".transactionSecurityPolicy"),
    ),
}
# The subject kinds each metadata type feeds: a file of it that cannot be read leaves them
# incomplete (a user's permissions come from profiles and permission sets).
FEEDS = {
    "profile": ("permission_holder", "user"),
    "permission_set": ("permission_holder", "user"),
    "permission_set_group": ("permission_holder", "user"),
    "settings": ("salesforce_org",),
    "connected_app": ("connected_app",),
    "transaction_security_policy": ("salesforce_org",),
}
# SessionSettings.sessionTimeout values (Metadata API, SessionSettings) in minutes.
TIMEOUTS = {
    "FifteenMinutes": 15, "ThirtyMinutes": 30, "SixtyMinutes": 60, "NinetyMinutes": 90,
    "TwoHours": 120, "FourHours": 240, "EightHours": 480, "TwelveHours": 720,
    "TwentyFourHours": 1440,
}  # fmt: skip
CLICKJACK = ("enableClickjackNonsetupSFDC", "enableClickjackNonsetupUser", "enableClickjackSetup")
CSRF = ("enableCSRFOnGet", "enableCSRFOnPost")
# Transaction Security actions that stop the event rather than only report it.
STOPPING = ("block", "endSession", "freezeUser", "twoFactorAuthentication")
# ConnectedApp oauthPolicy.refreshTokenPolicy when the element is absent (Metadata API:
# "infinite" is the default, valid until revoked).
DEFAULT_REFRESH = "infinite"


def metadata_files(root: Path) -> dict[str, list[Path]]:
    """Metadata files under ``root`` by type, in a stable order."""
    found: dict[str, list[Path]] = {t: [] for t in TYPES}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        for kind, (_, suffixes) in TYPES.items():
            if path.name.endswith(suffixes):
                found[kind].append(path)
                break
    return found


def folders_present(root: Path) -> set[str]:
    """Metadata types whose folder exists under ``root``, files or not."""
    names = {p.name for p in root.rglob("*") if p.is_dir()} | {root.name}
    return {kind for kind, (folder, _) in TYPES.items() if folder in names}


def _name(path: Path, suffixes: tuple[str, ...]) -> str:
    for s in suffixes:
        if path.name.endswith(s):
            return unquote(path.name.removesuffix(s))
    return path.name


# A Login IP Range wider than this restricts nothing worth the name (a real profile in the
# fixtures allows 0.0.0.0–255.255.255.255): it does not count as a restriction.
WIDEST = {4: 2**24, 6: 2**96}


def _number(text: str | None) -> int | None:
    """A whole number of at most nine digits (a setting, not a payload)."""
    return int(text) if text and text.isdecimal() and text.isascii() and len(text) <= 9 else None


def _permissions(el: Element) -> list[str]:
    return sorted(
        permission(p.text("name") or "")
        for p in el.all("userPermissions")
        if p.flag("enabled") is True
    )


def _restricting(r: Element) -> bool:
    """Whether a loginIpRanges entry limits sign-ins (a valid range no wider than WIDEST);
    one that cannot be read is reported and does not count."""
    text = (r.text("startAddress") or "", r.text("endAddress") or "")
    try:
        start, end = (ipaddress.ip_address(t) for t in text)
    except ValueError:
        r.note(f"login IP range {text[0][:40]!r}–{text[1][:40]!r} is not a pair of addresses; "
               "it restricts nothing here")  # fmt: skip
        return False
    if start.version != end.version or end < start:
        r.note(f"login IP range {start}–{end} is empty or mixes IPv4 and IPv6; it restricts "
               "nothing here")  # fmt: skip
        return False
    return int(end) - int(start) + 1 <= WIDEST[start.version]


def read_metadata(root: Path, model: OrgModel) -> int:
    """Add the subjects of the metadata under ``root`` to ``model``; returns files read."""
    files = metadata_files(root)
    present = folders_present(root)
    parsed: list[tuple[Path, Element]] = []
    policies: list[tuple[Path, Element]] = []
    for kind, paths in files.items():
        for path in paths:
            el = parse(path)
            if not isinstance(el, Element):
                model.problems.append(el)
                model.lost(FEEDS[kind])
                continue
            parsed.append((path, el))
            model.files.append(str(path))
            name = _name(path, TYPES[kind][1])
            if kind == "transaction_security_policy":
                policies.append((path, el))
            elif kind == "settings":
                _settings(model, name, el)
            elif kind == "connected_app":
                _connected_app(model, name, el, path)
            else:
                _holder(model, kind, name, el, path)
    if "transaction_security_policy" in present:
        _transaction_policies(model, policies)
    for path, el in parsed:
        for what in dict.fromkeys(el.bad):
            model.note(where(path), what)
    return len(parsed)


def _holder(model: OrgModel, kind: str, name: str, el: Element, path: Path) -> None:
    attrs: dict = {"kind": kind, "permissions": _permissions(el), "label": el.text("label")}
    if kind == "profile":
        ranges = el.all("loginIpRanges")
        attrs["login_ip_ranges"] = sum(_restricting(r) for r in ranges)
        attrs["open_login_ip_ranges"] = len(ranges) - attrs["login_ip_ranges"]
        hours = el.first("loginHours")
        attrs["login_hours"] = hours is not None and bool(hours.el.findall("*"))
        attrs["user_license"] = el.text("userLicense")
    elif kind == "permission_set_group":
        attrs["permission_sets"] = [(p.el.text or "").strip() for p in el.all("permissionSets")]
        attrs["muting_permission_sets"] = [
            (p.el.text or "").strip() for p in el.all("mutingPermissionSets")
        ]
    model.add(Subject("permission_holder", name, attrs, Location(path)))


def _settings(model: OrgModel, name: str, el: Element) -> None:
    org = model.one("salesforce_org")
    if name == "ConnectedApp":  # API Access Control, turned on by Salesforce Support
        org.attrs["api_access_control"] = el.flag("enableAdminApprovedAppsOnly")
        return
    if name == "Event":
        days = el.text("eventLogRetentionDuration")
        org.attrs["event_log_retention_days"] = _number(days)
        if days and _number(days) is None:
            el.note(f"eventLogRetentionDuration {days[:20]!r} is not a number; unknown")
        org.attrs["transaction_security_enabled"] = el.flag("enableTransactionSecurityPolicies")
        return
    if name != "Security":
        return
    session = el.first("sessionSettings")
    if session is not None:
        timeout = session.text("sessionTimeout")
        org.attrs["session_timeout_minutes"] = TIMEOUTS.get(timeout or "")
        if timeout and timeout not in TIMEOUTS:
            el.note(f"sessionTimeout {timeout[:30]!r} is not a Metadata API value; unknown")
        org.attrs["lock_sessions_to_ip"] = session.flag("lockSessionsToIp")
        flags = [session.flag(f) for f in CLICKJACK]
        org.attrs["clickjack_protection"] = None if None in flags else all(flags)
        flags = [session.flag(f) for f in CSRF]
        org.attrs["csrf_protection"] = None if None in flags else all(flags)
        org.attrs["enforce_ip_ranges_every_request"] = session.flag("enforceIpRangesEveryRequest")
        # "Require MFA for all direct UI logins to your Salesforce org"
        org.attrs["mfa_all_ui_logins"] = bool(session.flag("enableMFADirectUILoginOptIn"))
    passwords = el.first("passwordPolicies")
    if passwords is not None:
        length = passwords.text("minimumPasswordLength")
        org.attrs["password_min_length"] = _number(length)
        if length and _number(length) is None:
            el.note(f"minimumPasswordLength {length[:20]!r} is not a number; unknown")
        org.attrs["max_login_attempts"] = passwords.text("maxLoginAttempts")
    network = el.first("networkAccess")
    org.attrs["trusted_ip_ranges"] = 0 if network is None else len(network.all("ipRanges"))


def _connected_app(model: OrgModel, name: str, el: Element, path: Path) -> None:
    config = el.first("oauthConfig")
    policy = el.first("oauthPolicy")
    approved = config.flag("isAdminApproved") if config is not None else None
    scopes = [(s.el.text or "").strip() for s in config.all("scopes")] if config else []
    model.add(Subject("connected_app", name, {
        "label": el.text("label") or name,
        "in_metadata": True,
        "oauth": config is not None,
        "self_authorize": None if approved is None else not approved,
        "ip_relaxation": policy.text("ipRelaxation") if policy is not None else None,
        "refresh_token_policy": (
            (policy.text("refreshTokenPolicy") if policy is not None else None)
            or (DEFAULT_REFRESH if config is not None else None)
        ),
        "scopes": scopes,
    }, Location(path)))  # fmt: skip


def _transaction_policies(model: OrgModel, policies: list[tuple[Path, Element]]) -> None:
    watched: set[str] = set()
    stopping: set[str] = set()
    for _, el in policies:
        if el.flag("active") is not True:
            continue
        event = el.text("eventName") or el.text("eventType") or ""
        watched.add(event)
        action = el.first("action")
        if action is not None and any(action.flag(a) for a in STOPPING):
            stopping.add(event)
    org = model.one("salesforce_org")
    org.attrs["tsp_events"] = sorted(watched)
    org.attrs["tsp_blocking_events"] = sorted(stopping)
