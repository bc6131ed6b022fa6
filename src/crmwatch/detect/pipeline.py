"""The field-mapping pipeline every rule passes through before it becomes SQL.

Two jobs, both keyed on the rule's ``logsource.product``:

* ``okta`` and ``salesforce`` rules see only their source's events (a ``source`` condition is
  added), so a SigmaHQ Okta rule never matches a Salesforce event with a similar field. Rules
  meant for both (sign-in anomalies) use another product, e.g. ``crmwatch``.
* Okta rules may use the System Log's own field names, as SigmaHQ's do (``eventType``,
  ``actor.alternateId``, ``outcome.result``, ``target.displayName``, …), in Okta's camelCase or
  all lower-case (``eventtype``, ``actor.alternateid``, ``legacyeventtype``). They become the
  normalised column where one holds exactly that field (docs/sources.md), else the raw path in
  Okta's own spelling. ``target`` and ``request.ipChain`` are arrays: a condition on
  ``target.displayName`` holds when any element matches.

Okta field names: Okta Developer, System Log API, LogEvent object
(developer.okta.com/docs/reference/api/system-log/#logevent-object).
"""

from __future__ import annotations

from functools import cache

from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations import (
    AddConditionTransformation,
    FieldMappingTransformation,
)

# LogEvent fields, as the System Log API spells them.
OKTA_FIELDS = (
    "uuid", "published", "eventType", "version", "severity", "legacyEventType",
    "displayMessage",
    "actor.id", "actor.type", "actor.alternateId", "actor.displayName",
    "client.ipAddress", "client.device", "client.zone", "client.id",
    "client.userAgent.rawUserAgent", "client.userAgent.os", "client.userAgent.browser",
    "client.geographicalContext.city", "client.geographicalContext.state",
    "client.geographicalContext.country", "client.geographicalContext.postalCode",
    "outcome.result", "outcome.reason",
    "target.id", "target.type", "target.alternateId", "target.displayName",
    "transaction.id", "transaction.type",
    "debugContext.debugData.requestUri", "debugContext.debugData.behaviors",
    "debugContext.debugData.logOnlySecurityData", "debugContext.debugData.risk",
    "debugContext.debugData.threatSuspected", "debugContext.debugData.deviceFingerprint",
    "debugContext.debugData.factor",
    "authenticationContext.authenticationProvider", "authenticationContext.credentialProvider",
    "authenticationContext.credentialType", "authenticationContext.externalSessionId",
    "authenticationContext.interface", "authenticationContext.issuer.id",
    "authenticationContext.rootSessionId",
    "securityContext.asNumber", "securityContext.asOrg", "securityContext.isp",
    "securityContext.domain", "securityContext.isProxy",
    "request.ipChain.ip", "request.ipChain.source",
)  # fmt: skip

# Where a normalised column holds exactly the Okta field (src/crmwatch/sources/okta.py).
OKTA_COLUMNS = {
    "eventType": "operation",
    "actor.id": "user_id",
    "actor.alternateId": "user_name",
    "client.ipAddress": "src_ip",
    "client.userAgent.rawUserAgent": "user_agent",
}

# Raw paths that run through a JSON array: a condition holds when any element matches.
ARRAY_ROOTS = ("target", "request.ipChain")


def okta_field_mapping() -> dict[str, str]:
    """Okta's spelling and its lower-case form → the column or ``raw.`` path."""
    mapping: dict[str, str] = {}
    for name in OKTA_FIELDS:
        target = OKTA_COLUMNS.get(name, f"raw.{name}")
        mapping[name] = target
        mapping[name.lower()] = target
    return mapping


@cache
def crmwatch_pipeline() -> ProcessingPipeline:
    def only(product: str) -> list:
        return [LogsourceCondition(product=product)]

    return ProcessingPipeline(
        name="crmwatch",
        priority=20,
        items=[
            ProcessingItem(
                FieldMappingTransformation(okta_field_mapping()),
                identifier="okta_fields",
                rule_conditions=only("okta"),
            ),
            ProcessingItem(
                AddConditionTransformation({"source": "okta"}),
                identifier="okta_source",
                rule_conditions=only("okta"),
            ),
            ProcessingItem(
                AddConditionTransformation({"source": "salesforce"}),
                identifier="salesforce_source",
                rule_conditions=only("salesforce"),
            ),
        ],
    )
