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
    """ISO 8601 (``Z`` or an offset allowed) as naive UTC; raises ValueError if not ISO."""
    return utc_naive(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
