"""``crmwatch posture``: read the org's configuration, judge it, keep the result.

Inputs are found under the paths given, by what they are rather than where they sit: Salesforce
metadata by file suffix, exports and Okta objects by their fields. Every file that could not be
read, or only in part, is a problem in the audit's result (file, line, reason); the rest is
still audited.

An audit's id is a hash of what it read, so auditing the same files again replaces that audit
rather than adding one; drift is judged against the newest earlier audit of different inputs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmwatch.errors import UsageError
from crmwatch.posture import okta, salesforce
from crmwatch.posture.checks import Check
from crmwatch.posture.exports import Exports, is_export, read_export, value
from crmwatch.posture.model import (
    FIRST_PARTY_APPS,
    INPUT_OF,
    POWERFUL,
    OrgModel,
    Problem,
    Subject,
    where,
)
from crmwatch.sources.base import read_head
from crmwatch.timeutil import parse_utc

# Permission that makes a user an API-only integration account (not interactive).
API_ONLY = "ApiUserOnly"
# "Multi-Factor Authentication for User Interface Logins" (Metadata API name).
MFA_UI = "ForceTwoFactor"
ADMIN = ("ModifyAllData", "ManageUsers", "CustomizeApplication", "AuthorApex")
# LoginHistory.LoginType values of a sign-in through the browser (Object Reference, LoginHistory).
UI_LOGIN_TYPES = ("Application", "SAML Idp Initiated SSO", "SAML Sfdc Initiated SSO")


@dataclass
class Finding:
    """A check that failed, with the subjects that failed it."""

    check_id: str
    title: str
    severity: str
    subject_kind: str
    controls: list[str]
    protects_against: str
    remediation: str
    sources: list[dict[str, str]]
    detections: list[str]
    subjects: list[dict[str, Any]]
    principals: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)
    drift: str | None = None  # set on drift findings: what changed since the previous audit


@dataclass
class Outcome:
    check_id: str
    title: str
    severity: str
    status: str  # fail | pass | not_assessed
    judged: int
    failing: list[str]
    undetermined: list[str]
    why_not: str | None = None


@dataclass
class Audit:
    audit_id: str
    audited_at: dt.datetime
    as_of: dt.datetime
    sources: list[str]
    files: list[str]
    problems: list[Problem]
    outcomes: list[Outcome]
    findings: list[Finding]
    model: OrgModel


EXPORT_SUFFIXES = {".json", ".csv", ".ndjson", ".gz", ".jsonl"}


def discover(
    paths: list[Path],
) -> tuple[list[Path], list[Path], list[Path], list[Problem], int]:
    """Metadata roots, export files and Okta files under ``paths`` (each file once, however
    often it was named), the data files not recognised, and how many other files there are."""
    roots: set[Path] = set()
    files: dict[Path, None] = {}
    for p in paths:
        if not p.exists():
            raise UsageError(f"posture input not found: {p}")
        if p.is_dir():
            if any(salesforce.metadata_files(p).values()) or salesforce.folders_present(p):
                roots.add(p.resolve())
            files |= dict.fromkeys(sorted(f.resolve() for f in p.rglob("*") if f.is_file()))
        else:
            files[p.resolve()] = None
    # metadata is read by folder: a root inside another is the same files
    roots = {r for r in roots if not any(o != r and o in r.parents for o in roots)}
    exports: list[Path] = []
    okta_files: list[Path] = []
    problems: list[Problem] = []
    other = 0
    for f in files:
        if any(f.name.endswith(s) for _, sfx in salesforce.TYPES.values() for s in sfx):
            if not any(r == f.parent or r in f.parents for r in roots):
                roots.add(f.parent)
            continue
        if f.suffix.lower() not in EXPORT_SUFFIXES or not f.is_file():
            other += 1  # Apex classes, layouts, READMEs: a project holds many
            continue
        head = read_head(f)
        if okta.is_okta(head):
            okta_files.append(f)
        elif is_export(f, head):
            exports.append(f)
        else:
            problems.append(Problem(where(f), "not an export or Okta object posture reads; "
                                              "skipped"))  # fmt: skip
    return sorted(roots), exports, okta_files, problems, other


def read_org(paths: list[Path], as_of: dt.datetime | None = None) -> OrgModel:
    """The configuration under ``paths`` as subjects."""
    roots, export_files, okta_files, problems, skipped = discover(paths)
    model = OrgModel(problems=problems, skipped=skipped)
    listed: set[str] = set()
    for root in roots:
        salesforce.read_metadata(root, model)
        listed |= salesforce.folders_present(root)
    exports = Exports()
    for f in export_files:
        read_export(f, exports, model)
    config = okta.OktaConfig()
    for f in okta_files:
        okta.read_okta(f, config, model)
    okta.derive(config, model)
    if not model.files:
        model.note(", ".join(map(str, paths)), "nothing posture reads was found: no metadata, "
                   "export or Okta object; every check is not assessed")  # fmt: skip
    model.as_of = as_of or _newest(exports, model) or now()
    _derive_salesforce(model, exports, listed)
    return model


def now() -> dt.datetime:
    """The wall clock as crmwatch stores times: naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _time(v: Any) -> dt.datetime | None:
    if not isinstance(v, str) or not v:
        return None
    try:
        return parse_utc(v.replace("+0000", "+00:00"))
    except ValueError:
        return None


