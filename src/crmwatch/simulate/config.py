"""The simulated org's configuration, as a retailer's would be before the 2025 thefts.

Written beside the logs for ``crmwatch posture``::

    config/salesforce/profiles/*.profile-meta.xml          sf project retrieve, source format
    config/salesforce/permissionsets/*.permissionset-meta.xml
    config/salesforce/settings/{Security,ConnectedApp,Event}.settings-meta.xml
    config/salesforce/connectedApps/*.connectedApp-meta.xml
    config/salesforce/transactionSecurityPolicies/         one policy that only notifies
    config/salesforce/exports/User.json, PermissionSetAssignment.json   REST query results
    config/okta/policies.json, zones.json, authenticators.json          Management API responses

The gaps are the ones the PIPC and Google found behind the real breaches, so that each scenario
has the posture findings its attack relied on (:data:`GAPS`): advisors keep "API Enabled"
from a Data Loader pilot and have no Login IP Ranges, MFA is not required for direct logins,
the chat integration's token ignores IP restrictions and never expires, no Transaction
Security policy blocks exports, Okta lets a password alone enrol a new factor and does not
block anonymisers. The OauthToken export the scenarios write (``logs/salesforce/objects``)
completes the picture: "My Ticket Portal" holds a token but was never installed.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from xml.sax.saxutils import escape

from crmwatch.simulate.activity import User
from crmwatch.simulate.benign import DRIFT_APP, MARKETING_APP, Org
from crmwatch.simulate.realistic import CLIENTELING_APP, DATA_LOADER_APP
from crmwatch.simulate.world import DOMAIN

NS = "http://soap.sforce.com/2006/04/metadata"
# The checks each scenario's attack relied on: its incident lists them on its path.
GAPS: dict[str, list[str]] = {
    "vishing_data_loader": ["sf-mfa-not-enforced", "sf-powerful-user-no-ip-ranges",
                            "sf-api-enabled-people", "sf-uninstalled-app-with-tokens"],
    "drift_token_theft": ["sf-connected-app-ip-relaxed", "sf-connected-app-refresh-forever"],
    "okta_mfa_phish": ["okta-enrolment-without-existing-factor",
                       "sf-powerful-user-no-ip-ranges"],
    "branch_account_compromise": ["sf-mfa-not-enforced", "sf-powerful-user-no-ip-ranges"],
    "slow_insider": ["sf-powerful-user-no-ip-ranges", "sf-api-enabled-people"],
    "credential_stuffing": ["sf-mfa-not-enforced"],
}  # fmt: skip
PROFILES = {  # role → profile, its permissions and its Login IP Ranges
    "advisor": ("Boutique Advisor", ["ApiEnabled", "EditTask", "RunReports"], []),
    "manager": ("Boutique Manager", ["ApiEnabled", "EditTask", "ExportReport", "RunReports"], []),
    "admin": ("System Administrator", ["ApiEnabled", "AuthorApex", "CustomizeApplication",
                                       "ExportReport", "ManageUsers", "ModifyAllData",
                                       "ViewAllData", "ForceTwoFactor"],
              [("90.3.8.0", "90.3.11.255", "Paris headquarters")]),
    "integration": ("Integration User", ["ApiEnabled", "ApiUserOnly", "ViewAllData"], []),
}  # fmt: skip
# Connected apps the admins installed: (file name, label, admin-approved, IP relaxation,
# refresh token policy).
APPS = (
    ("Drift", DRIFT_APP, True, "BYPASS", "infinite"),
    ("Marketing_Cloud_Connect", MARKETING_APP, True, "ENFORCE", "specific_lifetime:90:DAYS"),
    ("Dataloader_Bulk", DATA_LOADER_APP, False, "ENFORCE", "specific_lifetime:30:DAYS"),
    ("Clienteling_Cloud", CLIENTELING_APP, True, "ENFORCE", "specific_lifetime:30:DAYS"),
)


def _xml(root: str, body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">\n{body}</{root}>\n'


def _flag(name: str, value: bool) -> str:
    return f"    <{name}>{str(value).lower()}</{name}>\n"


def _permissions(names: list[str]) -> str:
    return "".join(
        f"    <userPermissions>\n        <enabled>true</enabled>\n"
        f"        <name>{escape(n)}</name>\n    </userPermissions>\n" for n in sorted(names)
    )  # fmt: skip


def _profile(perms: list[str], ranges: list[tuple[str, str, str]]) -> str:
    body = "    <custom>false</custom>\n"
    for start, end, what in ranges:
        body += (f"    <loginIpRanges>\n        <description>{escape(what)}</description>\n"
                 f"        <endAddress>{end}</endAddress>\n"
                 f"        <startAddress>{start}</startAddress>\n"
                 "    </loginIpRanges>\n")  # fmt: skip
    body += "    <userLicense>Salesforce</userLicense>\n" + _permissions(perms)
    return _xml("Profile", body)


def _connected_app(label: str, approved: bool, relax: str, refresh: str) -> str:
    return _xml("ConnectedApp", (
        f"    <contactEmail>it@{DOMAIN}</contactEmail>\n    <label>{escape(label)}</label>\n"
        "    <oauthConfig>\n        <callbackUrl>https://login.salesforce.com/services/oauth2/"
        f"success</callbackUrl>\n        <isAdminApproved>{str(approved).lower()}"
        "</isAdminApproved>\n        <scopes>Api</scopes>\n        <scopes>RefreshToken</scopes>\n"
        f"    </oauthConfig>\n    <oauthPolicy>\n        <ipRelaxation>{relax}</ipRelaxation>\n"
        f"        <refreshTokenPolicy>{refresh}</refreshTokenPolicy>\n    </oauthPolicy>\n"
    ))  # fmt: skip


def _sf_time(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _query(records: list[dict]) -> str:
    return json.dumps({"totalSize": len(records), "done": True, "records": records}, indent=1)


def write_config(out: Path, org: Org, rng: random.Random, end: dt.datetime) -> list[Path]:
    """Write the org's configuration under ``out/config``; returns the files written."""
    sf = out / "config" / "salesforce"
    files: dict[Path, str] = {}
    for name, perms, ranges in PROFILES.values():
        files[sf / "profiles" / f"{name}.profile-meta.xml"] = _profile(perms, ranges)
    files[sf / "permissionsets" / "Data_Export.permissionset-meta.xml"] = _xml(
        "PermissionSet", "    <hasActivationRequired>false</hasActivationRequired>\n"
        "    <label>Data Export</label>\n"
        + _permissions(["ExportReport", "ApiEnabled"]))  # fmt: skip
    files[sf / "settings" / "Security.settings-meta.xml"] = _xml("SecuritySettings", (
        "    <passwordPolicies>\n        <minimumPasswordLength>8</minimumPasswordLength>\n"
        "        <maxLoginAttempts>TenAttempts</maxLoginAttempts>\n    </passwordPolicies>\n"
        "    <sessionSettings>\n" + "".join("    " + _flag(f, v) for f, v in (
            ("enableCSRFOnGet", True), ("enableCSRFOnPost", True),
            ("enableClickjackNonsetupSFDC", True), ("enableClickjackNonsetupUser", True),
            ("enableClickjackSetup", True), ("enableMFADirectUILoginOptIn", False),
            ("lockSessionsToIp", False))) +
        "        <sessionTimeout>TwelveHours</sessionTimeout>\n"
        "    </sessionSettings>\n"))  # fmt: skip
    files[sf / "settings" / "ConnectedApp.settings-meta.xml"] = _xml(
        "ConnectedAppSettings", _flag("enableAdminApprovedAppsOnly", False)
    )
    files[sf / "settings" / "Event.settings-meta.xml"] = _xml("EventSettings", (
        _flag("enableTransactionSecurityPolicies", True)
        + "    <eventLogRetentionDuration>30</eventLogRetentionDuration>\n"))  # fmt: skip
    for name, label, approved, relax, refresh in APPS:
        files[sf / "connectedApps" / f"{name}.connectedApp-meta.xml"] = _connected_app(
            label, approved, relax, refresh
        )
    files[sf / "transactionSecurityPolicies" / "Large_Report_Export.transactionSecurityPolicy"
          "-meta.xml"] = _xml("TransactionSecurityPolicy", (
        "    <action>\n        <block>false</block>\n        <notifications>\n"
        "            <inApp>true</inApp>\n            <sendEmail>true</sendEmail>\n"
        f"            <user>admin@{DOMAIN}</user>\n        </notifications>\n    </action>\n"
        + _flag("active", True) + "    <eventName>ReportEvent</eventName>\n"
        "    <masterLabel>Large report export</masterLabel>\n"
        "    <type>CustomConditionBuilderPolicy</type>\n"))  # fmt: skip
    users, assignments = _users(org, rng, end)
    files[sf / "exports" / "User.json"] = _query(users)
    files[sf / "exports" / "PermissionSetAssignment.json"] = _query(assignments)
    okta = out / "config" / "okta"
    files[okta / "policies.json"] = json.dumps(_okta_policies(), indent=1)
    files[okta / "zones.json"] = json.dumps(_okta_zones(), indent=1)
    files[okta / "authenticators.json"] = json.dumps(_okta_authenticators(), indent=1)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(files)


