"""Sigma v2 correlation conformance on DuckDB: true sliding windows, group-by, aliases, order.

Includes the cases public SQL backends get wrong: they drop ``timespan``, take one window per
group, or never check the order of a temporal_ordered correlation.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection

from crmwatch.detect.correlation import correlation_sql
from crmwatch.detect.frozen import freeze
from crmwatch.detect.rules import RuleFile
from crmwatch.store import Store

T0 = dt.datetime(2025, 8, 12, 10, 0, 0)
_ids = itertools.count()

RULES = """
title: Bulk export
name: bulk_export
logsource: {product: crmwatch}
detection: {sel: {category: bulk_export}, condition: sel}
---
title: MFA factor enrolled
name: mfa_enrolled
logsource: {product: crmwatch}
detection: {sel: {raw.eventType: user.mfa.factor.activate}, condition: sel}
"""


def add(store: Store, user: str | None, minutes: list[float], category: str = "bulk_export",
        obj: str = "Contact", raw: str = "{}") -> None:  # fmt: skip
    for m in minutes:
        store.execute(
            "INSERT INTO events_base (event_id, ts, source, category, user_name, object, raw) "
            "VALUES (?, ?, 'test', ?, ?, ?, ?)",
            [f"e{next(_ids):05d}", T0 + dt.timedelta(minutes=m), category, user, obj, raw],
        )


def alerts(store: Store, correlation_yaml: str) -> list[dict]:
    """The correlation's alerts; its frozen form (what the compiled-pack cache keeps,
    detect/frozen.py) must give the same SQL."""
    rules = SigmaCollection.from_yaml(RULES + "---\n" + correlation_yaml)
    corr = rules.rules[-1]
    sql = correlation_sql(corr)
    frozen = freeze(RuleFile(Path("t.yml"), list(rules.rules)))
    assert frozen is not None and correlation_sql(frozen.rules[-1]) == sql
    return store.execute(sql).dicts()


def minutes(ts: dt.datetime) -> float:
    return (ts - T0).total_seconds() / 60


EVENT_COUNT = """
title: Five exports in five minutes
correlation:
  type: event_count
  rules: [bulk_export]
  group-by: [user_name]
  timespan: 5m
  condition: {gte: 5}
"""


### event_count ###


def test_five_within_five_minutes_fire(store: Store):
    add(store, "jo", [0, 1, 2, 3, 4])
    [a] = alerts(store, EVENT_COUNT)
    assert (a["g0"], minutes(a["first_ts"]), minutes(a["last_ts"]), len(a["event_ids"])) == (
        "jo",
        0,
        4,
        5,
    )


def test_an_alert_fires_at_the_event_that_completes_the_count(store: Store):
    add(store, "jo", [0, 1, 2, 3, 4, 4.5, 6])
    [a] = alerts(store, EVENT_COUNT)
    assert (minutes(a["first_ts"]), minutes(a["fired_at"]), minutes(a["last_ts"])) == (0, 4, 6)


def test_five_spread_over_six_minutes_do_not_fire(store: Store):
    add(store, "jo", [0, 1.5, 3, 4.5, 6])
    assert alerts(store, EVENT_COUNT) == []


def test_window_is_not_tied_to_clock_boundaries(store: Store):
    # 10:03–10:07 straddles any fixed 5-minute bucket (10:00–10:05, 10:05–10:10).
    add(store, "jo", [3, 4, 5, 6, 7])
    assert len(alerts(store, EVENT_COUNT)) == 1


def test_exactly_timespan_apart_is_within(store: Store):
    add(store, "jo", [0, 1, 2, 3, 5])
    assert len(alerts(store, EVENT_COUNT)) == 1


def test_timespan_is_not_dropped(store: Store):
    # Five exports over five hours: a backend that ignores timespan fires here.
    add(store, "jo", [0, 60, 120, 180, 240])
    assert alerts(store, EVENT_COUNT) == []


def test_every_window_of_a_group_is_checked(store: Store):
    # A backend taking one window per group sees min..max = 10 h and misses the late burst.
    add(store, "jo", [0, 1, 2])
    add(store, "jo", [600, 601, 602, 603, 604])
    [a] = alerts(store, EVENT_COUNT)
    assert minutes(a["first_ts"]) == 600


def test_two_bursts_in_a_group_are_two_alerts_and_groups_stay_apart(store: Store):
    add(store, "jo", [0, 1, 2, 3, 4, 100, 101, 102, 103, 104])
    add(store, "al", [0, 1, 2, 3])  # four: not enough, and not merged with jo's
    got = [
        (a["g0"], minutes(a["first_ts"]), len(a["event_ids"])) for a in alerts(store, EVENT_COUNT)
    ]
    assert got == [("jo", 0, 5), ("jo", 100, 5)]


def test_overlapping_windows_merge_into_one_alert(store: Store):
    add(store, "jo", [0, 1, 2, 3, 4, 5, 6, 7])
    [a] = alerts(store, EVENT_COUNT)
    assert (minutes(a["first_ts"]), minutes(a["last_ts"]), len(a["event_ids"])) == (0, 7, 8)


def test_only_events_of_the_referenced_rule_count(store: Store):
    add(store, "jo", [0, 1, 2, 3], category="bulk_export")
    add(store, "jo", [0.5], category="api_query")
    assert alerts(store, EVENT_COUNT) == []


### value_count ###

VALUE_COUNT = """
title: Exports of three objects in ten minutes
correlation:
  type: value_count
  rules: [bulk_export]
  group-by: [user_name]
  timespan: 10m
  condition: {gte: 3, field: object}