TIMES = (("User", "LastLoginDate"), ("User", "CreatedDate"), ("OauthToken", "LastUsedDate"),
         ("OauthToken", "CreatedDate"), ("LoginHistory", "LoginTime"))  # fmt: skip


def _newest(exports: Exports, model: OrgModel) -> dt.datetime | None:
    """The exports' own "now": their newest time, leaving out (and reporting) times that
    cannot be read or lie in the future — one bad date must not age every account."""
    latest = now() + dt.timedelta(days=1)
    newest = None
    unreadable: dict[str, int] = {}
    future: dict[str, int] = {}
    for obj, name in TIMES:
        for r in exports.of(obj):
            v = value(r, name)
            t = _time(v)
            if v is not None and t is None:
                unreadable[f"{obj}.{name}"] = unreadable.get(f"{obj}.{name}", 0) + 1
            elif t is not None and t > latest:
                future[f"{obj}.{name}"] = future.get(f"{obj}.{name}", 0) + 1
            elif t is not None and (newest is None or t > newest):
                newest = t
    for field_, n in sorted(unreadable.items()):
        model.note("exports", f"{n} {field_} value(s) are not ISO 8601 times; read as unknown")
    for field_, n in sorted(future.items()):
        model.note("exports", f"{n} {field_} value(s) lie in the future; not used for the "
                              "audit's 'as of' time")  # fmt: skip
    return newest


def _days(model: OrgModel, t: dt.datetime | None) -> int | None:
    return None if t is None or model.as_of is None else max(0, (model.as_of - t).days)


def _derive_salesforce(model: OrgModel, exports: Exports, listed: set[str]) -> None:
    """Users' effective permissions, holders' counts, apps' use: what spans files."""
    assigned: dict[str, set[tuple[str, str]]] = {}
    for r in exports.of("PermissionSetAssignment"):
        if value(r, "PermissionSet.IsOwnedByProfile") is True:
            continue  # the profile's own permission set: the profile stands for it
        group = value(r, "PermissionSetGroup.DeveloperName")
        held = ("permission_set_group", group) if group else (
            "permission_set", value(r, "PermissionSet.Name"))  # fmt: skip
        if value(r, "AssigneeId") and held[1]:
            assigned.setdefault(str(value(r, "AssigneeId")), set()).add(held)

    def grants(kind: str, name: str, seen: frozenset = frozenset()) -> list[str] | None:
        h = model.holder(kind, name)
        if h is None or (kind, name) in seen:
            return None
        perms = set(h.get("permissions") or [])
        for member in h.get("permission_sets") or []:
            perms |= set(grants("permission_set", member, seen | {(kind, name)}) or [])
        for muted in h.get("muting_permission_sets") or []:
            perms -= set(grants("permission_set", muted, seen | {(kind, name)}) or [])
        return sorted(perms)

    org = model.subjects["salesforce_org"].get("org")
    org_mfa = org.get("mfa_all_ui_logins") if org else None
    logins: dict[str, list[dict[str, Any]]] = {}
    for r in exports.of("LoginHistory"):
        logins.setdefault(str(value(r, "UserId")), []).append(r)
    holders_of: dict[str, list[str]] = {}
    for r in exports.of("User"):
        uid = str(value(r, "Id") or "")
        name = str(value(r, "Username") or uid)
        profile = value(r, "Profile.Name")
        active = value(r, "IsActive")
        sets = sorted(assigned.get(uid, set()))
        granted = [grants("profile", profile) if profile else None]
        granted += [grants(kind, s) for kind, s in sets]
        perms = None if None in granted else sorted({p for g in granted for p in g or []})
        profile_holder = model.holder("profile", profile) if profile else None
        ui = [x for x in logins.get(uid, []) if value(x, "LoginType") in UI_LOGIN_TYPES]
        last = _time(value(r, "LastLoginDate"))
        mfa = None
        if (perms is not None and MFA_UI in perms) or org_mfa is True:
            mfa = True
        elif perms is not None and org_mfa is False:
            mfa = False
        user_type = value(r, "UserType")
        model.add(Subject("user", name, {
            "id": uid or None,
            "active": active,
            "user_type": user_type,
            "profile": profile,
            "permission_sets": [s for _, s in sets],
            "permissions": perms,
            "login_ip_ranges": profile_holder.get("login_ip_ranges") if profile_holder else None,
            "mfa_enforced": mfa,
            "direct_ui_logins": sum(value(x, "LoginType") == "Application" for x in ui)
            if uid in logins else None,
            "interactive": None if perms is None else (
                (user_type in (None, "Standard")) and API_ONLY not in perms),
            "admin": None if perms is None else any(p in perms for p in ADMIN),
            "days_since_login": _days(model, last or _time(value(r, "CreatedDate"))),
            "never_logged_in": last is None,
        }))  # fmt: skip
        if active is True:
            held = [profile_holder] + [model.holder(kind, s) for kind, s in sets]
            for h in held:
                if h is not None:
                    holders_of.setdefault(h.key, []).append(name)
    for h in model.subjects["permission_holder"].values():
        h.attrs["powerful"] = [p for p in POWERFUL if p in (h.get("permissions") or [])]
        if exports.has("User"):
            h.attrs["holders"] = sorted(set(holders_of.get(h.key, [])))
            h.attrs["active_holders"] = len(h.attrs["holders"])
    _derive_apps(model, exports, "connected_app" in listed)