def _users(org: Org, rng: random.Random, end: dt.datetime) -> tuple[list[dict], list[dict]]:
    users, assignments = [], []
    people: list[User] = [*org.users, *org.integrations.values()]
    # An administrator from before the current team: still active, unused since last year.
    dormant = User(9100, "claude", "former-admin", "FR", "admin", "", "", "00u-old", "",
                   "005000000009100AAA")  # fmt: skip
    for u in [*people, dormant]:
        last = end - dt.timedelta(hours=rng.randint(1, 72))
        if u is dormant:
            last = end - dt.timedelta(days=240)
        users.append({
            "attributes": {"type": "User"}, "Id": u.sf_id, "Username": u.username,
            "IsActive": True, "UserType": "Standard",
            "Profile": {"attributes": {"type": "Profile"}, "Name": PROFILES[u.role][0]},
            "LastLoginDate": _sf_time(last), "CreatedDate": _sf_time(end - dt.timedelta(days=400)),
        })  # fmt: skip
        if u.role == "manager":
            assignments.append({
                "attributes": {"type": "PermissionSetAssignment"}, "AssigneeId": u.sf_id,
                "PermissionSet": {"attributes": {"type": "PermissionSet"}, "Name": "Data_Export",
                                  "IsOwnedByProfile": False},
            })  # fmt: skip
    return users, assignments


