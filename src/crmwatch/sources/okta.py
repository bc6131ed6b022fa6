"""Okta System Log events, as ``GET /api/v1/logs`` returns them (a JSON array) or as NDJSON.

Field reference: Okta Developer, "System Log API" LogEvent object
(developer.okta.com/docs/reference/api/system-log/#logevent-object). Event types: Okta's
Event Types catalogue (developer.okta.com/docs/reference/api/event-types/).
"""

from __future__ import annotations

from crmwatch.schema import Category
from crmwatch.sources.jsonstage import Classified, JsonSource
from crmwatch.sources.sqlmap import (
    JsonExtraction,
    Ref,
    first,
    ip_or_null,
    lit,
    string_or_null,
    text_or,
    ts_utc,
)

# eventType prefix → category; the longest matching prefix wins.
CATEGORY_PREFIXES: tuple[tuple[str, Category], ...] = (
    ("user.authentication.auth_via_mfa", Category.AUTHENTICATION),
    ("user.session.impersonation", Category.AUTHENTICATION),
    ("user.session.end", Category.LOGOUT),
    ("user.session.start", Category.AUTHENTICATION),
    ("user.authentication", Category.AUTHENTICATION),
    ("user.mfa", Category.MFA_CHANGE),
    ("user.account.reset_factor", Category.MFA_CHANGE),
    ("system.mfa", Category.MFA_CHANGE),
    ("app.oauth2", Category.OAUTH_GRANT),
    ("policy.evaluate_sign_on", Category.AUTHENTICATION),
    ("policy.", Category.CONFIG_CHANGE),
    ("system.", Category.CONFIG_CHANGE),
    ("application.", Category.CONFIG_CHANGE),
    ("group.", Category.CONFIG_CHANGE),
    ("app.user_management", Category.CONFIG_CHANGE),
    ("user.account", Category.CONFIG_CHANGE),
    ("user.lifecycle", Category.CONFIG_CHANGE),
    # A factor sent during a sign-in ("fired whenever a Push is sent"): part of authenticating,
    # and the unit of MFA fatigue; not a configuration change like the rest of system.*.
    ("system.push.send_factor_verify_push", Category.AUTHENTICATION),
    ("system.sms.send_factor_verify_message", Category.AUTHENTICATION),
    ("system.voice.send_factor_verify_call", Category.AUTHENTICATION),
    # Custom admin roles and resource sets (iam.role.create, iam.resourceset.bindings.add) and
    # network zones (zone.update, zone.delete): who may administer, and from where.
    ("iam.", Category.CONFIG_CHANGE),
    ("zone.", Category.CONFIG_CHANGE),
)
# Longest prefix first, whatever the order written above.
CATEGORY_PREFIXES = tuple(sorted(CATEGORY_PREFIXES, key=lambda pc: -len(pc[0])))

# The LogEvent object's keys in the API's spelling (System Log API, LogEvent object): SIEMs
# such as Panther and OpenSearch store them lower-cased, and the mapping reads these names.
OKTA_KEYS = (
    "uuid", "published", "eventType", "version", "severity", "legacyEventType",
    "displayMessage", "actor", "id", "type", "alternateId", "displayName", "detailEntry",
    "client", "userAgent", "rawUserAgent", "os", "browser", "zone", "device", "ipAddress",
    "geographicalContext", "city", "state", "country", "postalCode", "geolocation", "lat",
    "lon", "outcome", "result", "reason", "target", "transaction", "detail", "debugContext",
    "debugData", "authenticationContext", "authenticationProvider", "credentialProvider",
    "credentialType", "issuer", "externalSessionId", "interface", "authenticationStep",
    "rootSessionId", "securityContext", "asNumber", "asOrg", "isp", "domain", "isProxy",
    "request", "ipChain", "behaviors", "threatSuspected", "changeDetails",
)  # fmt: skip


def camel_case(raw: str) -> str:
    """SQL of a lower-cased LogEvent (compact JSON text) with the API's key names back, at
    every level (other keys as they are). In compact JSON a quote inside a string is escaped,
    so ``"name":`` can only be a key."""
    for key in OKTA_KEYS:
        if key != key.lower():
            lower, camel = lit('"' + key.lower() + '":'), lit('"' + key + '":')
            raw = f"replace({raw}, {lower}, {camel})"
    return raw