"""


def test_value_count_counts_distinct_values_in_the_window(store: Store):
    add(store, "jo", [0], obj="Contact")
    add(store, "jo", [2, 3], obj="Account")
    add(store, "jo", [9], obj="Case")
    [a] = alerts(store, VALUE_COUNT)
    assert a["n"] == 3


def test_value_count_near_miss_outside_window_and_repeats(store: Store):
    add(store, "jo", [0], obj="Contact")
    add(store, "jo", [5, 6, 7], obj="Account")  # repeats are one value
    add(store, "jo", [11], obj="Case")  # 11 minutes after Contact
    assert alerts(store, VALUE_COUNT) == []


### temporal and temporal_ordered, with aliases across sources ###


def _temporal(kind: str) -> str:
    return f"""
title: MFA enrolment and export by the same person
correlation:
  type: {kind}
  rules: [mfa_enrolled, bulk_export]
  group-by: [person]
  timespan: 1h
  aliases:
    person:
      mfa_enrolled: raw.actor.alternateId
      bulk_export: user_name
"""


def _okta(user: str) -> str:
    return json.dumps({"eventType": "user.mfa.factor.activate", "actor": {"alternateId": user}})


def test_temporal_fires_when_all_rules_occur_within_timespan_for_the_same_alias(store: Store):
    add(store, None, [0], category="mfa_change", raw=_okta("jo@retail.example"))
    add(store, "jo@retail.example", [40])
    [a] = alerts(store, _temporal("temporal"))
    assert (a["g0"], len(a["event_ids"])) == ("jo@retail.example", 2)


def test_temporal_near_misses(store: Store):
    add(store, None, [0], category="mfa_change", raw=_okta("jo@retail.example"))
    add(store, "jo@retail.example", [61])  # too late
    add(store, "al@retail.example", [10])  # someone else
    assert alerts(store, _temporal("temporal")) == []


def test_temporal_does_not_care_about_order(store: Store):
    add(store, "jo@retail.example", [0])
    add(store, None, [30], category="mfa_change", raw=_okta("jo@retail.example"))
    assert len(alerts(store, _temporal("temporal"))) == 1


def test_temporal_ordered_fires_in_order(store: Store):
    add(store, None, [0], category="mfa_change", raw=_okta("jo@retail.example"))
    add(store, "jo@retail.example", [30])
    [a] = alerts(store, _temporal("temporal_ordered"))
    assert (minutes(a["first_ts"]), minutes(a["last_ts"])) == (0, 30)


def test_temporal_ordered_checks_the_order(store: Store):
    # Export first, enrolment after: both in the hour, wrong order. Backends that only
    # collect the rule names fire here.
    add(store, "jo@retail.example", [0])
    add(store, None, [30], category="mfa_change", raw=_okta("jo@retail.example"))
    assert alerts(store, _temporal("temporal_ordered")) == []


def test_temporal_ordered_uses_the_latest_start(store: Store):
    # Enrolment at 0 and at 100, export at 130: the chain from 100 is within the hour.
    add(store, None, [0, 100], category="mfa_change", raw=_okta("jo@retail.example"))
    add(store, "jo@retail.example", [130])
    [a] = alerts(store, _temporal("temporal_ordered"))
    assert (minutes(a["first_ts"]), minutes(a["last_ts"])) == (100, 130)


@pytest.mark.parametrize("gap", [59, 60, 61])
def test_temporal_ordered_timespan_boundary(store: Store, gap: int):
    add(store, None, [0], category="mfa_change", raw=_okta("jo@retail.example"))
    add(store, "jo@retail.example", [gap])
    assert len(alerts(store, _temporal("temporal_ordered"))) == (1 if gap <= 60 else 0)
