"""SQL reading times as logs and snapshots write them, to UTC ``TIMESTAMP``: shared by the
sources' mappings and by scope's replays, outside the sources package so that scope and
notify do not import every input format (and pyarrow) to parse a date."""

from __future__ import annotations

from crmwatch.sql import lit

# A zone abbreviation after a time names a fixed offset: "PST" is UTC-8 in June too. DuckDB's
# ICU reads PST as America/Los_Angeles (so a June time lands at UTC-7) and CET with summer
# time. The obsolete zones of RFC 5322 section 4.3 (UT, GMT, EST ... PDT: North American, so
# CST is US Central), and other abbreviations with one meaning in practice. Ambiguous ones
# (IST: India, Ireland or Israel; BST) are not guessed: any other trailing abbreviation leaves
# the time NULL, so the record is quarantined as having no readable timestamp.
ZONE_ABBREVIATIONS: dict[str, str] = {
    "UT": "+00:00", "UTC": "+00:00", "GMT": "+00:00",
    "EST": "-05:00", "EDT": "-04:00", "CST": "-06:00", "CDT": "-05:00",
    "MST": "-07:00", "MDT": "-06:00", "PST": "-08:00", "PDT": "-07:00",
    "AKST": "-09:00", "AKDT": "-08:00", "HST": "-10:00",
    "WET": "+00:00", "WEST": "+01:00", "CET": "+01:00", "CEST": "+02:00",
    "EET": "+02:00", "EEST": "+03:00", "MSK": "+03:00",
    "KST": "+09:00", "JST": "+09:00", "HKT": "+08:00", "SGT": "+08:00",
    "AEST": "+10:00", "AEDT": "+11:00", "NZST": "+12:00", "NZDT": "+13:00",
}  # fmt: skip
_ABBREVIATION = " ([A-Z]{2,5})$"
_OFFSETS = "MAP {" + ", ".join(f"{lit(k)}: {lit(v)}" for k, v in ZONE_ABBREVIATIONS.items()) + "}"


def iso_utc(expr: str) -> str:
    """An ISO 8601 string to a UTC TIMESTAMP (NULL if unparseable).

    Offsets (``+09:00``) go through TIMESTAMPTZ, since DuckDB's plain TIMESTAMP cast drops
    them; UTC values (``Z``, ``+0000``, ``+00:00``: nearly every log line) take the plain
    cast, which skips the zone-aware parse and takes about half the time (measured on 5M
    values). Values without an offset are read as UTC: the session time zone ``Store`` sets.
    A trailing zone abbreviation is its fixed offset (:data:`ZONE_ABBREVIATIONS`).
    """
    abbreviated = (
        f"try_cast(regexp_replace({expr}, {lit(_ABBREVIATION)}, '') || "
        f"{_OFFSETS}[regexp_extract({expr}, {lit(_ABBREVIATION)}, 1)] AS TIMESTAMPTZ)"
    )
    # "Z" after a digit: "…10:00:00 XYZ" is an unknown abbreviation, not UTC.
    zulu = f"(suffix({expr}, 'Z') AND substr({expr}, -2, 1) BETWEEN '0' AND '9')"
    return (
        f"(CASE WHEN {zulu} OR suffix({expr}, '+0000') OR suffix({expr}, '+00:00') "
        f"THEN try_cast({expr} AS TIMESTAMP) "
        f"WHEN regexp_matches({expr}, {lit(_ABBREVIATION)}) "
        f"THEN {abbreviated} AT TIME ZONE 'UTC' "
        f"ELSE try_cast({expr} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' END)"
    )