# actor.type values that are software rather than a person.
APP_ACTORS = ("PublicClientApp", "AppInstance", "SystemPrincipal", "Client")


class OktaSource(JsonSource):
    name = "okta"
    source = "okta"
    type_prefix = "okta:"
    keyed = False  # every column is read through first(): a missing key is an empty one

    def classify(self, fields: JsonExtraction) -> Classified:
        # Lower-cased by a SIEM: read through the API's names (the type and id keep theirs).
        lowered = (
            f"({fields.type_of('eventType')} IS NULL AND {fields.type_of('eventtype')} IS NOT NULL)"
        )
        value = (
            f"(CASE WHEN {lowered} THEN {fields.ref('eventtype')} "
            f"ELSE {fields.ref('eventType')} END)"
        )
        jtype = (
            f"(CASE WHEN {lowered} THEN {fields.type_of('eventtype')} "
            f"ELSE {fields.type_of('eventType')} END)"
        )
        return Classified(
            text_or(value, jtype, "unknown"),
            string_or_null(fields.ref("uuid"), fields.type_of("uuid")),
            doc=f"(CASE WHEN {lowered} THEN {camel_case(fields.column)} END)",
        )

    def exprs(self, ref: Ref, rtype: str) -> dict[str, str]:
        e: dict[str, str] = {}
        e["ts"] = ts_utc(first(ref, "published"))
        whens = " ".join(
            f"WHEN starts_with({rtype}, {lit(p)}) THEN {lit(c)}" for p, c in CATEGORY_PREFIXES
        )
        e["category"] = f"(CASE {whens} ELSE 'other' END)"
        result = first(ref, "outcome.result")
        e["outcome"] = (
            f"(CASE WHEN upper({result}) IN ('SUCCESS', 'ALLOW') THEN 'success' "
            f"WHEN upper({result}) IN ('FAILURE', 'DENY', 'DENIED') THEN 'failure' "
            "ELSE 'unknown' END)"
        )
        e["status_detail"] = first(ref, "outcome.reason", "outcome.result")
        e["org_id"] = "NULL"
        actor_type = first(ref, "actor.type")
        e["user_id"] = first(ref, "actor.id")
        e["user_name"] = first(ref, "actor.alternateId")
        apps = ", ".join(lit(a) for a in APP_ACTORS)
        e["actor_type"] = f"(CASE WHEN {actor_type} IN ({apps}) THEN 'app' ELSE 'user' END)"
        e["session_key"] = first(ref, "authenticationContext.externalSessionId")
        e["login_key"] = first(
            ref, "authenticationContext.rootSessionId", "authenticationContext.externalSessionId"
        )
        e["src_ip"] = ip_or_null(first(ref, "client.ipAddress"))
        e["src_asn"] = f"try_cast({first(ref, 'securityContext.asNumber')} AS BIGINT)"
        e["src_as_org"] = first(ref, "securityContext.asOrg")
        e["user_agent"] = first(ref, "client.userAgent.rawUserAgent")
        # The targets, read with the other keys (their JSON text), once per row.
        targets = f"coalesce(try_cast({ref('target') or 'NULL'} AS JSON[]), [])"
        # The application a sign-on was for: the AppInstance among the targets.
        e["client_app"] = (
            f"json_extract_string(list_filter({targets}, "
            "lambda t: json_extract_string(t, '$.type') = 'AppInstance')[1], '$.displayName')"
        )
        e["operation"] = rtype
        # Impersonation names the person acted as among the targets (type User).
        e["target_user"] = (
            f"(CASE WHEN starts_with({rtype}, 'user.session.impersonation') THEN "
            f"json_extract_string(list_filter({targets}, "
            "lambda t: json_extract_string(t, '$.type') = 'User')[1], '$.alternateId') END)"
        )
        e["mfa"] = (
            f"(CASE WHEN {rtype} = 'user.authentication.auth_via_mfa' THEN "
            f"upper({result}) = 'SUCCESS' END)"
        )
        return e
