"""Salesforce records queried through the API: real-time event monitoring's stored events
(LoginEvent, ApiEvent, BulkApiResultEventStore, ReportEvent, ListViewEvent, LoginAsEvent,
UriEvent, LogoutEvent), Event Log Objects (API 61+), and the LoginHistory, SetupAuditTrail
and OauthToken objects.

Input is a SOQL/REST query result (``{"records": [{"attributes": {"type": …}, …}]}``), a JSON
array or NDJSON. Field names: Salesforce Platform Events Developer Guide, "Real-Time Event
Monitoring Objects", and the Object Reference entries for LoginHistory, SetupAuditTrail and
OauthToken. Records exported without ``attributes`` (some collectors drop it) get their type
from the fields they carry; a record that matches no known type is kept as ``other``.
"""

from __future__ import annotations

from crmwatch.schema import MFA_METHODS, RECORD_ID, Category
from crmwatch.sources.jsonstage import Classified, JsonSource
from crmwatch.sources.sqlmap import (
    JsonExtraction,
    Ref,
    acting_user,
    as_bigint,
    case,
    coalesce_sql,
    first,
    ip_or_null,
    lit,
    str_list,
    string_or_null,
    ts_utc,
)
from crmwatch.sql import lit_list

# Type inference for records without ``attributes.type``: the first entry whose keys are all
# present wins, so more specific signatures come first.
SIGNATURES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (t, frozenset(keys))
    for t, keys in (
        ("SetupAuditTrail", {"Action", "Section"}),
        ("OauthToken", {"AppName", "UseCount"}),
        ("LoginHistory", {"LoginTime"}),
        ("LoginAsEvent", {"DelegatedUsername"}),
        ("BulkApiResultEventStore", {"Query", "JobId"}),
        ("ReportEvent", {"ReportId"}),
        ("ListViewEvent", {"ListViewId"}),
        ("ApiEvent", {"Query", "QueriedEntities"}),
        ("ApiEvent", {"Query", "EventIdentifier"}),
        ("UriEvent", {"RecordId", "Operation", "EventIdentifier"}),
        ("LoginEvent", {"LoginUrl", "EventIdentifier"}),
        ("LoginEvent", {"LoginHistoryId", "Status", "EventIdentifier"}),
        ("BulkApi2EventLog", {"JobIdentifier", "JobStatus"}),
        ("AuraRequestEventLog", {"ActionMessage", "UserIdentifier"}),
        ("AuraRequestEventLog", {"RequestIdentifier", "Uri", "UserIdentifier"}),
        ("LogoutEvent", {"EventIdentifier", "SessionKey", "LoginKey"}),
    )
)

CATEGORY: dict[str, Category] = {
    "LoginEvent": Category.AUTHENTICATION,
    "LoginHistory": Category.AUTHENTICATION,
    "LoginAsEvent": Category.AUTHENTICATION,
    "LoginEventStream": Category.AUTHENTICATION,
    "LogoutEvent": Category.LOGOUT,
    "LogoutEventStream": Category.LOGOUT,
    "ApiEvent": Category.API_QUERY,
    "ApiEventStream": Category.API_QUERY,
    "BulkApiResultEventStore": Category.BULK_EXPORT,
    "BulkApiResultEvent": Category.BULK_EXPORT,
    "BulkApi2EventLog": Category.BULK_EXPORT,
    "ReportEvent": Category.REPORT_EXPORT,
    "ReportEventStream": Category.REPORT_EXPORT,
    "ListViewEvent": Category.LIST_VIEW,
    "ListViewEventStream": Category.LIST_VIEW,
    "UriEvent": Category.RECORD_VIEW,
    "UriEventStream": Category.RECORD_VIEW,
    "LightningUriEvent": Category.RECORD_VIEW,
    "LightningUriEventStream": Category.RECORD_VIEW,
    "OauthToken": Category.OAUTH_GRANT,
    "SetupAuditTrail": Category.CONFIG_CHANGE,
}