def _okta_policies() -> list[dict]:
    """ACCESS_POLICY list with ``expand=rules``: the Admin Console asks for Okta Verify push
    (phishable); the account management policy lets a password alone enrol a factor."""

    def rule(rid: str, name: str, constraints: list[dict]) -> dict:
        return {"id": rid, "name": name, "type": "ACCESS_POLICY", "status": "ACTIVE",
                "priority": 0, "system": False, "conditions": {"network": {"connection":
                "ANYWHERE"}}, "actions": {"appSignOn": {"access": "ALLOW", "verificationMethod":
                {"type": "ASSURANCE", "factorMode": "2FA" if constraints else "1FA",
                 "constraints": constraints, "reauthenticateIn": "PT2H"}}}}  # fmt: skip

    return [
        {"id": "rst-admin", "type": "ACCESS_POLICY", "name": "Okta Admin Console",
         "status": "ACTIVE", "system": False, "conditions": None,
         "_embedded": {"resourceType": "APP", "rules": [rule(
             "rul-admin", "Admins: Okta Verify", [{"possession": {"userPresence": "REQUIRED"}}],
         )]}},
        {"id": "rst-oamp", "type": "ACCESS_POLICY", "name": "Okta Account Management Policy",
         "status": "ACTIVE", "system": True, "conditions": None,
         "_embedded": {"resourceType": "END_USER_ACCOUNT_MANAGEMENT", "rules": [rule(
             "rul-oamp", "Password is enough to manage authenticators",
             [{"knowledge": {"types": ["password"]}}])]}},
    ]  # fmt: skip


def _okta_zones() -> list[dict]:
    return [
        {"id": "nzo-offices", "type": "IP", "name": "Boutiques and headquarters",
         "status": "ACTIVE", "usage": "POLICY", "system": False,
         "gateways": [{"type": "CIDR", "value": "90.3.8.0/22"}], "proxies": None},
        {"id": "nzo-blocked", "type": "IP", "name": "BlockedIpZone", "status": "ACTIVE",
         "usage": "BLOCKLIST", "system": True, "gateways": None, "proxies": None},
    ]  # fmt: skip


def _okta_authenticators() -> list[dict]:
    return [
        {"id": f"aut-{key}", "key": key, "name": name, "type": kind, "status": status}
        for key, name, kind, status in (
            ("okta_password", "Password", "password", "ACTIVE"),
            ("okta_verify", "Okta Verify", "app", "ACTIVE"),
            ("okta_email", "Email", "email", "ACTIVE"),
            ("phone_number", "Phone", "phone", "ACTIVE"),
            ("webauthn", "Security Key or Biometric", "security_key", "INACTIVE"),
        )
    ]
