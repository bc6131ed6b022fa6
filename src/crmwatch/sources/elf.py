"""Salesforce EventLogFile (ELF): CSV as Salesforce serves it, and the same rows as JSON.

Columns differ by event type and by release, so the mapping is header-driven: each
normalised column lists the ELF columns that can feed it and whatever the file has is used.
Field meanings: Salesforce Object Reference, "EventLogFile Supported Event Types"
(developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/
sforce_api_objects_eventlogfile_supportedeventtypes.htm).

CSV rows are read by DuckDB's own CSV reader (the hot path of the whole product); the raw
record is kept as a JSON array of the row's values plus a header entry in ``raw_schemas``,
which the ``events`` view turns back into an object.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import tempfile
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa

from crmwatch.errors import Location, SourceFormatError
from crmwatch.schema import MFA_METHODS, RECORD_ID, Category, Reason
from crmwatch.sources.base import (
    STAGE_TABLE,
    Content,
    InputFile,
    Quarantine,
    Source,
    Staged,
    StageReport,
    file_encoding,
    is_gzip,
    lines_at,
    read_head,
    split_lines,
    why_not_utf8,
)
from crmwatch.sources.jsonstage import Classified, JsonSource
from crmwatch.sources.sqlmap import (
    JsonExtraction,
    Ref,
    acting_user,
    as_bigint,
    case,
    case_columns,
    coalesce_sql,
    column_ref,
    first,
    ip_or_null,
    lit,
    str_list,
    ts_utc,
)
from crmwatch.sql import ident, num, path_lit
from crmwatch.store import Store, trace

# Event types with typed handling; every other type is kept as category "other".
CATEGORY: dict[str, Category] = {
    "Login": Category.AUTHENTICATION,
    "LoginAs": Category.AUTHENTICATION,
    "Logout": Category.LOGOUT,
    "API": Category.API_QUERY,
    "RestApi": Category.API_QUERY,
    "ApiTotalUsage": Category.API_QUERY,
    "BulkApi": Category.BULK_EXPORT,
    "BulkApi2": Category.BULK_EXPORT,
    "ReportExport": Category.REPORT_EXPORT,
    "Report": Category.RECORD_VIEW,
    "URI": Category.RECORD_VIEW,
    "LightningURI": Category.RECORD_VIEW,
}

# API methods that change data: an export detector must not count them as reads.
WRITE_METHODS = (
    "create",
    "update",
    "upsert",
    "delete",
    "undelete",
    "merge",
    "convertlead",
    "emptyrecyclebin",
    "insert",
    "hardDelete",
    "harddelete",
)
BULK_READS = ("query", "queryall")

# Per event type: the columns that carry each value, first non-empty wins.
OBJECT_COLUMNS: dict[str, tuple[str, ...]] = {
    "API": ("ENTITY_NAME",),
    "RestApi": ("ENTITY_NAME",),
    "ApiTotalUsage": ("ENTITY_NAME",),
    "BulkApi": ("ENTITY_TYPE",),
    "BulkApi2": ("ENTITY_TYPE",),
}
ROWS_COLUMNS = ("ROWS_PROCESSED", "ROW_COUNT", "NUMBER_RECORDS", "RECORDS_PROCESSED")
USER_AGENT_COLUMNS = ("BROWSER_TYPE", "CLIENT_INFO", "USER_AGENT")
CLIENT_APP_COLUMNS = ("CONNECTED_APP_NAME", "CLIENT_NAME", "APP_NAME")
URI_COLUMNS = ("URI", "REFERRER_URI", "PAGE_URL")
STATUS_COLUMNS = ("LOGIN_STATUS", "JOB_STATUS", "STATUS_CODE", "REQUEST_STATUS", "SUCCESS")

# REQUEST_STATUS codes, per the ELF field reference.
REQUEST_STATUS_OUTCOME = {
    "S": "'success'",
    "R": "'success'",
    "F": "'failure'",
    "A": "'failure'",
    "N": "'failure'",
    "U": "'unknown'",
}

# Event types whose URI can be a record page (/lightning/r/Account/001…/view): its object and
# record are read from the path. An AuraRequest is a page's server call (URI "/aura", the page
# in PAGE_URL or REFERRER_URI).
PAGE_TYPES = "('URI', 'LightningURI', 'AuraRequest')"


def elf_exprs(ref: Ref, record_path: str | None = None) -> dict[str, str]:
    """SQL for every normalised column of an ELF row, from whatever columns the input has.

    Args:
        record_path: SQL naming ``elf_record_path(ref)`` computed once per row by the caller's
            relation; inline otherwise (DuckDB does not share an expression that appears
            inside two CASEs, and this one is a regex over every page view).
    """
    et = first(ref, "EVENT_TYPE")
    rpath = record_path if record_path is not None else elf_record_path(ref)
    e: dict[str, str] = {}
    e["ts"] = ts_utc(first(ref, "TIMESTAMP_DERIVED"), first(ref, "TIMESTAMP"))
    e["category"] = _category(ref, et)
    e["outcome"] = _outcome(ref)
    e["status_detail"] = first(ref, *STATUS_COLUMNS)
    e["org_id"] = first(ref, "ORGANIZATION_ID")
    # A LoginAs row names the administrator in DELEGATED_USER_* and the user they act as in
    # USER_*: the actor is the administrator, the impersonated user is the target.
    e.update(acting_user(
        first(ref, "USER_ID_DERIVED", "USER_ID"),
        first(ref, "USER_NAME", "USERNAME", "USER_EMAIL"),
        first(ref, "DELEGATED_USER_ID_DERIVED", "DELEGATED_USER_ID", "DELEGATED_USER_NAME"),
        first(ref, "DELEGATED_USER_ID_DERIVED", "DELEGATED_USER_ID"),
        first(ref, "DELEGATED_USER_NAME"),
    ))  # fmt: skip
    e["actor_type"] = "'user'"
    e["session_key"] = first(ref, "SESSION_KEY")
    e["login_key"] = first(ref, "LOGIN_KEY")
    e["src_ip"] = ip_or_null(first(ref, "SOURCE_IP", "CLIENT_IP"))
    ua = first(ref, *USER_AGENT_COLUMNS)
    # RestApi and API rows carry a numeric user-agent *code* (e.g. 9999), not a string.
    e["user_agent"] = (
        "NULL"
        if ua == "NULL"
        else f"(CASE WHEN NOT regexp_full_match({ua}, '[0-9]+') THEN {ua} END)"
    )
    e["client_app"] = first(ref, *CLIENT_APP_COLUMNS)
    # UniqueQuery: QUERY_IDENTIFIER is the SOQL text when QUERY_TYPE is soql, else the id of a
    # report or list view (Object Reference, "Unique Query Event Type", API 64.0).
    qtype, qid = first(ref, "QUERY_TYPE"), first(ref, "QUERY_IDENTIFIER")
    e["query"] = (
        "NULL"
        if "NULL" in (qtype, qid)
        else f"(CASE WHEN {et} = 'UniqueQuery' AND lower({qtype}) = 'soql' THEN {qid} END)"
    )
    e["object"] = _object(ref, et, rpath)
    if e["query"] != "NULL":
        e["object"] = coalesce_sql(
            e["object"],
            f"nullif(regexp_extract({e['query']}, '(?i)\\bFROM\\s+([A-Za-z0-9_]+)', 1), '')",
        )
    e["operation"] = _operation(ref, et)
    e["rows"] = as_bigint(first(ref, *ROWS_COLUMNS))
    e["record_ids"] = _record_ids(ref, et, rpath)
    e["fields"] = _report_columns(ref, et)
    e["job_id"] = first(ref, "JOB_ID")
    amr = first(ref, "AUTHENTICATION_METHOD_REFERENCE")
    e["mfa"] = (
        "NULL"
        if amr == "NULL"
        else f"(CASE WHEN {et} = 'Login' AND {amr} IS NOT NULL THEN "
        f"regexp_matches(lower({amr}), {lit(MFA_METHODS)}) END)"
    )
    return e


def _category(ref: Ref, et: str) -> str:
    base = case(et, {k: lit(v) for k, v in CATEGORY.items()}, lit(Category.OTHER))
    op_bulk = first(ref, "OPERATION_TYPE")
    method = first(ref, "METHOD_NAME")
    refine = []
    if op_bulk != "NULL":
        reads = ", ".join(lit(x) for x in BULK_READS)
        refine.append(
            f"WHEN {et} IN ('BulkApi', 'BulkApi2') AND {op_bulk} IS NOT NULL "
            f"AND lower({op_bulk}) NOT IN ({reads}) THEN 'other'"
        )
    if method != "NULL":
        writes = ", ".join(lit(x.lower()) for x in WRITE_METHODS)
        refine.append(f"WHEN {et} = 'API' AND lower({method}) IN ({writes}) THEN 'other'")
    http = first(ref, "METHOD")
    if http != "NULL":
        # REST writes (a record saved from the mobile app) read nothing out: not a query.
        uri = _uri(ref)
        query_post = f"contains({uri}, '/query') OR contains({uri}, '/composite')"
        refine.append(
            f"WHEN {et} = 'RestApi' AND upper({http}) IN ('PATCH', 'PUT', 'DELETE') THEN 'other' "
            f"WHEN {et} = 'RestApi' AND upper({http}) = 'POST' AND NOT coalesce({query_post}, "
            "false) THEN 'other'"
        )
    return f"(CASE {' '.join(refine)} ELSE {base} END)" if refine else base


def _outcome(ref: Ref) -> str:
    whens = []
    if (s := first(ref, "LOGIN_STATUS")) != "NULL":
        whens.append(
            f"WHEN {s} IS NOT NULL THEN CASE WHEN {s} = 'LOGIN_NO_ERROR' "
            "THEN 'success' ELSE 'failure' END"
        )
    if (s := first(ref, "JOB_STATUS")) != "NULL":
        whens.append(
            f"WHEN {s} IS NOT NULL THEN CASE WHEN lower({s}) IN ('failed', 'aborted') "
            "THEN 'failure' ELSE 'success' END"
        )
    if (s := first(ref, "STATUS_CODE")) != "NULL":
        whens.append(
            f"WHEN try_cast({s} AS INTEGER) IS NOT NULL THEN CASE WHEN "
            f"try_cast({s} AS INTEGER) < 400 THEN 'success' ELSE 'failure' END"
        )
    if (s := first(ref, "SUCCESS")) != "NULL":
        whens.append(
            f"WHEN lower({s}) IN ('1', 'true') THEN 'success' "
            f"WHEN lower({s}) IN ('0', 'false') THEN 'failure'"
        )
    if (s := first(ref, "REQUEST_STATUS")) != "NULL":
        whens.append(f"WHEN {s} IS NOT NULL THEN {case(s, REQUEST_STATUS_OUTCOME, lit('unknown'))}")
    return f"(CASE {' '.join(whens)} ELSE 'unknown' END)" if whens else "'unknown'"


def _uri(ref: Ref) -> str:
    """All URI-like columns in one string: a URI row's own URI is often just "/aura" while
    the record it shows is in REFERRER_URI."""
    present = [sql for k in URI_COLUMNS if (sql := ref(k)) is not None]
    if not present:
        return "NULL"
    return present[0] if len(present) == 1 else f"concat_ws(' ', {', '.join(present)})"


def _object(ref: Ref, et: str, rpath: str) -> str:
    typed = case_columns(ref, et, OBJECT_COLUMNS)
    extra = []
    uri = _uri(ref)
    if uri != "NULL":
        extra.append(
            f"WHEN {et} = 'RestApi' AND contains({uri}, '/sobjects/') THEN "
            f"nullif(regexp_extract(split_part({uri}, '/sobjects/', 2), '^[A-Za-z0-9_]+'), '')"
        )
    if rpath != "NULL":
        extra.append(f"WHEN {et} IN {PAGE_TYPES} THEN nullif({rpath}.object, '')")
    desc = first(ref, "REPORT_DESCRIPTION")
    if desc != "NULL":
        extra.append(
            f"WHEN {et} = 'ReportExport' THEN nullif(regexp_replace("
            f"json_extract_string({_report_json(desc)}, '$.reportMetadata.reportType.type'), "
            "'List$', ''), '')"
        )
    if not extra:
        return typed
    return f"coalesce({typed}, CASE {' '.join(extra)} END)"


def _operation(ref: Ref, et: str) -> str:
    method_name = first(ref, "METHOD_NAME")
    op_type = first(ref, "OPERATION_TYPE")
    http = first(ref, "METHOD", "HTTP_METHOD")
    uri = _uri(ref)
    rest = (
        f"CASE WHEN regexp_matches({uri}, '/queryAll') THEN 'queryall' "
        f"WHEN regexp_matches({uri}, '/query') THEN 'query' "
        f"WHEN regexp_matches({uri}, '/describe') THEN 'describe' "
        f"WHEN regexp_matches({uri}, '/sobjects/?$') THEN 'describe_global' "
        f"WHEN regexp_matches({uri}, '/limits') THEN 'limits' ELSE lower({http}) END"
        if uri != "NULL"
        else f"lower({http})"
    )
    table = {
        "API": f"lower({method_name})",
        "RestApi": rest,
        "BulkApi": f"lower({op_type})",
        "BulkApi2": f"lower({op_type})",
        "ApiTotalUsage": f"lower({http})",
        "Login": "'login'",
        "LoginAs": "'login_as'",
        "Logout": "'logout'",
        "ReportExport": "'export'",
        "Report": "'report_run'",
        "URI": "'view'",
        "LightningURI": "'view'",
    }
    return case(et, {k: v for k, v in table.items() if "NULL" not in v}, f"lower({et})")


def elf_record_path(ref: Ref) -> str:
    """The object and record id of a record page's path (``/r/Contact/003…/view``): one
    struct feeding both the ``object`` and ``record_ids`` columns. One regex in place of two
    splits and a second regex: 0.33 CPU-seconds per 900k URI rows for both, against 1.2."""
    uri = _uri(ref)
    et = first(ref, "EVENT_TYPE")
    if uri == "NULL":
        return "NULL"
    return (
        f"(CASE WHEN {et} IN {PAGE_TYPES} THEN regexp_extract({uri}, "
        f"'/r/([A-Za-z0-9_]+)(?:/({RECORD_ID}))?', ['object', 'id']) END)"
    )


def _record_ids(ref: Ref, et: str, rpath: str) -> str:
    """The record a URI row shows: its id column if it holds an id, else the /r/ path."""
    candidates = []
    for key in ("RECORD_ID", "URI_ID_DERIVED"):
        if (v := first(ref, key)) != "NULL":
            candidates.append(f"CASE WHEN regexp_full_match({v}, '{RECORD_ID}') THEN {v} END")
    if rpath != "NULL":
        candidates.append(f"nullif({rpath}.id, '')")
    if not candidates:
        return "NULL"
    rid = candidates[0] if len(candidates) == 1 else f"coalesce({', '.join(candidates)})"
    return f"(CASE WHEN {et} IN {PAGE_TYPES} THEN {str_list(rid)} END)"


def _report_json(desc: str) -> str:
    return f"try_cast(url_decode(regexp_extract({desc}, 'runReportJson=([^&]*)', 1)) AS JSON)"


def _report_columns(ref: Ref, et: str) -> str:
    desc = first(ref, "REPORT_DESCRIPTION")
    if desc == "NULL":
        return "NULL"
    cols = f"json_extract({_report_json(desc)}, '$.reportMetadata.detailColumns')"
    return f"(CASE WHEN {et} = 'ReportExport' THEN try_cast({cols} AS VARCHAR[]) END)"


def schema_id(header: list[str]) -> str:
    """The id of a header's column set. Rows are stored with their values in the order of
    :func:`raw_order`, so the same rows with their columns in another order are the same
    content, the same event ids and duplicates of each other."""
    return "elf-" + hashlib.md5("\x1f".join(raw_order(header)).encode()).hexdigest()[:16]


def raw_order(header: list[str]) -> list[str]:
    """The order a row's values are stored in: by column name, whatever the file's order."""
    return sorted(header)


# Records a bad-timestamp search parses in Python at a time (:meth:`locate_untimed`).
LOCATE_PAGE = 50_000
# The line of a row Python read (a careful read, lines a broken quote swallowed).
LINE_COLUMN = "_crmwatch_line"
# EventLogFile's TIMESTAMP (yyyyMMddHHmmss.SSS): a value of this form parses (sqlmap.ts_utc).
ELF_TIMESTAMP = "%Y%m%d%H%M%S.%g"
# The column a read locating bad timestamps types, the first the header has: a row whose
# timestamp does not parse has a value there that is no ELF_TIMESTAMP, so the reader rejects
# it, with its position (with neither timestamp column every row is bad, and EVENT_TYPE
# names an event, not a time).
LOCATING_COLUMNS = ("TIMESTAMP", "TIMESTAMP_DERIVED", "EVENT_TYPE")

HEADER_BYTES = 1 << 20  # a header longer than this is no EventLogFile header
_LINE_END = re.compile(rb"\r\n|\r|\n")


def _first_line(head: bytes) -> str:
    """The first line of UTF-8 data, whatever its line ends (CR alone included); later
    lines are not decoded here."""
    return _LINE_END.split(head, maxsplit=1)[0].decode("utf-8")


def read_header(path) -> list[str]:
    """The header (first line) of a possibly gzipped CSV in UTF-8 or UTF-16, its names made
    unique (:func:`unique_names`)."""
    return unique_names(_written_header(path))


def _written_header(path) -> list[str]:
    try:
        return next(csv.reader([_first_line(read_head(path, HEADER_BYTES))]), [])
    except (UnicodeDecodeError, csv.Error) as e:
        raise SourceFormatError(f"cannot read CSV header: {e}", Location(path, 1)) from e


def unique_names(header: list[str]) -> list[str]:
    """A header whose repeated names get a suffix (``USER_ID``, ``USER_ID_2``): every column is
    kept, the mapping reads the first of each name, and ingest notes the renaming."""
    seen: Counter[str] = Counter()
    out = []
    for name in header:
        seen[name] += 1
        renamed = name if seen[name] == 1 else f"{name}_{seen[name]}"
        while renamed in header and renamed != name:
            renamed += "_"
        out.append(renamed)
    return out


# DuckDB reject error types → quarantine reasons.
REJECT_REASONS = {
    "MISSING COLUMNS": Reason.WRONG_COLUMN_COUNT,
    "TOO MANY COLUMNS": Reason.WRONG_COLUMN_COUNT,
    "UNQUOTED VALUE": Reason.BAD_QUOTING,
    "INVALID ENCODING": Reason.INVALID_UTF8,
    "INVALID UNICODE": Reason.INVALID_UTF8,
    "LINE SIZE OVER MAXIMUM": Reason.LINE_TOO_LONG,
}


# Reject types after which DuckDB's reader may lose its place in the file.
LOSES_PLACE = {"UNQUOTED VALUE", "INVALID ENCODING", "INVALID UNICODE"}

REJECT_PRIORITY = {
    "INVALID ENCODING": 0,
    "INVALID UNICODE": 0,
    "UNQUOTED VALUE": 1,
    "LINE SIZE OVER MAXIMUM": 2,
    "TOO MANY COLUMNS": 3,
    "MISSING COLUMNS": 3,
}


class ElfCsvSource(Source):
    """EventLogFile CSV. A batch holds files with one header, read in one DuckDB scan."""

    name = "elf-csv"
    reads_carefully = True
    max_line_size = 32 * 1024 * 1024
    _copies: tempfile.TemporaryDirectory | None = None  # UTF-8 copies of UTF-16 files
    # The batch's file scan; None until ``stage`` made it (it raised before: a UTF-16 file
    # that is not valid UTF-16 is then read carefully, and has no scan to follow up).
    _scan: Staged | None = None

    def stage(self, store: Store, files: list[InputFile]) -> Staged:
        header = read_header(files[0].path)
        if "EVENT_TYPE" not in header:
            raise SourceFormatError(
                "CSV header has no EVENT_TYPE column", Location(files[0].path, 1)
            )
        sid = self._begin(store, header, files)
        self._by_path = {str(self._utf8_path(f)): f for f in files}
        self._header = header
        store.execute("CREATE OR REPLACE TEMP TABLE _files (path VARCHAR, file_id BIGINT)")
        store.insert("_files", [(p, f.file_id) for p, f in self._by_path.items()])
        store.execute("DROP TABLE IF EXISTS _rej")
        store.execute("DROP TABLE IF EXISTS _rej_scan")
        scan = self._read_csv(list(self._by_path), {}, "_rej", "_rej_scan")
        self._scan = self._staged(sid, f"{scan} s JOIN _files f ON f.path = s.filename")
        self._scan.report.notes.extend(self._notes)
        return self._scan

    def _read_csv(
        self, paths: list[str], typed: dict[str, str], rejects: str, rejects_scan: str
    ) -> str:
        """The ``read_csv`` call over ``paths`` (of the batch's header): every column text
        unless ``typed`` names its type, rejected rows kept in the ``rejects`` tables. The
        staging scan and the one locating bad timestamps read the files alike, so a record
        is the same record in both."""
        header = self._header
        columns = "{" + ", ".join(f"{lit(c)}: {lit(typed.get(c, 'VARCHAR'))}" for c in header) + "}"
        compressed = any(is_gzip(Path(p)) for p in paths)
        return (
            f"read_csv([{', '.join(path_lit(p) for p in paths)}], header=true, auto_detect=false, "
            f"columns={columns}, delim=',', quote='\"', escape='\"', filename=true, "
            f"store_rejects=true, rejects_table={lit(rejects)}, "
            f"rejects_scan={lit(rejects_scan)}, strict_mode=true, "
            f"max_line_size={num(self.max_line_size)}, "
            f"compression={lit('gzip' if compressed else 'none')}"
            + "".join(f", {k}={v}" for k, v in self._typed_options(typed).items())
            + ")"
        )

    def _typed_options(self, typed: dict[str, str]) -> dict[str, str]:
        """Options of a read with a typed column (:meth:`locate_untimed`): an empty value is
        no value that parses (not NULL), and the record of a rejected row is kept whole."""
        if not typed:
            return {}
        return {
            "timestampformat": lit(ELF_TIMESTAMP),
            "force_not_null": "[" + ", ".join(lit(c) for c in typed) + "]",
            "rejects_line_size_limit": num(self.max_line_size),
        }

    def _begin(self, store: Store, header: list[str], files: list[InputFile]) -> str:
        """Record the header's schema; note renamed columns. Returns the schema id."""
        sid = schema_id(header)
        store.execute(
            "INSERT INTO raw_schemas VALUES (?, ?) ON CONFLICT DO NOTHING", [sid, raw_order(header)]
        )
        written = _written_header(files[0].path)
        renamed = [f"{w} → {c}" for w, c in zip(written, header, strict=True) if w != c]
        self._notes = [
            (f.file_id, f"repeated column names in the header renamed: {', '.join(renamed)}")
            for f in files
        ] if renamed else []  # fmt: skip
        return sid

    def stage_careful(self, store: Store, file: InputFile) -> Staged | None:
        """Read one file record by record in Python, for a region DuckDB's reader rejects as a
        whole (stray binary, a gzip stream cut short): every line that is a record of the
        header's width is kept, every other one quarantined with its line and reason.

        The rows are read while the INSERT reads them (:meth:`_python_rows`): neither the
        file nor its rows are held whole, and the report is complete once it has run."""
        header = read_header(file.path)
        if "EVENT_TYPE" not in header:
            raise SourceFormatError("CSV header has no EVENT_TYPE column", Location(file.path, 1))
        sid = self._begin(store, header, [file])
        self._header = header
        report = StageReport(notes=list(self._notes))
        rows = careful_rows(file, len(header), self.max_line_size, report)
        staged = self._python_rows(sid, ((file.file_id, line, r) for line, r in rows))
        staged.report = report
        return staged

    def _python_rows(self, sid: str, rows: Iterable[tuple[int, int, list[str]]]) -> Staged:
        """Rows Python read (file id, line, values), staged as a stream of Arrow batches of
        :data:`PYTHON_BATCH_ROWS` rows that DuckDB reads once, so they are made as it reads
        them (issue 16). Their line is known: a row among them whose timestamp does not parse
        is quarantined at it."""
        schema = pa.schema(
            [pa.field(c, pa.string()) for c in self._header]
            + [pa.field("file_id", pa.int64()), pa.field(LINE_COLUMN, pa.int64())]
        )
        staged = self._staged(sid, f"{STAGE_TABLE} f")
        staged.exprs["ingest_line"] = ident(LINE_COLUMN)
        staged.line_if_untimed = True
        staged.tables[STAGE_TABLE] = pa.RecordBatchReader.from_batches(
            schema, _row_batches(schema, len(self._header), rows)
        )
        return staged

    def _utf8_path(self, f: InputFile) -> Path:
        """The file, or for UTF-16 a UTF-8 copy of it: DuckDB's CSV reader reads UTF-8 (its
        ``encoding='utf-16'`` returned no rows, without an error, for big-endian files).
        Lines keep their numbers; quarantine byte offsets are then the copy's.

        The copy is written as the file is decoded (:class:`Content`), under another name
        until it is whole: a file that ends inside a code unit, or whose gzip stream is
        damaged, raises and leaves no copy behind (it is read record by record instead). A
        lone surrogate is no such damage: it reaches the copy as bytes that are not UTF-8,
        and DuckDB rejects the line holding it (``INVALID ENCODING``)."""
        if file_encoding(f.path) == "utf-8":
            return f.path
        if self._copies is None:
            self._copies = tempfile.TemporaryDirectory(prefix="crmwatch-utf16-")
        copy = Path(self._copies.name) / f"{f.file_id}.csv"
        partial = copy.with_suffix(".part")
        content = Content(f.path)
        try:
            with open(partial, "wb") as out:
                for piece in content:
                    out.write(piece)
            if content.problem:
                raise SourceFormatError(content.problem, Location(f.path))
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(copy)
        return copy

    def followups(self, store: Store, staged: Staged) -> list[Staged]:
        if staged is not self._scan:  # only the file scan has reader rejects to look at
            return []
        salvage = self._rejects(store, self._by_path, self._header, staged.report)
        if not salvage:
            return []
        return [self._python_rows(schema_id(self._header), salvage)]

    def locate_untimed(self, store: Store, file: InputFile, untimed: str) -> list[int | None]:
        """The starting line of each of the batch's scanned rows whose timestamp did not
        parse (``untimed``: their ``raw``, the values in :func:`raw_order`).

        The scan that inserted them gives no line for a row it returns, only for a row it
        rejects. So the file is read once more by DuckDB, alike but for one column typed as an
        EventLogFile timestamp (:data:`LOCATING_COLUMNS`): every row whose timestamp does not
        parse is rejected, with the byte where its record starts, and the record's text. A
        row rejected there whose timestamp parses after all (a ``TIMESTAMP_DERIVED`` read
        first, another form of time) is told apart by its values, which only those records
        are parsed for, a page at a time, and the same values repeated are taken in file
        order: matched in SQL, so neither the rows nor the records are ever all in Python (a
        file in a time format of its own is every row of it). Lines are counted up to those
        bytes (:func:`lines_at`), streaming the file.
        """
        path = next(p for p, f in self._by_path.items() if f.file_id == file.file_id)
        header = self._header
        column = next(c for c in LOCATING_COLUMNS if c in header)
        for table in ("_ts_rej", "_ts_rej_scan"):
            store.execute(f"DROP TABLE IF EXISTS {ident(table)}")
        scan = self._read_csv([path], {column: "TIMESTAMP"}, "_ts_rej", "_ts_rej_scan")
        # Every column read: the typed one is converted (and so rejected), and DuckDB 2.0.1
        # applies force_not_null by position among the columns read, so reading that one
        # alone would leave its empty values NULL, not rejected.
        store.execute(f"SELECT count(COLUMNS(*)) FROM {scan}")
        store.execute(
            """CREATE OR REPLACE TEMP TABLE _ts_records AS
            SELECT row_number() OVER (ORDER BY line_byte_position) AS n, line_byte_position,
                csv_line
            FROM _ts_rej WHERE error_type = 'CAST' AND column_name = $column""",
            {"column": column},
        )
        for table in ("_ts_rej", "_ts_rej_scan"):
            store.execute(f"DROP TABLE {ident(table)}")
        store.execute("CREATE OR REPLACE TEMP TABLE _ts_keys (position BIGINT, key VARCHAR[])")
        order = [header.index(c) for c in raw_order(header)]
        total = store.scalar("SELECT count(*) FROM _ts_records")
        for start in range(0, total, LOCATE_PAGE):
            keys = []
            for position, text in store.execute(
                "SELECT line_byte_position, csv_line FROM _ts_records WHERE n > $a AND n <= $b",
                {"a": start, "b": start + LOCATE_PAGE},
            ).rows:
                # the record as the reader read it; blank lines before it may lead it
                record = next(csv.reader(io.StringIO(text.lstrip("\r\n"), newline="")), [])
                if len(record) == len(header):
                    keys.append((position, [record[i] for i in order]))
            store.insert("_ts_keys", keys)
        # each distinct row takes the first of the records with its values, in file order
        positions = [p for (p,) in store.execute(
            f"""WITH rows AS (
                SELECT list_transform(from_json(raw, '["VARCHAR"]'), lambda v: coalesce(v, ''))
                    AS key, count(*) AS n
                FROM {untimed} GROUP BY ALL)
            SELECT position FROM (SELECT k.position, rows.n,
                row_number() OVER (PARTITION BY k.key ORDER BY k.position) AS rn
                FROM _ts_keys k JOIN rows ON rows.key = k.key)
            WHERE rn <= n ORDER BY position"""
        ).rows]  # fmt: skip
        rows = store.scalar(f"SELECT count(*) FROM {untimed}")
        store.execute("DROP TABLE _ts_records")
        store.execute("DROP TABLE _ts_keys")
        lines = lines_at(Path(path), positions)
        return [lines.get(p) for p in positions] + [None] * (rows - len(positions))

    def _staged(self, sid: str, source: str) -> Staged:
        """The relation adds the row's raw value array; the scan computes it only if asked."""
        ref = column_ref(set(self._header))
        values = ", ".join(ref(c) for c in raw_order(self._header))  # type: ignore[misc]
        rpath = elf_record_path(ref)
        exprs = elf_exprs(ref, "NULL" if rpath == "NULL" else "_rpath")
        exprs.update(
            source="'salesforce'",
            source_type="'elf:' || " + first(ref, "EVENT_TYPE"),
            event_id=f"md5({lit(sid)} || chr(31) || _raw)",
            raw="_raw",
            raw_schema=lit(sid),
            file_id="file_id",
            ingest_line="NULL",
            _header="coalesce(\"EVENT_TYPE\" = 'EVENT_TYPE', false)",
        )
        relation = f"(SELECT *, to_json([{values}]) AS _raw, {rpath} AS _rpath FROM {source})"
        return Staged(relation, exprs, scope=f"raw_schema = {lit(sid)}")

    def _rejects(
        self, store: Store, by_path: dict[str, InputFile], header: list[str], report: StageReport
    ) -> list[tuple[int, int, list[str]]]:
        """Quarantine DuckDB's rejected rows; recover good lines a broken quote swallowed
        (file id, line, values)."""
        # One broken line can yield several reject rows: grouped by line, it is one record.
        rows = store.execute(
            "SELECT s.file_path, e.line, e.line_byte_position, e.error_type, e.csv_line, "
            "e.error_message FROM _rej e JOIN _rej_scan s USING (scan_id, file_id) "
            "ORDER BY s.file_path, e.line"
        ).rows
        grouped: dict[tuple[str, int], list] = defaultdict(list)
        for path, line, byte_pos, etype, csv_line, message in rows:
            grouped[(path, line)].append((byte_pos, etype, csv_line, message))
        for (path, line), errors in grouped.items():
            if {e[1] for e in errors} & LOSES_PLACE:
                # After a broken quote or bytes that are not UTF-8 the reader can lose its
                # place: it reported good rows as rejected, or rows it never returned nor
                # rejected (tests/test_properties.py). Such a file is read record by record.
                raise SourceFormatError(
                    "a broken quote or bytes that are not UTF-8; read record by record",
                    Location(by_path[path].path, line),
                )
        salvage: list[tuple[int, int, list[str]]] = []
        # The reader's own line counts records, not the line breaks inside quoted values:
        # after a value spanning lines it is too small. The file's line is counted up to the
        # byte the record starts at, for every rejected record of a file in one read.
        positions: dict[str, list[int]] = defaultdict(list)
        for (path, _), errors in grouped.items():
            positions[path] += [e[0] for e in errors if e[0] is not None]
        lines = {path: lines_at(Path(path), at) for path, at in positions.items()}
        for (path, reader_line), errors in grouped.items():
            f = by_path[path]
            # The reader reports one broken line several ways; the root cause names it.
            byte_pos, etype, _, message = min(errors, key=lambda e: REJECT_PRIORITY.get(e[1], 9))
            line = lines[path].get(byte_pos, reader_line) if byte_pos is not None else reader_line
            csv_line = max((e[2] or "" for e in errors), key=len)
            reason = REJECT_REASONS.get(etype, Reason.BAD_QUOTING)
            report.quarantined.append(Quarantine(f, line, byte_pos, reason, message))
            # An unterminated quote makes the reader swallow the following lines into this
            # record: give each of them its own chance.
            for i, physical in enumerate(_physical_lines(path, byte_pos, csv_line)[1:], start=1):
                if not physical.strip():
                    continue
                try:
                    parsed = next(csv.reader([physical], strict=True))
                except csv.Error as e:
                    report.quarantined.append(
                        Quarantine(f, line + i, None, Reason.BAD_QUOTING, str(e))
                    )
                    continue
                if len(parsed) != len(header):
                    report.quarantined.append(
                        Quarantine(
                            f,
                            line + i,
                            None,
                            Reason.WRONG_COLUMN_COUNT,
                            f"Expected Number of Columns: {len(header)} Found: {len(parsed)}",
                        )
                    )
                    continue
                salvage.append((f.file_id, line + i, parsed))
        return salvage


# How many physical lines one quoted field may span before an unbalanced quote is taken for
# damage rather than a value with line breaks in it.
MAX_RECORD_LINES = 1000


# Rows read by Python go to DuckDB in batches of this many.
PYTHON_BATCH_ROWS = 8192


def _row_batches(
    schema: pa.Schema, width: int, rows: Iterable[tuple[int, int, list[str]]]
) -> Iterator[pa.RecordBatch]:
    """``rows`` (file id, line, values) as Arrow batches, made one at a time. An empty field
    is NULL, as DuckDB's reader gives it: the same row read either way has the same raw
    value and so the same event id."""
    it = iter(rows)
    while batch := list(islice(it, PYTHON_BATCH_ROWS)):
        columns = [pa.array([r[i] or None for _, _, r in batch], pa.string()) for i in range(width)]
        columns.append(pa.array([fid for fid, _, _ in batch], pa.int64()))
        columns.append(pa.array([line for _, line, _ in batch], pa.int64()))
        yield pa.record_batch(columns, schema=schema)


class _LookAhead:
    """A file's lines by index (0 the first), read as they are asked for; the lines before
    the one being read are let go (:meth:`release`)."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines, self._held, self._first = lines, deque[bytes](), 0
        self._ended = False

    def has(self, k: int) -> bool:
        """Whether the file has a line ``k`` (lines up to it are read, if not yet)."""
        while not self._ended and k - self._first >= len(self._held):
            line = next(self._lines, None)
            if line is None:
                self._ended = True
            else:
                self._held.append(line)
        return k - self._first < len(self._held)

    def __getitem__(self, k: int) -> bytes:
        return self._held[k - self._first]

    def release(self, k: int) -> None:
        """Let go of the lines before ``k``."""
        while self._first < k and self._held:
            self._held.popleft()
            self._first += 1


def careful_rows(
    f: InputFile, width: int, max_line_size: int, report: StageReport
) -> Iterator[tuple[int, list[str]]]:
    """The records of ``f`` that parse to ``width`` fields (their starting line, their
    values), header excluded; every other line quarantined with its line number and reason. A
    quote left open swallows no good line: the record it opens is tried, and if it is not
    one, the line alone is quarantined and the next line read afresh.

    The file is read as a stream of lines (:class:`Content`, :func:`split_lines`), at most
    :data:`MAX_RECORD_LINES` past the line being read, and the records yielded as they are
    found (issue 16). A gzip stream cut short or a corrupt member is reported first in the
    report, once the records are read, with the bytes read as its offset."""
    content = Content(f.path)
    first_entry = len(report.quarantined)
    lines = _LookAhead(split_lines(content))
    i = 1
    while lines.has(i):
        lines.release(i)
        line_no, raw = i + 1, lines[i]
        bad = Quarantine(f, line_no, None, Reason.BAD_QUOTING, "")
        if not raw.strip():
            i += 1
            continue
        if len(raw) > max_line_size:
            report.quarantined.append(_as(bad, Reason.LINE_TOO_LONG, f"{len(raw)} bytes"))
            i += 1
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            why = why_not_utf8(raw, e)
            report.quarantined.append(_as(bad, Reason.INVALID_UTF8, f"byte {e.start}: {why}"))
            i += 1
            continue
        end, record = i, text
        while record.count('"') % 2 and lines.has(end + 1) and end - i < MAX_RECORD_LINES:
            try:
                record += "\n" + lines[end + 1].decode("utf-8")
            except UnicodeDecodeError:
                break
            end += 1
        parsed = _parse_record(record)
        if parsed is not None and len(parsed) == width:
            yield line_no, parsed
            i = end + 1
            continue
        if parsed is None or record.count('"') % 2:
            reason, detail = Reason.BAD_QUOTING, "not a CSV record: a quote is not closed"
        else:
            reason = Reason.WRONG_COLUMN_COUNT
            detail = f"Expected Number of Columns: {width} Found: {len(parsed)}"
        if end > i:  # the open quote's record is no record: this line alone is bad
            parsed_alone = _parse_record(text)
            if parsed_alone is not None and len(parsed_alone) == width:
                yield line_no, parsed_alone
                i += 1
                continue
        report.quarantined.append(_as(bad, reason, detail))
        i += 1
    if content.problem:
        report.quarantined.insert(
            first_entry,
            Quarantine(f, None, content.size, Reason.TRUNCATED_INPUT, content.problem),
        )


def _as(q: Quarantine, reason: Reason, detail: str) -> Quarantine:
    return Quarantine(q.file, q.line, q.byte_offset, reason, detail)


def _parse_record(text: str) -> list[str] | None:
    try:
        return next(csv.reader([text], strict=True), [])
    except csv.Error:
        return None


def _physical_lines(path: str, byte_pos: int | None, csv_line: str) -> list[str]:
    """The lines of the file that one rejected record spans.

    DuckDB's ``csv_line`` is the record as it read it; an invalid byte right before a line
    break is replaced together with the break, so the swallowed lines cannot be split from it.
    The file's own bytes can: read them from the record's offset up to where ``csv_line``
    ends (found by its last clean characters)."""
    fallback = csv_line.split("\n")
    if byte_pos is None:
        return fallback
    tail = csv_line.rstrip("?\ufffd")[-60:]
    if not tail:
        return fallback
    budget = len(csv_line.encode("utf-8", "replace")) * 2 + 4096
    try:
        opener = gzip.open if is_gzip(path) else open
        with opener(path, "rb") as fh:
            fh.seek(byte_pos)
            raw = fh.read(budget)
    except (OSError, EOFError) as e:
        trace(f"cannot re-read {path} at {byte_pos}: {e}")
        return fallback
    text = raw.decode("utf-8", "replace")
    end = text.find(tail)
    if end < 0:
        return fallback
    return text[: end + len(tail)].split("\n")


class ElfJsonSource(JsonSource):
    """EventLogFile rows exported as JSON by SIEMs, with upper- or lower-case keys."""

    name = "elf-json"
    source = "salesforce"
    type_prefix = "elf:"

    def classify(self, fields: JsonExtraction) -> Classified:
        # The record with its keys upper-cased and its values as text, as a CSV row has them.
        entries = f"map_entries(json_transform({fields.column}, '\"MAP(VARCHAR, JSON)\"'))"
        text = (
            "CASE json_type(e.value) WHEN 'NULL' THEN NULL WHEN 'BOOLEAN' THEN "
            "CASE WHEN e.value::VARCHAR = 'true' THEN 'True' ELSE 'False' END "
            "ELSE json_extract_string(e.value, '$') END"
        )
        pairs = (
            f"list_transform({entries}, lambda e: to_json(upper(e.key)) || ':' || "
            f"coalesce(to_json({text}), 'null'))"
        )
        event_type = "json_extract_string(doc, '$.EVENT_TYPE')"
        return Classified(
            f"coalesce(nullif({event_type}, ''), 'unknown')",
            doc=f"('{{' || array_to_string({pairs}, ',') || '}}')",
            # a CSV header row carried into the export
            header=f"coalesce({event_type} = 'EVENT_TYPE', false)",
        )

    def exprs(self, ref: Ref, rtype: str) -> dict[str, str]:
        return elf_exprs(ref)


def sniff_csv(head: bytes) -> bool:
    """True when UTF-8 data (``read_head``) starts like an EventLogFile CSV: a header with
    EVENT_TYPE."""
    try:
        cells = next(csv.reader([_first_line(head[:4096])]))
    except (csv.Error, StopIteration, UnicodeDecodeError):
        return False
    return "EVENT_TYPE" in cells and len(cells) >= 2
