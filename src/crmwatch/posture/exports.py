"""Who actually holds what: User, PermissionSetAssignment, OauthToken and LoginHistory exports.

Metadata says what a profile grants; these say who has it, whether they sign in, and which apps
hold their tokens. Each is a SOQL query result (REST ``{"records": [...]}``, ``sf data query
--json``), a JSON array, NDJSON or CSV (``sf data query --result-format csv``, Data Loader),
one object per file or mixed. Relationship fields read both as nested JSON
(``{"Profile": {"Name": …}}``) and as CSV columns named with a dot (``Profile.Name``). Field
names: Salesforce Object Reference (User, PermissionSetAssignment, OauthToken, LoginHistory).

Suggested queries (docs/posture.md)::

    SELECT Id, Username, IsActive, UserType, Profile.Name, LastLoginDate, CreatedDate FROM User
    SELECT AssigneeId, PermissionSet.Name, PermissionSet.IsOwnedByProfile,
           PermissionSetGroup.DeveloperName FROM PermissionSetAssignment
    SELECT AppName, UserId, CreatedDate, LastUsedDate, UseCount FROM OauthToken
    SELECT UserId, LoginTime, LoginType, Status FROM LoginHistory WHERE LoginTime = LAST_N_DAYS:90
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmwatch.errors import Location
from crmwatch.posture.model import OrgModel, Problem
from crmwatch.sources.base import read_input
from crmwatch.sources.jsonrecords import BadRecord, iter_records

# Objects posture reads, and the fields that identify a record of each without ``attributes``.
SIGNATURES = {
    "User": {"Username", "IsActive"},
    "PermissionSetAssignment": {"AssigneeId"},
    "OauthToken": {"AppName", "UseCount"},
    "LoginHistory": {"LoginTime", "LoginType"},
}


@dataclass
class Exports:
    """The records of each object, as read (one dict per record)."""

    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {k: [] for k in SIGNATURES}
    )

    def of(self, obj: str) -> list[dict[str, Any]]:
        return self.records[obj]

    def has(self, obj: str) -> bool:
        return bool(self.records[obj])


def value(record: dict[str, Any], name: str) -> Any:
    """A field, relationship fields included: ``Profile.Name`` nested or as one column."""
    if name in record:
        return record[name]
    head, _, rest = name.partition(".")
    inner = record.get(head)
    if rest and isinstance(inner, dict):
        return value(inner, rest)
    return None


def _type(record: dict[str, Any]) -> str | None:
    attributes = record.get("attributes")
    if isinstance(attributes, dict) and attributes.get("type") in SIGNATURES:
        return attributes["type"]
    for obj, keys in SIGNATURES.items():
        if keys <= record.keys():
            return obj
    return None


def is_export(path: Path, head: bytes) -> bool:
    """Whether a file looks like one of these exports (the first bytes are enough)."""
    text = head.decode("utf-8", errors="ignore")
    if path.suffix.lower() == ".csv":
        first = text.splitlines()[0] if text else ""
        columns = {c.strip().strip('"') for c in first.split(",")}
        return any(keys <= columns for keys in SIGNATURES.values())
    return any(f'"{k}"' in text for keys in SIGNATURES.values() for k in keys)


def read_export(path: Path, exports: Exports, model: OrgModel) -> int:
    """Add the records of ``path`` to ``exports``; returns how many were used."""
    data, problem = read_input(path)
    if problem:
        model.problems.append(Problem(str(Location(path)), problem))
    used = skipped = 0
    other: dict[str, int] = {}
    for line, record in _records(path, data, model):
        obj = _type(record)
        if obj is None:
            t = record.get("attributes", {}).get("type") if isinstance(
                record.get("attributes"), dict) else None  # fmt: skip
            other[str(t or "unrecognised")] = other.get(str(t or "unrecognised"), 0) + 1
            skipped += 1
            continue
        record = dict(record)
        record["_line"] = line
        exports.records[obj].append(record)
        used += 1
    for t, n in sorted(other.items()):
        model.problems.append(Problem(
            str(Location(path)), f"{n} record(s) of {t} not used by posture (not one of "
            f"{', '.join(SIGNATURES)})",
        ))  # fmt: skip
    if used:
        model.files.append(str(path))
    return used


def _records(path: Path, data: bytes, model: OrgModel):
    if path.suffix.lower() == ".csv":
        text = data.decode("utf-8", errors="replace")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            for row in reader:
                if None in row:  # more cells than the header names
                    model.problems.append(Problem(
                        str(Location(path, reader.line_num)), "more cells than the header has",
                    ))  # fmt: skip
                    continue
                yield reader.line_num, {k: (v if v != "" else None) for k, v in row.items()}
        except csv.Error as e:
            model.problems.append(Problem(str(Location(path, reader.line_num)), f"bad CSV: {e}"))
        return
    for item in iter_records(data):
        if isinstance(item, BadRecord):
            where = Location(path, item.line, item.byte_offset)
            model.problems.append(Problem(str(where), f"{item.reason}: {item.detail}"))
            continue
        result = item.obj.get("result")
        if isinstance(result, dict) and isinstance(result.get("records"), list):
            # `sf data query --json` wraps the query result: {"status": 0, "result": {...}}
            for record in result["records"]:
                if isinstance(record, dict):
                    yield item.line, record
            continue
        yield item.line, item.obj
