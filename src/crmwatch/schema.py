"""The normalised event and the store's tables.

Every later stage (detect, incidents, scope, notify) reads the ``events`` view defined here,
so this module is the contract between them. Names follow OCSF where OCSF has the field.

Enrichment (country, AS, IP class, user-agent class) is not copied into every event: it lives
in the small dimension tables ``ip_info`` and ``ua_info`` and the ``events`` view joins them.
That keeps ingest fast and lets ``crmwatch enrich --refresh`` reclassify every event at once
when the user changes their corporate ranges or replaces a bundled list.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """What an event is about, coarse enough for rules to select on."""

    AUTHENTICATION = "authentication"
    API_QUERY = "api_query"
    BULK_EXPORT = "bulk_export"
    REPORT_EXPORT = "report_export"
    RECORD_VIEW = "record_view"
    RECORD_CHANGE = "record_change"  # a record created, edited or deleted in the UI
    LIST_VIEW = "list_view"
    OAUTH_GRANT = "oauth_grant"
    CONFIG_CHANGE = "config_change"
    MFA_CHANGE = "mfa_change"
    LOGOUT = "logout"
    OTHER = "other"


class Reason(StrEnum):
    """Why a record was quarantined instead of stored."""

    BAD_QUOTING = "bad_quoting"
    WRONG_COLUMN_COUNT = "wrong_column_count"
    BAD_TIMESTAMP = "bad_timestamp"
    INVALID_UTF8 = "invalid_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_FORMAT = "unknown_format"
    EMPTY_FILE = "empty_file"
    LINE_TOO_LONG = "line_too_long"
    TRUNCATED_INPUT = "truncated_input"


# How notify can write to an exposed customer (``exposures.channel``): their snapshot row has an
# e-mail address, else a postal street, else neither; or the snapshot has no row of theirs. An
# ENUM: a byte per exposure (as text, bench/scope's 7.4M took a quarter CPU-second more to write).
CHANNEL_TYPE = "ENUM('email', 'post', 'none', 'unknown')"


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    doc: str
    # Long, high-entropy strings (ids, raw records) write much faster as ZSTD than with
    # DuckDB's default dictionary/FSST analysis: -37 % ingest write time, measured.
    compression: str | None = None

    @property
    def ddl(self) -> str:
        using = f" USING COMPRESSION {self.compression}" if self.compression else ""
        return f"{self.name} {self.sql_type}{using}"


# Columns stored per event. The ``events`` view exposes these plus the enrichment columns.
BASE_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "VARCHAR", "md5 of the id scope and the record: stable, for dedupe", "zstd"),
    Column("ts", "TIMESTAMP", "event time, UTC"),
    Column("source", "VARCHAR", "salesforce | okta"),
    Column("source_type", "VARCHAR", "format and native type, e.g. elf:BulkApi2, api:ApiEvent"),
    Column("category", "VARCHAR", "one of Category"),
    Column("outcome", "VARCHAR", "success | failure | unknown"),
    Column("status_detail", "VARCHAR", "the source's own status (LOGIN_STATUS, JOB_STATUS, …)"),
    Column("org_id", "VARCHAR", "Salesforce org id or Okta org"),
    Column("user_id", "VARCHAR", "the acting user's id in the source"),
    Column("user_name", "VARCHAR", "the acting user's login name (username or email)"),
    Column("actor_type", "VARCHAR", "user | integration | app"),
    Column("session_key", "VARCHAR", "the source's session id"),
    Column("login_key", "VARCHAR", "Salesforce LOGIN_KEY / Okta root session: groups a login"),
    Column("src_ip", "VARCHAR", "client IP, only when the source gave a valid IP"),
    Column("src_country", "VARCHAR", "ISO country the source itself reported, if any"),
    Column("src_asn", "BIGINT", "AS number the source itself reported, if any"),
    Column("src_as_org", "VARCHAR", "AS organisation the source itself reported, if any"),
    Column("user_agent", "VARCHAR", "raw user-agent string"),
    Column("client_app", "VARCHAR", "connected app / API client / OAuth app name"),
    Column("object", "VARCHAR", "CRM object touched (Contact, Account, …)"),
    Column("operation", "VARCHAR", "what was done (query, describe, export, …)"),
    Column("query", "VARCHAR", "SOQL text when the source carries it", "zstd"),
    Column("rows", "BIGINT", "rows processed or returned"),
    Column("record_ids", "VARCHAR[]", "ids of records the event exposed, when known"),
    Column("fields", "VARCHAR[]", "fields the event exposed, when known"),
    Column("job_id", "VARCHAR", "bulk job id"),
    Column("mfa", "BOOLEAN", "true if this authentication used MFA; null if the source is silent"),
    Column(
        "raw", "JSON", "the source record (an array of values for CSV rows: see raw_schema)", "zstd"
    ),
    Column("raw_schema", "VARCHAR", "for CSV rows: the raw_schemas row naming the values"),
    Column("file_id", "BIGINT", "ingest_files row of the first file this event came from"),
    Column("ingest_line", "BIGINT", "line of the record in that file (JSON inputs)"),
    # Last, so that stores made before it gain it by ALTER TABLE in the same position.
    Column(
        "target_user",
        "VARCHAR",
        "the account acted on when it is not the actor's: the user a Login-As impersonated",
    ),
    Column(
        "native_id",
        "VARCHAR",
        "the source's own id of the record (uuid, EventIdentifier, Id), when it has one: not "
        "the identity (a re-export may repeat it with other content), counted when it collides",
        "zstd",
    ),
)

BASE_NAMES: tuple[str, ...] = tuple(c.name for c in BASE_COLUMNS)

# Columns the view adds from the dimension tables.
ENRICHED_COLUMNS: tuple[Column, ...] = (
    Column("country", "VARCHAR", "ISO 3166-1 alpha-2 country of src_ip"),
    Column("asn", "BIGINT", "AS number of src_ip (from the source when it reports one)"),
    Column("as_org", "VARCHAR", "AS organisation of src_ip"),
    Column("ip_class", "VARCHAR", "tor | vpn | hosting | corporate | private | unknown"),
    Column("ua_class", "VARCHAR", "browser | mobile-app | salesforce-tool | script | unknown"),
    Column("ingest_file", "VARCHAR", "path of the first file this event came from"),
)

# Sigma's alert levels, lowest first: the one order every stage compares levels by.
# Values that stand for "no value" in the columns events are linked on: never an identity.
# Okta writes "unknown" for the actor and externalSessionId of system events (ThreatInsight);
# Salesforce writes "N/A" where a field does not apply and 000000000000000AAA as the Id of
# stored real-time events; "Salesforce.com IP" for its own infrastructure; publishers of
# sample logs redact to markers. Without this two strangers sharing "unknown" became one
# incident. Listed case by case: an IN over literals costs ingest nothing measurable, lower()
# on every key column would.
PLACEHOLDERS: tuple[str, ...] = (
    "unknown", "Unknown", "UNKNOWN", "N/A", "n/a", "NA", "-", "null", "NULL", "None",
    "000000000000000AAA", "000000000000000", "Salesforce.com IP",
    "IP_ADDRESS_REMOVED", "REDACTED", "redacted", "[REDACTED]", "<redacted>",
)  # fmt: skip
KEY_COLUMNS: tuple[str, ...] = (
    "user_id", "user_name", "target_user", "session_key", "login_key", "org_id", "src_ip",
    "client_app",
)  # fmt: skip

LEVELS = ("informational", "low", "medium", "high", "critical")


def principal_sql(prefix: str = "") -> str:
    """SQL naming who acted, as shown: the login name, else the user id. ``prefix`` is a table
    alias with its dot (``"e."``)."""
    return f"coalesce({prefix}user_name, {prefix}user_id)"


def person_sql(prefix: str = "") -> str:
    """SQL naming who acted, compared case-insensitively (a person's events group on it)."""
    return f"lower({principal_sql(prefix)})"


# A Salesforce record id, 15 or 18 characters (the 18-character form adds a case checksum).
RECORD_ID = "[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?"
# An authentication method reference that is a second factor (Salesforce's
# AuthMethodReference / AUTHENTICATION_METHOD_REFERENCE, RFC 8176 values and Salesforce's own).
MFA_METHODS = "mfa|otp|totp|hwk|swk|fido|u2f|sms|phr"

IP_CLASSES = ("private", "corporate", "tor", "vpn", "hosting", "unknown")
UA_CLASSES = ("browser", "mobile-app", "salesforce-tool", "script", "unknown")

# Every table of a store, in the order DDL creates them. A store at this layout that lacks one
# has been damaged (a table dropped, a file truncated): crmwatch refuses it rather than answer
# from an empty table recreated in its place (crmwatch.store).
TABLES: tuple[str, ...] = (
    "events_base",
    "ingest_files",
    "quarantine",
    "raw_schemas",
    "ip_info",
    "ua_info",
    "meta",
    "alerts",
    "incidents",
    "incident_alerts",
    "incident_events",
    "exposures",
    "exposure_fieldsets",
    "exposure_events",
    "scopes",
    "ingest_runs",
    "posture_audits",
    "posture_findings",
    "posture_subjects",
    "notify_packages",
    "scope_verdicts",
    "console_users",
    "console_sessions",
    "console_audit",
    "connector_state",
    "connector_pulls",
    "deliveries",
    "containment_actions",
)

DDL: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS events_base (" + ", ".join(c.ddl for c in BASE_COLUMNS) + ")",
    "ALTER TABLE events_base ADD COLUMN IF NOT EXISTS target_user VARCHAR",
    "ALTER TABLE events_base ADD COLUMN IF NOT EXISTS native_id VARCHAR",
    """CREATE TABLE IF NOT EXISTS ingest_files (
        file_id BIGINT PRIMARY KEY, path VARCHAR, format VARCHAR, size BIGINT,
        records BIGINT, skipped_headers BIGINT, quarantined BIGINT)""",
    # Stores made before unchanged files were skipped: NULL never matches, so read once more.
    "ALTER TABLE ingest_files ADD COLUMN IF NOT EXISTS mtime_ns BIGINT",
    """CREATE TABLE IF NOT EXISTS quarantine (
        quarantine_id VARCHAR PRIMARY KEY, file_id BIGINT, path VARCHAR, line BIGINT,
        byte_offset BIGINT, reason VARCHAR, detail VARCHAR)""",
    # How many records an entry stands for: 1, or a whole file's lines.
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS records BIGINT DEFAULT 1",
    "CREATE TABLE IF NOT EXISTS raw_schemas (schema_id VARCHAR PRIMARY KEY, keys VARCHAR[])",
    """CREATE TABLE IF NOT EXISTS ip_info (
        ip VARCHAR PRIMARY KEY, country VARCHAR, asn BIGINT, as_org VARCHAR,
        ip_class VARCHAR, class_source VARCHAR)""",
    "CREATE TABLE IF NOT EXISTS ua_info (user_agent VARCHAR PRIMARY KEY, ua_class VARCHAR)",
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS alerts (
        alert_id VARCHAR PRIMARY KEY, rule_id VARCHAR, title VARCHAR, level VARCHAR,
        tags VARCHAR[], principal VARCHAR, first_ts TIMESTAMP, last_ts TIMESTAMP,
        event_ids VARCHAR[], key_fields JSON, detected_at TIMESTAMP, fired_at TIMESTAMP)""",
    # Stores made before alerts had fired_at (stored alerts keep NULL: first_ts stands in).
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS fired_at TIMESTAMP",
    # The risk an alert adds to what it names (crmwatch.incidents); NULL: its level's default.
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS risk INTEGER",
    # Incidents are rebuilt from alerts as a whole (crmwatch.incidents); body is the JSON
    # the CLI prints, the other columns are there to sort and filter on.
    """CREATE TABLE IF NOT EXISTS incidents (
        incident_id VARCHAR PRIMARY KEY, severity VARCHAR, first_malicious_at TIMESTAMP,
        first_alert_at TIMESTAMP, last_event_at TIMESTAMP, body JSON)""",
    "CREATE TABLE IF NOT EXISTS incident_alerts (incident_id VARCHAR, alert_id VARCHAR)",
    # role: evidence | session | attacker ip | origin (why the event belongs to the incident).
    "CREATE TABLE IF NOT EXISTS incident_events (incident_id VARCHAR, event_id VARCHAR, "
    "role VARCHAR)",
    # Scope (crmwatch.scope): one row per exposed record — ids, field names, coarse
    # jurisdiction and how the customer can be written to (channel: email | post | none |
    # unknown, and a two-letter language); contact details stay in the snapshot.
    # Records reached by the same events share a field set (its fields and evidence events);
    # first_event is the exposure_events entry that exposed the record first (NULL: the field
    # set's first event, when each mask bit is one event); customer_id is
    # NULL when the record is the customer itself (a case's contact otherwise); us_state
    # holds the state or province code of a US or Canadian customer (scope.results.region).
    # (ids write ~25 % faster as ZSTD than with the default analysis: bench/scope.py)
    f"""CREATE TABLE IF NOT EXISTS exposures (
        incident_id VARCHAR, object VARCHAR, record_id VARCHAR USING COMPRESSION zstd,
        fieldset UBIGINT, first_event INTEGER, confidence VARCHAR,
        customer_id VARCHAR USING COMPRESSION zstd, country VARCHAR, us_state VARCHAR,
        channel {CHANNEL_TYPE}, language VARCHAR)""",
    # how notify can write to the customer, read from the snapshot by scope (NULL: scoped
    # before scope read it; notify then reads the snapshot itself)
    f"ALTER TABLE exposures ADD COLUMN IF NOT EXISTS channel {CHANNEL_TYPE}",
    "ALTER TABLE exposures ADD COLUMN IF NOT EXISTS language VARCHAR",
    """CREATE TABLE IF NOT EXISTS exposure_fieldsets (
        incident_id VARCHAR, fieldset UBIGINT, fields VARCHAR[], event_ids VARCHAR[],
        first_event INTEGER)""",
    """CREATE TABLE IF NOT EXISTS exposure_events (
        incident_id VARCHAR, event_ix INTEGER, event_id VARCHAR, ts TIMESTAMP)""",
    """CREATE OR REPLACE VIEW exposure_details AS
    SELECT x.incident_id, x.object, x.record_id, f.fields, e.ts AS first_exposed_at,
        e.event_id AS first_event_id, f.event_ids, x.confidence,
        coalesce(x.customer_id, x.record_id) AS customer_id, x.country, x.us_state
    FROM exposures x JOIN exposure_fieldsets f USING (incident_id, fieldset)
    JOIN exposure_events e ON e.incident_id = x.incident_id
        AND e.event_ix = coalesce(x.first_event, f.first_event)""",
    # Posture audits (crmwatch.posture.results): the summary, the findings (drift ones have
    # ``drift`` set) with the people, apps and rules they concern, and every subject seen, so
    # the next audit can tell what changed.
    """CREATE TABLE IF NOT EXISTS posture_audits (
        audit_id VARCHAR PRIMARY KEY, audited_at TIMESTAMP, sources VARCHAR[], summary JSON)""",
    """CREATE TABLE IF NOT EXISTS posture_findings (
        audit_id VARCHAR, check_id VARCHAR, severity VARCHAR, title VARCHAR,
        subject_kind VARCHAR, subjects VARCHAR[], principals VARCHAR[], apps VARCHAR[],
        rule_ids VARCHAR[], drift VARCHAR, body JSON)""",
    """CREATE TABLE IF NOT EXISTS posture_subjects (
        audit_id VARCHAR, kind VARCHAR, name VARCHAR, attrs JSON)""",
    # Notification packages (crmwatch.notify.package): where each incident's newest package was
    # written and its obligations.json, so the console can show deadlines and offer its files.
    """CREATE TABLE IF NOT EXISTS notify_packages (
        incident_id VARCHAR PRIMARY KEY, folder VARCHAR, aware_at TIMESTAMP,
        computed_at TIMESTAMP, body JSON)""",
    # The web console's accounts (argon2 hashes), sessions (only a hash of each cookie is
    # kept, so a copy of the store opens no session) and its audit trail: every reveal of a
    # customer identifier and every download of contact details (crmwatch.console).
    """CREATE TABLE IF NOT EXISTS console_users (
        name VARCHAR PRIMARY KEY, role VARCHAR, password_hash VARCHAR, created_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS console_sessions (
        token_hash VARCHAR PRIMARY KEY, name VARCHAR, csrf VARCHAR, created_at TIMESTAMP,
        expires_at TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS console_audit (
        done_at TIMESTAMP, name VARCHAR, action VARCHAR, incident_id VARCHAR, target VARCHAR,
        remote VARCHAR)""",
    # What each event of a scope exposed (scope.evidence.EventScope), beside the summary.
    """CREATE TABLE IF NOT EXISTS scope_verdicts (
        incident_id VARCHAR, event_id VARCHAR, ts TIMESTAMP, source_type VARCHAR,
        object VARCHAR, kind VARCHAR, records BIGINT, rows_logged BIGINT, upper_bound BIGINT,
        fields VARCHAR[], note VARCHAR)""",
    # The connectors (crmwatch.connectors): where each stream resumes (an Okta next link, a
    # Salesforce high-water mark), and every pull's account.
    """CREATE TABLE IF NOT EXISTS connector_state (
        connector VARCHAR, stream VARCHAR, position VARCHAR, updated_at TIMESTAMP,
        PRIMARY KEY (connector, stream))""",
    """CREATE TABLE IF NOT EXISTS connector_pulls (
        connector VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, pages BIGINT,
        inserted BIGINT, retries BIGINT, status VARCHAR, detail VARCHAR)""",
    # Incidents delivered (crmwatch.respond.deliver): to which channel, at which severity.
    """CREATE TABLE IF NOT EXISTS deliveries (
        incident_id VARCHAR, channel VARCHAR, severity VARCHAR, activity VARCHAR,
        delivered_at TIMESTAMP, attempts INTEGER, status VARCHAR, detail VARCHAR)""",
    # Containment (crmwatch.respond.contain): every request proposed or sent, by whom, and the
    # API's answer.
    """CREATE TABLE IF NOT EXISTS containment_actions (
        incident_id VARCHAR, done_at TIMESTAMP, operator VARCHAR, system VARCHAR,
        kind VARCHAR, target VARCHAR, request VARCHAR, dry_run BOOLEAN, status VARCHAR,
        answer VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS scopes (
        incident_id VARCHAR PRIMARY KEY, scoped_at TIMESTAMP, summary JSON)""",
    # IPv4 dotted quad → integer, NULL for anything else: Sigma's cidr modifier compiles to
    # integer division by the network size (DuckDB's inet extension cannot be fetched offline).
    "CREATE OR REPLACE MACRO ipv4_int(ip) AS (CASE WHEN regexp_full_match(ip, "
    "'[0-9]{1,3}(\\.[0-9]{1,3}){3}') THEN "
    "try_cast(split_part(ip, '.', 1) AS BIGINT) * 16777216 + "
    "try_cast(split_part(ip, '.', 2) AS BIGINT) * 65536 + "
    "try_cast(split_part(ip, '.', 3) AS BIGINT) * 256 + "
    "try_cast(split_part(ip, '.', 4) AS BIGINT) END)",
    """CREATE TABLE IF NOT EXISTS ingest_runs (
        started_at TIMESTAMP, finished_at TIMESTAMP, files BIGINT, records BIGINT,
        inserted BIGINT, duplicates BIGINT, quarantined BIGINT, skipped_headers BIGINT)""",
    # The raw object of a CSV row is rebuilt from its values and its header only when read.
    """CREATE OR REPLACE VIEW events AS
    SELECT b.event_id, b.ts, b.source, b.source_type, b.category, b.outcome, b.status_detail,
        b.org_id, b.user_id, b.user_name, b.actor_type, b.target_user, b.session_key,
        b.login_key, b.src_ip,
        coalesce(i.country, b.src_country) AS country,
        -- the AS number and its organisation as one pair from one source: the bundled
        -- database when it knows the address (the same for every log), else the log's own
        CASE WHEN i.asn IS NOT NULL OR i.as_org IS NOT NULL THEN i.asn ELSE b.src_asn END
            AS asn,
        CASE WHEN i.asn IS NOT NULL OR i.as_org IS NOT NULL THEN i.as_org
             ELSE b.src_as_org END AS as_org,
        CASE WHEN b.src_ip IS NULL THEN 'unknown' ELSE coalesce(i.ip_class, 'unknown') END
            AS ip_class,
        b.user_agent,
        CASE WHEN b.user_agent IS NULL THEN 'unknown' ELSE coalesce(u.ua_class, 'unknown') END
            AS ua_class,
        b.client_app, b.object, b.operation, b.query, b.rows, b.record_ids, b.fields, b.job_id,
        b.mfa,
        CASE WHEN b.raw_schema IS NULL THEN b.raw
             ELSE to_json(map(s.keys, from_json(b.raw, '["VARCHAR"]'))) END AS raw,
        f.path AS ingest_file, b.ingest_line, b.native_id
    FROM events_base b
    LEFT JOIN ip_info i ON i.ip = b.src_ip
    LEFT JOIN ua_info u ON u.user_agent = b.user_agent
    LEFT JOIN raw_schemas s ON s.schema_id = b.raw_schema
    LEFT JOIN ingest_files f ON f.file_id = b.file_id""",
)

EVENT_VIEW_COLUMNS: tuple[str, ...] = (
    "event_id",
    "ts",
    "source",
    "source_type",
    "category",
    "outcome",
    "status_detail",
    "org_id",
    "user_id",
    "user_name",
    "actor_type",
    "target_user",
    "session_key",
    "login_key",
    "src_ip",
    "country",
    "asn",
    "as_org",
    "ip_class",
    "user_agent",
    "ua_class",
    "client_app",
    "object",
    "operation",
    "query",
    "rows",
    "record_ids",
    "fields",
    "job_id",
    "mfa",
    "raw",
    "ingest_file",
    "ingest_line",
    "native_id",
)
