"""Times as the store holds them: naive datetimes in UTC.

The store's session runs in UTC and its columns are plain TIMESTAMP, so every time that
comes from a user (``--since``, ``contained_at``, a SOQL datetime literal) is brought to
naive UTC once, here, before it is compared with stored events.
"""

from __future__ import annotations

import datetime as dt


def utc_naive(t: dt.datetime) -> dt.datetime:
    """An aware time converted to UTC; a naive one is taken to be UTC already."""
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def parse_utc(text: str) -> dt.datetime:
    """ISO 8601 (``Z`` or an offset allowed) as naive UTC; raises ValueError if not ISO or if
    the offset takes it outside the calendar (``0001-01-01T00:00+14:00``)."""
    try:
        return utc_naive(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except OverflowError as e:
        raise ValueError(f"{text} is outside the calendar in UTC") from e


def iso_z(t: dt.datetime | None) -> str | None:
    """A stored (naive UTC) or aware time as ISO 8601 with ``Z``: what every JSON output
    prints, so that no reader takes a UTC time for local time."""
    if t is None:
        return None
    return utc_naive(t).isoformat() + "Z"


def json_default(value: object) -> object:
    """``json.dumps(default=...)`` for crmwatch's outputs: times as :func:`iso_z`, dates as
    ISO dates, anything else as text."""
    if isinstance(value, dt.datetime):
        return iso_z(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def parse_duration(value: str) -> dt.timedelta:
    """``30m``, ``24h``, ``7d``: parsed as a Sigma timespan, like the rules' own windows.

    Raises:
        ValueError: not such a duration (zero, fractional and unit-less spans included).
    """
    from sigma.correlations import SigmaCorrelationTimespan
    from sigma.exceptions import SigmaError

    try:
        seconds = SigmaCorrelationTimespan(str(value)).seconds
    except SigmaError as e:
        raise ValueError(f"not a duration like 30m, 24h or 7d: {value!r}") from e
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{value} is longer than {MAX_DURATION.days // 365} years")
    return dt.timedelta(seconds=seconds)


MAX_DURATION = dt.timedelta(days=100 * 365)
