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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmwatch.posture.model import OrgModel, truth, where
from crmwatch.sources.base import read_input
from crmwatch.sources.jsonrecords import BadRecord, iter_records

# Objects posture reads, and the fields that identify a record of each without ``attributes``.
SIGNATURES = {
    "User": {"Username", "IsActive"},
    "PermissionSetAssignment": {"AssigneeId"},
    "OauthToken": {"AppName", "UseCount"},
    "LoginHistory": {"LoginTime", "LoginType"},
}
LOST = "not read"  # how a problem that loses a record begins
# The fields posture uses, each a single value (text, number or boolean).
FIELDS = {
    "User": ("Id", "Username", "IsActive", "UserType", "Profile.Name", "LastLoginDate",
             "CreatedDate"),
    "PermissionSetAssignment": ("AssigneeId", "PermissionSet.Name",
                                "PermissionSet.IsOwnedByProfile",
                                "PermissionSetGroup.DeveloperName"),
    "OauthToken": ("AppName", "UserId", "CreatedDate", "LastUsedDate", "UseCount"),
    "LoginHistory": ("UserId", "LoginTime", "LoginType"),
}  # fmt: skip
BOOLEAN = {"IsActive", "PermissionSet.IsOwnedByProfile"}
# The subject kinds each object feeds: a record of it that cannot be read leaves them incomplete.
FEEDS = {
    "User": ("user", "permission_holder"),
    "PermissionSetAssignment": ("user", "permission_holder"),
    "OauthToken": ("connected_app",),
    "LoginHistory": ("user",),
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


def _lookup(record: dict[str, Any], name: str) -> Any:
    if name in record:
        return record[name]
    head, _, rest = name.partition(".")
    inner = record.get(head)
    if rest and isinstance(inner, dict):
        return _lookup(inner, rest)
    return None


def value(record: dict[str, Any], name: str) -> Any:
    """A field of a record as read (:func:`read_export` has already checked its type);
    relationship fields nested (``{"Profile": {"Name": …}}``) or as one ``Profile.Name``
    column alike."""
    return record.get(name)


def _type(record: dict[str, Any]) -> str | None:
    attributes = record.get("attributes")
    t = attributes.get("type") if isinstance(attributes, dict) else None
    if isinstance(t, str) and t in SIGNATURES:
        return t
    for obj, keys in SIGNATURES.items():
        if keys <= record.keys():
            return obj
    return None


def _fields(obj: str, record: dict[str, Any], place: str, model: OrgModel) -> dict[str, Any]:
    """The fields posture uses, flattened, each checked: a value of the wrong type is
    reported and left out, never guessed."""
    out: dict[str, Any] = {}
    for name in FIELDS[obj]:
        v = _lookup(record, name)
        if v is None or v == "":
            out[name] = None
        elif isinstance(v, dict | list):
            model.note(place, f"{obj}.{name} is not a single value; left out")
            out[name] = None
        elif name in BOOLEAN:
            out[name] = truth(v)
            if out[name] is None:
                model.note(place, f"{obj}.{name} is not a boolean ({str(v)[:20]!r}); unknown")
        else:
            out[name] = str(v) if not isinstance(v, int | float) or isinstance(v, bool) else v
    return out


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
        model.note(where(path), problem)
    used = 0
    other: dict[str, int] = {}
    seen: set[str] = set()
    before = len(model.problems)
    for line, record in _records(path, data, model):
        obj = _type(record)
        if obj is None:
            attributes = record.get("attributes")
            t = attributes.get("type") if isinstance(attributes, dict) else None
            label = t if isinstance(t, str) and t else "unrecognised"
            other[label] = other.get(label, 0) + 1
            continue
        exports.records[obj].append(_fields(obj, record, where(path, line), model))
        seen.add(obj)
        used += 1
    lost = problem is not None or any(p.reason.startswith(LOST) for p in
                                      model.problems[before:])  # fmt: skip
    if lost:
        model.lost(sorted({k for obj in (seen or FEEDS) for k in FEEDS[obj]}))
    for t, n in sorted(other.items()):
        model.note(where(path), f"{n} record(s) of {t[:40]} not used by posture (not one of "
                                f"{', '.join(SIGNATURES)})")  # fmt: skip
    if used:
        model.files.append(str(path))
    return used


def _records(path: Path, data: bytes, model: OrgModel):
    if path.suffix.lower() == ".csv":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            model.note(where(path), f"not UTF-8 from byte {e.start}: undecodable bytes are "
                                    "shown as U+FFFD")  # fmt: skip
            text = data.decode("utf-8", errors="replace")
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        try:
            for row in reader:
                if None in row:  # more cells than the header names
                    model.note(
                        where(path, reader.line_num), f"{LOST}: more cells than the header has"
                    )
                    continue
                if None in row.values():
                    model.note(
                        where(path, reader.line_num),
                        "fewer cells than the header has; the missing ones are empty",
                    )
                yield reader.line_num, {k: v or None for k, v in row.items()}
        except csv.Error as e:
            model.note(where(path, reader.line_num), f"{LOST}: bad CSV, the rest is not read: {e}")
        return
    for line, obj in json_objects(path, data, model):
        result = obj.get("result")
        if isinstance(result, dict) and isinstance(result.get("records"), list):
            # `sf data query --json` wraps the query result: {"status": 0, "result": {...}}
            for record in result["records"]:
                if isinstance(record, dict):
                    yield line, record
                else:
                    model.note(where(path, line), f"{LOST}: a result record that is not an "
                                                  "object")  # fmt: skip
            continue
        yield line, obj


def json_objects(path: Path, data: bytes, model: OrgModel) -> Iterator[tuple[int, dict]]:
    """The JSON objects of a file (query result, array or NDJSON) with their lines; each part
    that is none is a problem beginning with ``LOST``. Exports and Okta files alike."""
    for item in iter_records(data):
        if isinstance(item, BadRecord):
            model.note(where(path, item.line), f"{LOST}: {item.reason}: {item.detail}")
            continue
        yield item.line, item.obj