OPERATION: dict[str, str] = {
    "LoginEvent": "'login'",
    "LoginEventStream": "'login'",
    "LoginHistory": "'login'",
    "LoginAsEvent": "'login_as'",
    "LogoutEvent": "'logout'",
    "LogoutEventStream": "'logout'",
    "OauthToken": "'token_granted'",
    "BulkApiResultEventStore": "'query_result'",
    "BulkApiResultEvent": "'query_result'",
}

# Status values that are a success, and those still pending (lower case, any TwoFA prefix
# removed): the Status picklist of VerificationHistory / IdentityVerificationEvent (Object
# Reference, VerificationHistory) and LoginEvent's Success.
SUCCESS_STATUSES = ("success", "succeeded", "automatedsuccess")
PENDING_STATUSES = ("initiated", "inprogress", "recoverableerror")

# A stored event's Id is the placeholder 000000000000000AAA: never an identity.
PLACEHOLDER_ID = "0{15}AAA|0{15}"


def infer_type(obj: dict) -> str:
    attrs = obj.get("attributes")
    if isinstance(attrs, dict) and isinstance(attrs.get("type"), str):
        return attrs["type"]
    keys = obj.keys()
    for rtype, needed in SIGNATURES:
        if needed <= keys:
            return rtype
    return "other"


def streamed_payload(obj: dict) -> dict | None:
    """The event of a real-time event message as a streaming client saved it:
    ``{"channel": "/event/LoginEventStream", "data": {"schema": …, "payload": {…},
    "event": {"replayId": …}}}`` (Streaming API / CometD, Platform Events Developer Guide);
    None for any other record."""
    data, channel = obj.get("data"), obj.get("channel")
    if not isinstance(channel, str) or not isinstance(data, dict):
        return None
    payload = data.get("payload")
    return payload if isinstance(payload, dict) else None


