"""Okta policies, network zones and authenticators (Management API JSON) → the ``okta_org``.

Inputs are the API's own responses saved to files, any mix per file:
``GET /api/v1/policies?type=ACCESS_POLICY&expand=rules`` (and ``OKTA_SIGN_ON``, ``MFA_ENROLL``,
``PASSWORD``; rules embedded as ``_embedded.rules``, or ``GET /api/v1/policies/{id}/rules``
saved beside it: each rule names its policy in its ``_links.self.href``), ``GET /api/v1/zones``
and ``GET /api/v1/authenticators``. Objects are recognised by their shape. Field names: Okta
Management API reference (Policy, Policy Rule, Network Zone, Authenticator); docs/posture.md
cites each.

What the checks need is derived here, because it spans objects:

- ``anonymizers_blocked``: an active zone in the block list (``usage: BLOCKLIST``) that is
  dynamic and names Tor or anonymising proxies (``proxyType`` ``Tor``/``Any``/
  ``NotTorAnonymizer``, or ``ipServiceCategories.include`` ``ALL_ANONYMIZERS`` and kin), or
  an active policy rule that denies access from such a zone.
- ``admin_console_phishing_resistant``: every active rule of the "Okta Admin Console" access
  policy that allows access requires a phishing-resistant possession factor.
- ``enrolment_requires_existing_factor``: every active rule of the Okta account management
  policy (``_embedded.resourceType: END_USER_ACCOUNT_MANAGEMENT``, the policy Okta applies to
  enrolling a new authenticator) that allows access requires a possession factor — a phished
  password alone cannot add the attacker's device.
- ``phishing_resistant_authenticator``: FIDO2 (WebAuthn) or a smart card is active.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from crmwatch.posture.exports import LOST, json_objects
from crmwatch.posture.model import OrgModel, where
from crmwatch.sources.base import read_input

POLICY_TYPES = {"OKTA_SIGN_ON", "ACCESS_POLICY", "MFA_ENROLL", "PASSWORD", "PROFILE_ENROLLMENT",
                "IDP_DISCOVERY", "ENTITY_RISK", "POST_AUTH_SESSION"}  # fmt: skip
RULE_TYPES = {"SIGN_ON", "ACCESS_POLICY", "MFA_ENROLL", "PASSWORD", "PROFILE_ENROLLMENT",
              "IDP_DISCOVERY", "ENTITY_RISK", "POST_AUTH_SESSION"}  # fmt: skip
ZONE_TYPES = {"IP", "DYNAMIC", "DYNAMIC_V2"}
# DYNAMIC zones' proxyType (null, Any, Tor, NotTorAnonymizer) and DYNAMIC_V2 zones'
# ipServiceCategories that cover Tor and anonymising proxies.
# "TorAnonymizer" is not in the spec's enum but is what real responses carry
# (tests/fixtures/posture/okta/zones/zone_dynamic_blocklist_tor.json).
ANONYMISING_PROXIES = {"Any", "Tor", "NotTorAnonymizer", "TorAnonymizer"}
ANONYMISING_SERVICES = {"ALL_ANONYMIZERS", "ALL_ANONYMIZERS_EXCEPT_TOR", "ANONYMIZER_TOR",
                        "ALL_PROXIES_VPNS", "ALL_IP_SERVICES"}  # fmt: skip
PHISHING_RESISTANT = {"webauthn", "smart_card_idp"}
# The Admin Console's authentication policy is found by the name Okta gives it; the account
# management policy by its resource type (Okta Management API, Policy ``_embedded``).
ADMIN_CONSOLE = "okta admin console"
ACCOUNT_MANAGEMENT = "END_USER_ACCOUNT_MANAGEMENT"


def is_okta(head: bytes) -> bool:
    text = head.decode("utf-8", errors="ignore")
    return any(
        marker in text for marker in ('"ACCESS_POLICY"', '"OKTA_SIGN_ON"', '"MFA_ENROLL"',
                                      '"DYNAMIC"', '"BLOCKLIST"', '"gateways"', '"okta_verify"',
                                      '"okta_password"', '"DYNAMIC_V2"', '"PASSWORD"',
                                      '"SIGN_ON"')
    )  # fmt: skip


def _kind(obj: dict[str, Any]) -> str | None:
    t = obj.get("type") if isinstance(obj.get("type"), str) else None
    if t in RULE_TYPES and "actions" in obj:
        return "rule"
    if t in POLICY_TYPES and ("conditions" in obj or "settings" in obj or "system" in obj
                              or "_embedded" in obj):  # fmt: skip
        return "policy"
    if t in ZONE_TYPES and ("usage" in obj or "gateways" in obj or "proxyType" in obj):
        return "zone"
    if "key" in obj and "status" in obj and t is not None:
        return "authenticator"
    return None


# The fields derive() reads, with the type each must have (parents before children); "strs"
# is a list of texts. A field of another type is reported and dropped, never guessed at.
SHAPES: dict[str, tuple[tuple[str, Any], ...]] = {
    "policy": (("id", str), ("name", str), ("status", str), ("_embedded", dict),
               ("_embedded.rules", list), ("_embedded.resourceType", str)),
    "rule": (("status", str), ("policyId", str), ("_links", dict), ("_links.self", dict),
             ("_links.self.href", str), ("actions", dict), ("actions.appSignOn", dict),
             ("actions.signon", dict), ("actions.appSignOn.access", str),
             ("actions.signon.access", str), ("actions.appSignOn.verificationMethod", dict),
             ("actions.appSignOn.verificationMethod.constraints", list), ("conditions", dict),
             ("conditions.network", dict), ("conditions.network.include", "strs")),
    "zone": (("id", str), ("name", str), ("status", str), ("usage", str), ("proxyType", str),
             ("ipServiceCategories", dict), ("ipServiceCategories.include", "strs")),
    "authenticator": (("key", str), ("name", str), ("status", str)),
}  # fmt: skip
KNOWN_PROXY_TYPES = ANONYMISING_PROXIES | {"None"}


def _shaped(obj: dict[str, Any], kind: str, place: str, model: OrgModel) -> dict[str, Any]:
    for path, want in SHAPES[kind]:
        *parents, leaf = path.split(".")
        container: Any = obj
        for p in parents:
            container = container.get(p) if isinstance(container, dict) else None
        if not isinstance(container, dict) or container.get(leaf) is None:
            continue
        v = container[leaf]
        if want == "strs":
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                model.note(place, f"{kind} {path} is not a list of texts; ignored")
                del container[leaf]
        elif not isinstance(v, want):
            a = {dict: "an object", list: "a list", str: "a text"}[want]
            model.note(place, f"{kind} {path} is not {a}; ignored")
            del container[leaf]
    if kind == "zone" and obj.get("proxyType") not in (None, *KNOWN_PROXY_TYPES):
        model.note(place, f"zone proxyType {str(obj['proxyType'])[:30]!r} is not one Okta "
                          "documents; taken as not blocking anonymisers")  # fmt: skip
    return obj


class OktaConfig:
    """Policies (each with its rules), zones and authenticators as read."""

    def __init__(self) -> None:
        self.policies: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, list[dict[str, Any]]] = {}
        self.zones: list[dict[str, Any]] = []
        self.authenticators: list[dict[str, Any]] = []

    def __bool__(self) -> bool:
        return bool(self.policies or self.zones or self.authenticators)


def read_okta(path: Path, config: OktaConfig, model: OrgModel) -> int:
    """Add the Okta objects of ``path`` to ``config``; returns how many were used."""
    data, problem = read_input(path)
    if problem:
        model.note(where(path), problem)
        model.lost(("okta_org",))
    used = 0
    unknown = 0
    before = len(model.problems)
    for line, found in json_objects(path, data, model):
        kind = _kind(found)
        obj = _shaped(found, kind, where(path, line), model) if kind else found
        if kind == "policy":
            pid = str(obj.get("id") or obj.get("name"))
            config.policies[pid] = obj
            rules = (obj.get("_embedded") or {}).get("rules") or []
            for rule in rules:
                if isinstance(rule, dict):
                    rule = _shaped(rule, "rule", where(path, line), model)
                    config.rules.setdefault(pid, []).append(rule)
                else:
                    model.note(where(path, line), "a policy rule that is not an object")
        elif kind == "rule":
            config.rules.setdefault(_policy_of(obj), []).append(obj)
        elif kind == "zone":
            config.zones.append(obj)
        elif kind == "authenticator":
            config.authenticators.append(obj)
        else:
            unknown += 1
            continue
        used += 1
    lost = sum(p.reason.startswith(LOST) for p in model.problems[before:])
    if lost:
        model.lost(("okta_org",), lost)
    if unknown:
        model.note(where(path), f"{unknown} object(s) not a policy, rule, zone or authenticator")
    if used:
        model.files.append(str(path))
    return used


_RULE_HREF = re.compile(r"/policies/([^/]+)/rules/")


def _policy_of(rule: dict[str, Any]) -> str:
    """A rule saved on its own names its policy in ``policyId`` or in its own link."""
    if rule.get("policyId"):
        return str(rule["policyId"])
    href = str(((rule.get("_links") or {}).get("self") or {}).get("href") or "")
    m = _RULE_HREF.search(href)
    return m.group(1) if m else "?"


def _active(obj: dict[str, Any]) -> bool:
    return str(obj.get("status", "ACTIVE")).upper() == "ACTIVE"


def _anonymising(zone: dict[str, Any]) -> bool:
    if zone.get("type") not in {"DYNAMIC", "DYNAMIC_V2"}:
        return False
    categories = (zone.get("ipServiceCategories") or {}).get("include") or []
    return zone.get("proxyType") in ANONYMISING_PROXIES or bool(
        ANONYMISING_SERVICES & set(categories)
    )


def _allows(rule: dict[str, Any]) -> bool:
    actions = rule.get("actions") or {}
    access = (actions.get("appSignOn") or actions.get("signon") or {}).get("access", "ALLOW")
    return str(access).upper() == "ALLOW"


def _constraints(rule: dict[str, Any]) -> list[dict[str, Any]]:
    method = ((rule.get("actions") or {}).get("appSignOn") or {}).get("verificationMethod")
    return [c for c in (method or {}).get("constraints") or [] if isinstance(c, dict)]


def _requires(rule: dict[str, Any], phishing_resistant: bool) -> bool:
    """Whether an access-policy rule demands a possession factor (phishing-resistant one)."""
    for c in _constraints(rule):
        possession = c.get("possession")
        if not isinstance(possession, dict):
            continue
        if not phishing_resistant or possession.get("phishingResistant") == "REQUIRED":
            return True
    return False


def _is_account_management(policy: dict[str, Any]) -> bool:
    embedded = policy.get("_embedded") or {}
    return embedded.get("resourceType") == ACCOUNT_MANAGEMENT or str(
        policy.get("name", "")).strip().lower() == "okta account management policy"  # fmt: skip


def _is_admin_console(policy: dict[str, Any]) -> bool:
    return str(policy.get("name", "")).strip().lower() == ADMIN_CONSOLE


def _policy_requires(config: OktaConfig, which, phishing_resistant: bool) -> bool | None:
    matches = [pid for pid, p in config.policies.items() if which(p) and _active(p)]
    if not matches:
        return None
    rules = [r for pid in matches for r in config.rules.get(pid, []) if _active(r)]
    allowing = [r for r in rules if _allows(r)]
    if not rules:
        return None  # the policy without its rules: exported without expand=rules
    return all(_requires(r, phishing_resistant) for r in allowing)


def derive(config: OktaConfig, model: OrgModel) -> None:
    """The ``okta_org`` subject's attributes from what was read."""
    if not config:
        return
    org = model.one("okta_org")
    attrs: dict[str, Any] = {}
    if config.zones:
        blocking = any(
            _active(z) and z.get("usage") == "BLOCKLIST" and _anonymising(z) for z in config.zones
        )
        anonymising_ids = {z.get("id") for z in config.zones if _active(z) and _anonymising(z)}
        denied = any(
            _active(r) and not _allows(r) and anonymising_ids & set(
                ((r.get("conditions") or {}).get("network") or {}).get("include") or [])
            for rules in config.rules.values() for r in rules
        )  # fmt: skip
        attrs["anonymizers_blocked"] = blocking or denied
        attrs["blocklist_zones"] = sorted(
            str(z.get("name")) for z in config.zones if z.get("usage") == "BLOCKLIST"
        )
    if config.policies:
        attrs["admin_console_phishing_resistant"] = _policy_requires(
            config, _is_admin_console, phishing_resistant=True
        )
        attrs["enrolment_requires_existing_factor"] = _policy_requires(
            config, _is_account_management, phishing_resistant=False
        )
        attrs["policies"] = sorted(str(p.get("name")) for p in config.policies.values())
    if config.authenticators:
        attrs["phishing_resistant_authenticator"] = any(
            _active(a) and a.get("key") in PHISHING_RESISTANT for a in config.authenticators
        )
        attrs["authenticators"] = sorted(
            str(a.get("key")) for a in config.authenticators if _active(a)
        )
    org.attrs.update(attrs)