def _derive_apps(model: OrgModel, exports: Exports, apps_listed: bool) -> None:
    tokens: dict[str, list[dict[str, Any]]] = {}
    for r in exports.of("OauthToken"):
        tokens.setdefault(str(value(r, "AppName")), []).append(r)
    apps = model.subjects["connected_app"]
    by_label = {str(a.get("label")).lower(): a for a in apps.values()}
    for name, rows in tokens.items():
        last = max((t for r in rows if (t := _time(value(r, "LastUsedDate")))), default=None)
        app = by_label.get(name.lower()) or apps.get(name)
        attrs = {
            "token_users": len({value(r, "UserId") for r in rows}),
            "days_unused": _days(model, last or max(
                (t for r in rows if (t := _time(value(r, "CreatedDate")))), default=None)),
            "token_holders": sorted({str(value(r, "UserId")) for r in rows}),
        }  # fmt: skip
        if app is None:
            attrs |= {"label": name, "in_metadata": False if apps_listed else None,
                      "first_party": name in FIRST_PARTY_APPS}  # fmt: skip
            model.add(Subject("connected_app", name, attrs))
        else:
            app.attrs.update(attrs)
    for app in apps.values():
        app.attrs.setdefault("first_party", False)
    if exports.has("OauthToken"):
        for app in apps.values():
            app.attrs.setdefault("token_users", 0)
            app.attrs.setdefault("days_unused", None)
    if apps_listed:
        model.read.add("connected_app")


def judge(model: OrgModel, checks: list[Check]) -> tuple[list[Outcome], list[Finding]]:
    outcomes: list[Outcome] = []
    findings: list[Finding] = []
    for check in checks:
        subjects = model.of(check.subject)
        if check.subject not in model.read:
            outcomes.append(Outcome(check.id, check.title, check.severity, "not_assessed", 0,
                                    [], [], f"needs {INPUT_OF[check.subject]}"))  # fmt: skip
            continue
        results = [(s, check.judge(s)) for s in subjects]
        failing = [s for s, r in results if r is True]
        unknown = [s.name for s, r in results if r is None]
        attrs = sorted({c.attr for b in check.where for c in b})
        # "pass" only on inputs that tell every attribute the check reads, read whole
        untold = [a for a in attrs if all(s.get(a) is None for s in subjects)]
        why = None
        if not failing and check.subject in model.unreadable:
            why = (f"{model.unreadable[check.subject]} input file(s) or record(s) for it could "
                   "not be read (see the input problems)")  # fmt: skip
        elif not failing and (untold or unknown):
            why = "the inputs do not tell " + ", ".join(untold or attrs)
        status = "fail" if failing else "not_assessed" if why else "pass"
        outcomes.append(Outcome(check.id, check.title, check.severity, status, len(subjects),
                                [s.name for s in failing], unknown, why))  # fmt: skip
        if failing:
            findings.append(finding(check, failing))
    return outcomes, findings


def finding(check: Check, failing: list[Subject], drift: str | None = None) -> Finding:
    principals: set[str] = set()
    apps: set[str] = set()
    for s in failing:
        if s.kind == "user":
            principals |= {s.name, *([s.get("id")] if s.get("id") else [])}
        elif s.kind == "permission_holder":
            principals |= set(s.get("holders") or [])
        elif s.kind == "connected_app":
            apps |= {s.name, str(s.get("label") or s.name)}
    return Finding(
        check_id=check.id, title=check.title, severity=check.severity,
        subject_kind=check.subject, controls=check.controls,
        protects_against=check.protects_against, remediation=check.remediation,
        sources=check.sources, detections=check.detections,
        subjects=[{"name": s.name, **{a: s.get(a) for a in check.show}} for s in failing],
        principals=sorted(principals), apps=sorted(apps), drift=drift,
    )  # fmt: skip


def audit_id(files: list[str]) -> str:
    """Same files with the same content, same id."""
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.encode("utf-8", "surrogateescape") + b"\0")
        h.update(hashlib.sha256(Path(f).read_bytes()).digest())
    return "PA-" + h.hexdigest()[:10].upper()
