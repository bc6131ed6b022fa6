"""The Setup Audit Trail as the Setup page downloads it ("Download setup audit trail"): a CSV
whose rows are the SetupAuditTrail object in other words.

Columns, as the download names them: ``Date``, ``User``, ``Source Namespace Prefix``,
``Action``, ``Section``, ``Delegate User``; only Date, User, Action and Section are required.
``Action`` holds the change's full description (the object's ``Display``), ``User`` the
username, ``Delegate User`` the Login-As user who acted. ``Date`` is the downloading user's
local time with a zone abbreviation, ``9/10/2026, 4:21:14 AM PDT``: the abbreviation is its
fixed offset (``sqltime.ZONE_ABBREVIATIONS``); one with several meanings, or none, is not
guessed and the row is quarantined as ``bad_timestamp``. Each row becomes a SetupAuditTrail
record and is mapped like one read from the API (``sfobjects``).

Uncertain: the header above is the download's as documented by administrators' guides, not a
Salesforce specification; a header with other names is not detected as this format.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator

from crmwatch.schema import Reason
from crmwatch.sources.jsonrecords import BadRecord, Item, record
from crmwatch.sources.jsonstage import Shape
from crmwatch.sources.sfobjects import SfObjectSource
from crmwatch.sqltime import ZONE_ABBREVIATIONS

REQUIRED = ("date", "user", "action", "section")
_DATE = re.compile(r"\s*(?P<when>.+?)\s+(?P<zone>[A-Za-z]{2,5})\s*")
_FORMATS = ("%m/%d/%Y, %I:%M:%S %p", "%m/%d/%Y, %I:%M %p", "%m/%d/%Y %I:%M:%S %p")


def sniff_setup_csv(head: bytes) -> bool:
    """True when UTF-8 data starts with the download's header."""
    first = re.split(rb"\r\n|\r|\n", head[:4096], maxsplit=1)[0]
    try:
        cells = next(csv.reader([first.decode("utf-8")]), [])
    except (UnicodeDecodeError, csv.Error):
        return False
    return set(REQUIRED) <= {c.strip().lower() for c in cells} and "EVENT_TYPE" not in cells


def parse_local_time(text: str) -> dt.datetime:
    """``9/10/2026, 4:21:14 AM PDT`` as naive UTC.

    Raises:
        ValueError: naming what is wrong (the shape, or a zone without one meaning).
    """
    m = _DATE.fullmatch(text)
    if not m:
        raise ValueError(f"not a time like 9/10/2026, 4:21:14 AM PDT: {text!r}")
    offset = ZONE_ABBREVIATIONS.get(m["zone"].upper())
    if offset is None:
        raise ValueError(f"time zone {m['zone']!r} has no single offset: {text!r}")
    for fmt in _FORMATS:
        try:
            local = dt.datetime.strptime(m["when"], fmt)
        except ValueError:
            continue
        aware = dt.datetime.fromisoformat(local.isoformat() + offset)
        return aware.astimezone(dt.UTC).replace(tzinfo=None)
    raise ValueError(f"not a time like 9/10/2026, 4:21:14 AM PDT: {text!r}")


class SetupAuditCsvSource(SfObjectSource):
    name = "sf-setup-csv"

    def shape(self, head: bytes, whole: bool) -> Shape:
        return Shape.DOCUMENT  # rows made records in Python (``records``), then mapped

    def records(self, pieces: Iterable[bytes]) -> Iterator[Item]:
        # Read whole: a Setup Audit Trail download is the org's last six months of setup
        # changes, a few MB at most.
        text = b"".join(pieces).decode("utf-8", errors="replace")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = [c.strip().lower() for c in next(reader, [])]
        missing = [c for c in REQUIRED if c not in header]
        line = reader.line_num + 1
        for row in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if missing:  # read with --format sf-setup-csv, but not a Setup Audit Trail file
                detail = f"the header has no {', '.join(missing)} column"
                yield BadRecord(start, None, Reason.UNKNOWN_FORMAT, detail)
                continue
            if len(row) != len(header):
                detail = f"Expected Number of Columns: {len(header)} Found: {len(row)}"
                yield BadRecord(start, None, Reason.WRONG_COLUMN_COUNT, detail)
                continue
            cells = dict(zip(header, row, strict=True))
            try:
                when = parse_local_time(cells["date"])
            except ValueError as e:
                yield BadRecord(start, None, Reason.BAD_TIMESTAMP, str(e))
                continue
            yield record(start, {
                "attributes": {"type": "SetupAuditTrail"},
                "CreatedDate": when.isoformat() + "Z",
                "CreatedBy": {"Username": cells["user"]},
                "Action": cells["action"],
                "Display": cells["action"],
                "Section": cells["section"],
                "DelegateUser": cells.get("delegate user") or None,
                "SourceNamespacePrefix": cells.get("source namespace prefix") or None,
                "Date": cells["date"],
            })  # fmt: skip