class SfObjectSource(JsonSource):
    name = "sf-object"
    source = "salesforce"
    type_prefix = "api:"

    def classify(self, fields: JsonExtraction) -> Classified:
        f = fields
        keys = f"json_keys({f.column})"
        signatures = " ".join(
            f"WHEN list_has_all({keys}, [{', '.join(lit(k) for k in sorted(needed))}]) "
            f"THEN {lit(rtype)}"
            for rtype, needed in SIGNATURES
        )
        inferred = (
            f"(CASE WHEN {f.type_of('attributes.type')} = 'VARCHAR' "
            f"THEN {f.ref('attributes.type')} {signatures} ELSE 'other' END)"
        )
        # A streaming client's message: the event is its payload, its type the channel's.
        streamed = (
            f"coalesce({f.type_of('channel')} = 'VARCHAR' AND {f.type_of('data')} = 'OBJECT' "
            f"AND {f.type_of('data.payload')} = 'OBJECT', false)"
        )

        def value(key: str) -> tuple[str, str]:
            return (
                f"(CASE WHEN {streamed} THEN {f.ref('data.payload.' + key)} ELSE {f.ref(key)} END)",
                f"(CASE WHEN {streamed} THEN {f.type_of('data.payload.' + key)} "
                f"ELSE {f.type_of(key)} END)",
            )

        event_id, rid = value("EventIdentifier"), value("Id")
        nid = (
            f"coalesce({string_or_null(*event_id)}, CASE WHEN NOT regexp_full_match("
            f"{rid[0]}, {lit(PLACEHOLDER_ID)}) THEN {string_or_null(*rid)} END)"
        )
        query, qtype, qid = value("Query"), value("QueryType"), value("QueryIdentifier")
        # UniqueQueryEventLog: the SOQL in QueryIdentifier when QueryType is soql.
        unique = (
            f"CASE WHEN {qtype[1]} = 'VARCHAR' AND lower({qtype[0]}) = 'soql' "
            f"AND {qid[1]} = 'VARCHAR' THEN {qid[0]} END"
        )
        soql_text = (
            f"(CASE WHEN coalesce({query[1]}, 'NULL') = 'NULL' THEN {unique} "
            f"WHEN {query[1]} = 'VARCHAR' THEN {query[0]} END)"
        )
        return Classified(
            f"(CASE WHEN {streamed} THEN regexp_extract({f.ref('channel')}, '[^/]*$') "
            f"ELSE {inferred} END)",
            nid,
            doc=f"(CASE WHEN {streamed} THEN json_extract({f.column}, '$.data.payload') END)",
            query=soql_text,
        )

    def exprs(self, ref: Ref, rtype: str) -> dict[str, str]:
        e: dict[str, str] = {}
        e["ts"] = ts_utc(
            first(ref, "EventDate"),
            first(ref, "LoginTime"),
            first(ref, "Timestamp"),
            first(ref, "CreatedDate"),
        )
        query = first(ref, "Query")
        qtype, qid = first(ref, "QueryType"), first(ref, "QueryIdentifier")
        if "NULL" not in (qtype, qid):  # UniqueQueryEventLog: the SOQL when QueryType is soql
            unique = f"(CASE WHEN lower({qtype}) = 'soql' THEN {qid} END)"
            query = unique if query == "NULL" else f"coalesce({query}, {unique})"
        section = first(ref, "Section")
        action = first(ref, "Action")
        grant = (
            f"WHEN {rtype} = 'SetupAuditTrail' AND (lower({section}) = 'connected apps' OR "
            f"lower({action}) LIKE '%connectedapp%') THEN {lit(Category.OAUTH_GRANT)} "
            if section != "NULL" and action != "NULL"
            else ""
        )
        export = first(ref, "ExportFileFormat")
        report_view = (
            f"WHEN {rtype} = 'ReportEvent' AND {export} IS NULL AND "
            f"NOT coalesce(lower({first(ref, 'Operation')}) LIKE '%export%', false) "
            "THEN 'record_view' "
            if export != "NULL"
            else ""
        )
        base = case(rtype, {k: lit(v) for k, v in CATEGORY.items()}, lit(Category.OTHER))
        operation = first(ref, "Operation")
        # UriEvent / LightningUriEvent: Operation Read, or Create / Update / Delete of the
        # record (Platform Events Developer Guide, UriEvent): only a Read is a view.
        uri_change = (
            f"WHEN {rtype} IN ('UriEvent', 'LightningUriEvent') AND lower({operation}) IN "
            f"('create', 'update', 'delete') THEN {lit(Category.RECORD_CHANGE)} "
            if operation != "NULL"
            else ""
        )
        whens = grant + report_view + uri_change
        e["category"] = f"(CASE {whens}ELSE {base} END)" if whens else base
        status = first(ref, "Status")
        is_success = first(ref, "IsSuccess")
        outcome = []
        if status != "NULL":
            # LoginEvent writes Success or the failure's reason; identity verification
            # (IdentityVerificationEvent, VerificationHistory) its own picklist, some values
            # prefixed TwoFA: Succeeded, AutomatedSuccess; Initiated, InProgress and
            # RecoverableError still pending; Denied, ReportedDenied and Failed… failures.
            st = f"lower(regexp_replace({status}, '^TwoFA', ''))"
            outcome.append(
                f"WHEN {status} IS NOT NULL THEN CASE "
                f"WHEN {st} IN {lit_list(SUCCESS_STATUSES)} THEN 'success' "
                f"WHEN {st} IN {lit_list(PENDING_STATUSES)} THEN 'unknown' ELSE 'failure' END"
            )
        if is_success != "NULL":
            outcome.append(
                f"WHEN lower({is_success}) = 'true' THEN 'success' "
                f"WHEN lower({is_success}) = 'false' THEN 'failure'"
            )
        e["outcome"] = f"(CASE {' '.join(outcome)} ELSE 'unknown' END)" if outcome else "'unknown'"
        e["status_detail"] = first(ref, "Status", "JobStatus", "PolicyOutcome")
        e["org_id"] = first(ref, "OrganizationId", "DelegatedOrganizationId")
        # LoginAsEvent(Log) names the administrator in Delegated*: the actor. The user they
        # logged in as (Username, UserId) is the target.
        e.update(acting_user(
            first(ref, "UserId", "CreatedById", "UserIdentifier"),
            first(ref, "Username", "CreatedBy.Username"),
            first(ref, "DelegatedUsername", "DelegatedUserName", "DelegatedUserIdentifier"),
            first(ref, "DelegatedUserIdentifier"),
            first(ref, "DelegatedUsername", "DelegatedUserName"),
        ))  # fmt: skip
        e["actor_type"] = "'user'"
        e["session_key"] = first(ref, "SessionKey")
        e["login_key"] = first(ref, "LoginKey")
        e["src_ip"] = ip_or_null(first(ref, "SourceIp", "ClientIp"))
        iso = first(ref, "CountryIso")
        e["src_country"] = "NULL" if iso == "NULL" else f"upper(nullif({iso}, 'N/A'))"
        e["user_agent"] = first(ref, "UserAgent", "Browser")
        # LoginHistory and LoginEvent write "N/A" where a field does not apply (Application
        # of a failed or API sign-in, CountryIso, ApiType …): no app, not an app named N/A.
        app = first(ref, "Application", "AppName", "Client")
        e["client_app"] = "NULL" if app == "NULL" else f"nullif({app}, 'N/A')"
        entities = first(ref, "QueriedEntities", "EntityType")
        entity = "NULL" if entities == "NULL" else f"nullif(split_part({entities}, ',', 1), '')"
        from_query = "q_object"
        e["object"] = coalesce_sql(entity, from_query)
        op = first(ref, "Operation")
        e["operation"] = case(
            rtype, OPERATION, f"lower({op})" if op != "NULL" else f"lower({rtype})"
        )
        if action != "NULL":
            e["operation"] = (
                f"(CASE WHEN {rtype} = 'SetupAuditTrail' THEN {action} ELSE {e['operation']} END)"
            )
        e["query"] = query
        e["rows"] = as_bigint(first(ref, "RowsReturned", "RowsProcessed", "RecordsProcessed"))
        e["record_ids"] = _record_ids(ref)
        headers = first(ref, "ColumnHeaders")
        lists = []
        if headers != "NULL":
            lists.append(
                f"list_filter(list_transform(string_split(trim({headers}, '[] '), ','), "
                "lambda x: trim(x)), lambda x: x <> '')"
            )
        lists.append("q_fields")
        e["fields"] = f"coalesce({', '.join(lists)})" if lists else "NULL"
        e["job_id"] = first(ref, "JobId", "JobIdentifier")
        amr = first(ref, "AuthMethodReference")
        level = first(ref, "SessionLevel")
        mfa = []
        if amr != "NULL":
            mfa.append(
                f"WHEN {amr} IS NOT NULL THEN regexp_matches(lower({amr}), {lit(MFA_METHODS)})"
            )
        if level != "NULL":
            mfa.append(f"WHEN {level} = 'HIGH_ASSURANCE' THEN true")
        e["mfa"] = (
            f"(CASE WHEN {rtype} IN ('LoginEvent', 'LoginEventStream', 'LoginHistory') THEN "
            f"CASE {' '.join(mfa)} END END)"
            if mfa
            else "NULL"
        )
        return e


def _record_ids(ref: Ref) -> str:
    """Ids of the records an event returned: ``Records`` JSON, or a single ``RecordId``."""
    parts = []
    records = first(ref, "Records")
    if records != "NULL":
        parts.append(
            f"nullif(coalesce(nullif(regexp_extract_all({records}, "
            f'\'"Id"\\s*:\\s*"({RECORD_ID})"\', 1), []), '
            f"regexp_extract_all({records}, '\"({RECORD_ID})\"', 1)), [])"
        )
    record_id = first(ref, "RecordId")
    if record_id != "NULL":
        parts.append(
            str_list(
                f"CASE WHEN regexp_full_match({record_id}, '{RECORD_ID}') THEN {record_id} END"
            )
        )
    return f"coalesce({', '.join(parts)})" if parts else "NULL"
