"""Bulk EventLogFile-shaped CSVs for benchmarks and stress tests.

Not the realistic org of ``crmwatch simulate``: this writes many rows fast (DuckDB ``COPY``),
with the real column sets of each event type (Login from elastic/beats' captured file; API,
RestApi, BulkApi, URI and ReportExport from the Azure-Sentinel sample; BulkApi2 from the ELF
field reference), one file per event type per day as Salesforce serves them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

# The fields every EventLogFile event type starts with (EventLogFile Supported Event Types).
COMMON = ("EVENT_TYPE", "TIMESTAMP", "REQUEST_ID", "ORGANIZATION_ID", "USER_ID", "RUN_TIME",
          "CPU_TIME")  # fmt: skip

HEADERS: dict[str, tuple[str, ...]] = {
    "Login": (
        *COMMON,
        "URI",
        "SESSION_KEY",
        "LOGIN_KEY",
        "USER_TYPE",
        "REQUEST_STATUS",
        "DB_TOTAL_TIME",
        "LOGIN_TYPE",
        "BROWSER_TYPE",
        "API_TYPE",
        "API_VERSION",
        "USER_NAME",
        "TLS_PROTOCOL",
        "CIPHER_SUITE",
        "AUTHENTICATION_METHOD_REFERENCE",
        "LOGIN_SUB_TYPE",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
        "URI_ID_DERIVED",
        "LOGIN_STATUS",
        "SOURCE_IP",
    ),
    "API": (
        *COMMON,
        "URI",
        "SESSION_KEY",
        "LOGIN_KEY",
        "REQUEST_STATUS",
        "DB_TOTAL_TIME",
        "API_TYPE",
        "API_VERSION",
        "CLIENT_NAME",
        "METHOD_NAME",
        "ENTITY_NAME",
        "ROWS_PROCESSED",
        "REQUEST_SIZE",
        "RESPONSE_SIZE",
        "DB_BLOCKS",
        "DB_CPU_TIME",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
        "URI_ID_DERIVED",
    ),
    "RestApi": (
        *COMMON,
        "URI",
        "SESSION_KEY",
        "LOGIN_KEY",
        "REQUEST_STATUS",
        "DB_TOTAL_TIME",
        "METHOD",
        "MEDIA_TYPE",
        "STATUS_CODE",
        "USER_AGENT",
        "ROWS_PROCESSED",
        "NUMBER_FIELDS",
        "DB_BLOCKS",
        "DB_CPU_TIME",
        "REQUEST_SIZE",
        "RESPONSE_SIZE",
        "ENTITY_NAME",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
        "URI_ID_DERIVED",
    ),
    "BulkApi2": (
        *COMMON,
        "SESSION_KEY",
        "LOGIN_KEY",
        "JOB_ID",
        "JOB_STATUS",
        "ENTITY_TYPE",
        "OPERATION_TYPE",
        "ROWS_PROCESSED",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
    ),
    "URI": (
        *COMMON,
        "URI",
        "SESSION_KEY",
        "LOGIN_KEY",
        "REQUEST_STATUS",
        "DB_TOTAL_TIME",
        "DB_BLOCKS",
        "DB_CPU_TIME",
        "REFERRER_URI",
        "TIMESTAMP_DERIVED",
        "USER_ID_DERIVED",
        "CLIENT_IP",
        "URI_ID_DERIVED",
    ),
}

# Share of rows per event type in a busy org: page views and API calls dominate.
MIX = {"URI": 0.45, "API": 0.25, "RestApi": 0.2, "Login": 0.08, "BulkApi2": 0.02}

_OBJECTS = "['Contact', 'Account', 'Case', 'Lead', 'Opportunity', 'User']"
_IPS = (
    "['203.0.113.' || (i % 200 + 1), '198.51.100.' || (i % 50 + 1), '52.95.110.' || (i % 20),"
    " '34.102.136.180', '185.220.101.' || (i % 30), '2a01:4f8::' || (i % 90)]"
)

# SQL per column; ``i`` is the row number, ``t`` the row's timestamp.
_UAS = (
    "['Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36', 'python-requests/2.32.4', 'Salesforce-Multi-Org-Fetcher/1.0']"
)
_MS = "lpad(CAST(i % 1000 AS VARCHAR), 3, '0')"
_RECORD = "lpad(CAST(i % 100000 AS VARCHAR), 12, '0')"

_VALUES = {
    "TIMESTAMP": f"strftime(t, '%Y%m%d%H%M%S.') || {_MS}",
    "TIMESTAMP_DERIVED": f"strftime(t, '%Y-%m-%dT%H:%M:%S.') || {_MS} || 'Z'",
    "REQUEST_ID": "'4' || md5(CAST(i AS VARCHAR) || $salt)[1:21]",
    "ORGANIZATION_ID": "'00D5j00000DgAYG'",
    "USER_ID": "'0055j0000' || lpad(CAST(i % 500 AS VARCHAR), 6, '0')",
    "USER_ID_DERIVED": "'0055j0000' || lpad(CAST(i % 500 AS VARCHAR), 6, '0') || 'AAQ'",
    "USER_NAME": "'user' || (i % 500) || '@retail.example'",
    "RUN_TIME": "CAST(i % 997 AS VARCHAR)",
    "CPU_TIME": "CAST(i % 211 AS VARCHAR)",
    "DB_TOTAL_TIME": "CAST(i * 7919 % 100000000 AS VARCHAR)",
    "SESSION_KEY": "md5(CAST(i // 40 AS VARCHAR))[1:16]",
    "LOGIN_KEY": "md5(CAST(i // 200 AS VARCHAR) || 'lk')[1:16]",
    "CLIENT_IP": f"{_IPS}[i % 6 + 1]",
    "SOURCE_IP": f"{_IPS}[i % 6 + 1]",
    "ENTITY_NAME": f"{_OBJECTS}[i % 6 + 1]",
    "ENTITY_TYPE": f"{_OBJECTS}[i % 6 + 1]",
    "ROWS_PROCESSED": "CAST(i % 2000 AS VARCHAR)",
    "METHOD_NAME": "['query', 'queryMore', 'describeSObject', 'update'][i % 4 + 1]",
    "URI": "'/services/data/v62.0/sobjects/' || " + f"{_OBJECTS}[i % 6 + 1]",
    "REFERRER_URI": f"'/lightning/r/Contact/003' || {_RECORD} || '/view'",
    "URI_ID_DERIVED": f"'003' || {_RECORD} || 'AAA'",
    "BROWSER_TYPE": f"{_UAS}[i % 3 + 1]",
    "LOGIN_STATUS": (
        "CASE WHEN i % 17 = 0 THEN 'LOGIN_ERROR_INVALID_PASSWORD' ELSE 'LOGIN_NO_ERROR' END"
    ),
    "LOGIN_TYPE": "['Application', 'Remote Access 2.0'][i % 2 + 1]",
    "JOB_ID": "'750' || lpad(CAST(i // 5 AS VARCHAR), 12, '0')",
    "JOB_STATUS": "['Open', 'UploadComplete', 'InProgress', 'JobComplete', 'Deleted'][i % 5 + 1]",
    "OPERATION_TYPE": "'query'",
    "METHOD": "['GET', 'POST'][i % 2 + 1]",
    "STATUS_CODE": "'200'",
    "USER_AGENT": "'9999'",
    "API_VERSION": "'62.0'",
    "API_TYPE": "'E'",
    "CLIENT_NAME": "['DataLoaderBulkUI/', 'SfdcInternalAPI/'][i % 2 + 1]",
}


def write_elf_csvs(out: Path, events: int, days: int = 7, seed: int = 1) -> list[Path]:
    """Write about ``events`` ELF rows as one CSV per event type per day; return the paths."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    paths: list[Path] = []
    per_day = max(1, events // days)
    for day in range(days):
        for etype, share in MIX.items():
            n = max(1, int(per_day * share))
            values = {**_VALUES, "EVENT_TYPE": f"'{etype}'"}
            select = ", ".join(f"{values.get(c, chr(39) * 2)} AS {c}" for c in HEADERS[etype])
            path = out / f"{etype}_2025-08-{day + 1:02d}.csv"
            con.execute(
                f"COPY (SELECT {select} FROM (SELECT i, TIMESTAMP '2025-08-01' + "
                f"INTERVAL (CAST({day} AS BIGINT)) DAY + to_microseconds(i * (86400000000 // {n})) "
                f"AS t FROM range({n}) r(i))) TO '{path}' (HEADER, FORCE_QUOTE *)",
                {"salt": f"{seed}-{etype}-{day}"},
            )
            paths.append(path)
    con.close()
    return paths


def dataset(out: Path, events: int) -> list[Path]:
    """The benchmark CSVs for ``events`` rows under ``out``, reused when an earlier run made
    the same set (a hidden marker, which ingest skips, says the set is complete)."""
    data = out / f"elf-{events}"
    marker = data / ".complete"
    if not marker.exists():
        shutil.rmtree(data, ignore_errors=True)
        write_elf_csvs(data, events)
        marker.write_text("ok")
    return sorted(data.glob("*.csv"))
