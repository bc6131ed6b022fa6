"""Input formats, by name, and detection of a file's format from its first bytes."""

from __future__ import annotations

from pathlib import Path

from crmwatch.sources.base import HEAD_BYTES, Source, read_head
from crmwatch.sources.elf import ElfCsvSource, ElfJsonSource, sniff_csv
from crmwatch.sources.jsonrecords import JsonRecord, iter_records
from crmwatch.sources.okta import OktaSource
from crmwatch.sources.setupcsv import SetupAuditCsvSource, sniff_setup_csv
from crmwatch.sources.sfobjects import SfObjectSource, infer_type, streamed_payload

FORMATS: dict[str, type[Source]] = {
    ElfCsvSource.name: ElfCsvSource,
    ElfJsonSource.name: ElfJsonSource,
    SfObjectSource.name: SfObjectSource,
    OktaSource.name: OktaSource,
    SetupAuditCsvSource.name: SetupAuditCsvSource,
}

EMPTY = "empty"
WHOLE_FILE_LIMIT = 64 << 20


def detect_format(path: Path) -> str | None:
    """The format name of a file, ``"empty"`` for a file with no data, or None if unknown."""
    head = read_head(path)
    if not head.strip():
        return EMPTY
    if sniff_csv(head):
        return ElfCsvSource.name
    if sniff_setup_csv(head):
        return SetupAuditCsvSource.name
    if head.lstrip()[:1] not in (b"{", b"["):
        return None
    obj = _first_object(head)
    if obj is None and len(head) == HEAD_BYTES:
        obj = _first_object(read_head(path, WHOLE_FILE_LIMIT))
    if obj is None:
        return None
    return classify_object(obj)


def classify_object(obj: dict) -> str | None:
    keys = {k.lower() for k in obj} if isinstance(obj, dict) else set()
    # Okta System Log events, with the API's camelCase keys or lower-cased as SIEMs store them
    if "eventtype" in keys and ("published" in keys or "uuid" in keys):
        return OktaSource.name
    if any(k.upper() == "EVENT_TYPE" for k in obj):
        return ElfJsonSource.name
    if "attributes" in obj or infer_type(obj) != "other" or streamed_payload(obj) is not None:
        return SfObjectSource.name
    return None


def _first_object(data: bytes) -> dict | None:
    for item in iter_records(data):
        if isinstance(item, JsonRecord):
            return item.obj
    return None
