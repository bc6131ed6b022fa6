"""What a posture audit judges: the org's configuration as subjects with attributes.

The readers (``salesforce``, ``exports``, ``okta``) turn files in their real formats into
subjects; the checks (``checks``) are selections over the subjects' attributes. Everything
that needs code — a user's effective permissions through profile, permission sets and
groups; whether an Okta zone blocks anonymisers — is derived here once, so a check file only
states the condition and why it matters.

An attribute the inputs did not tell is ``None``: a check that needs it cannot say "pass" for
that subject, and says it could not judge it (``undetermined``) instead.

Subject kinds and their attributes (the checks' vocabulary, docs/posture.md lists them):

``salesforce_org`` (one)
    mfa_all_ui_logins, session_timeout_minutes, lock_sessions_to_ip, clickjack_protection,
    csrf_protection, trusted_ip_ranges, tsp_events (event types with an active Transaction
    Security policy), tsp_blocking_events (… one that blocks, ends the session or demands MFA),
    api_access_control, event_log_retention_days, password_min_length, max_login_attempts
``permission_holder`` (profiles, permission sets and permission set groups)
    kind, label, permissions, powerful, login_ip_ranges (profiles), active_holders, holders
``user``
    active, user_type, profile, permission_sets, permissions, login_ip_ranges, mfa_enforced,
    direct_ui_logins, interactive, admin, days_since_login, never_logged_in
``connected_app``
    label, in_metadata, self_authorize, ip_relaxation, refresh_token_policy, scopes,
    days_unused, token_users
``okta_org`` (one)
    anonymizers_blocked, blocklist_zones, admin_console_phishing_resistant,
    enrolment_requires_existing_factor, phishing_resistant_authenticator, authenticators
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmwatch.errors import Location

# Subject kinds, and which inputs each comes from: a check on a kind whose input was not
# given is "not assessed", never "pass".
INPUT_OF = {
    "salesforce_org": "Salesforce metadata (settings/)",
    "permission_holder": "Salesforce metadata (profiles/, permissionsets/)",
    "user": "a User export",
    "connected_app": "Salesforce metadata (connectedApps/) or an OauthToken export",
    "okta_org": "Okta policies, zones or authenticators",
}
KINDS = tuple(INPUT_OF)
# The attributes each kind has (the module docstring says what each means): a check naming
# another is a typo, refused when it is loaded rather than reported as "the inputs do not tell".
ATTRIBUTES: dict[str, frozenset[str]] = {
    "salesforce_org": frozenset({
        "mfa_all_ui_logins", "session_timeout_minutes", "lock_sessions_to_ip",
        "clickjack_protection", "csrf_protection", "enforce_ip_ranges_every_request",
        "trusted_ip_ranges", "tsp_events", "tsp_blocking_events", "api_access_control",
        "event_log_retention_days", "transaction_security_enabled", "password_min_length",
        "max_login_attempts"}),
    "permission_holder": frozenset({
        "kind", "label", "permissions", "powerful", "login_ip_ranges", "open_login_ip_ranges",
        "login_hours", "user_license", "permission_sets", "muting_permission_sets",
        "active_holders", "holders"}),
    "user": frozenset({
        "id", "active", "user_type", "profile", "permission_sets", "permissions",
        "login_ip_ranges", "mfa_enforced", "direct_ui_logins", "interactive", "admin",
        "days_since_login", "never_logged_in"}),
    "connected_app": frozenset({
        "label", "in_metadata", "first_party", "oauth", "self_authorize", "ip_relaxation",
        "refresh_token_policy", "scopes", "token_users", "token_holders", "days_unused"}),
    "okta_org": frozenset({
        "anonymizers_blocked", "blocklist_zones", "admin_console_phishing_resistant",
        "enrolment_requires_existing_factor", "phishing_resistant_authenticator",
        "authenticators", "policies"}),
}  # fmt: skip
# Salesforce permission names (Metadata API ``userPermissions/name``) that make an account a
# bulk exfiltration path or let it change who may do so.
# "Use Any API Client" is UseAnyApiClient by secondary sources only (docs/posture.md).
POWERFUL = (
    "ApiEnabled", "ViewAllData", "ModifyAllData", "ExportReport", "CustomizeApplication",
    "ManageUsers", "AuthorApex", "ManageRemoteAccess", "CanApproveUninstalledApps",
    "UseAnyApiClient", "BypassMFAForUiLogins",
)  # fmt: skip
# Permissions read by name; metadata written by hand or old tools may differ in case
# (a real profile says ``APIEnabled``), which the Metadata API does not distinguish.
KNOWN = (*POWERFUL, "ForceTwoFactor", "TwoFactorApi", "ApiUserOnly", "ViewSetup",
         "BulkApiHardDelete", "TransactionSecurityExempt", "RunReports")  # fmt: skip
CANONICAL = {p.lower(): p for p in KNOWN}
# Salesforce's own mobile apps hold users' tokens in every org without appearing in its
# connected-app metadata (they come with the platform).
FIRST_PARTY_APPS = ("Salesforce for iOS", "Salesforce for Android")


def permission(name: str) -> str:
    return CANONICAL.get(name.lower(), name)


TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no"}


def truth(value: Any) -> bool | None:
    """A boolean as files write it: XML Schema's true/false/1/0, JSON's, or a CSV's text
    (``yes``/``no`` too); None for anything else, which the reader reports."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in TRUE else False if text in FALSE else None
    return None


def where(path: Path | str, line: int | None = None) -> str:
    """A problem's place: the path as found (two folders may both hold a User.json), and
    the line when there is one."""
    return f"{path}:{line}" if line is not None else str(path)


@dataclass
class Subject:
    """One thing a check judges: a user, a profile, a connected app, the org."""

    kind: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    source: Location | None = None

    def get(self, attr: str) -> Any:
        return self.attrs.get(attr)

    @property
    def key(self) -> str:
        """Unique within its kind: a profile and a permission set may share a name."""
        if self.kind == "permission_holder":
            return f"{self.attrs.get('kind')}/{self.name}"
        return self.name


@dataclass
class Problem:
    """An input that could not be read, or only in part: the audit goes on without it."""

    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class OrgModel:
    """Every subject the inputs describe, what was read and what could not be."""

    subjects: dict[str, dict[str, Subject]] = field(default_factory=lambda: {k: {} for k in KINDS})
    read: set[str] = field(default_factory=set)  # subject kinds some input described
    files: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    as_of: dt.datetime | None = None  # "now" for ages (days since login, unused for)
    # subject kinds some of whose input could not be read: no check on them can say "pass"
    unreadable: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # files of other kinds under the paths (Apex, layouts, READMEs)

    def lost(self, kinds: tuple[str, ...] | list[str], n: int = 1) -> None:
        for kind in kinds:
            self.unreadable[kind] = self.unreadable.get(kind, 0) + n

    def add(self, subject: Subject) -> Subject:
        """Add a subject, or merge its attributes into the one of that name already read
        (a connected app seen in metadata and in an OauthToken export is one app)."""
        known = self.subjects[subject.kind].get(subject.key)
        self.read.add(subject.kind)
        if known is None:
            self.subjects[subject.kind][subject.key] = subject
            return subject
        for k, v in subject.attrs.items():
            if v is not None or k not in known.attrs:
                known.attrs[k] = v
        return known

    def note(self, place: str, reason: str) -> None:
        self.problems.append(Problem(place, reason))

    def holder(self, kind: str, name: str) -> Subject | None:
        """A profile, permission set or group by its name (or, failing that, its label)."""
        found = self.subjects["permission_holder"].get(f"{kind}/{name}")
        if found is None:
            found = next((h for h in self.subjects["permission_holder"].values()
                          if h.get("kind") == kind and h.get("label") == name), None)  # fmt: skip
        return found

    def one(self, kind: str) -> Subject:
        """The single subject of an org-wide kind, made on first use."""
        return self.subjects[kind].get("org") or self.add(Subject(kind, "org"))

    def of(self, kind: str) -> list[Subject]:
        return sorted(self.subjects[kind].values(), key=lambda s: s.name.lower())
