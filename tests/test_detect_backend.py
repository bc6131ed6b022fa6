"""Sigma detection modifiers compiled to DuckDB and run against stored events."""

from __future__ import annotations

import datetime as dt

import pytest
from sigma.collection import SigmaCollection

from crmwatch.detect.where import rule_where
from crmwatch.store import Store

EVENTS = [
    # user_name, user_agent, src_ip, rows, raw
    ("admin@retail.example", "python-requests/2.32.4", "185.220.101.5", 48112,
     '{"JOB_STATUS": "Deleted", "eventType": "user.mfa.factor.activate"}'),
    ("Advisor@Retail.example", "Mozilla/5.0 Chrome/126.0", "203.0.113.10", 12, '{"JOB_STATUS": "deleted"}'),
    ("svc_sync@retail.example", "Salesforce-Multi-Org-Fetcher/1.0", "44.215.108.109", 1000, "{}"),
    ("nobody", None, None, None, "{}"),
]  # fmt: skip


@pytest.fixture
def events(store: Store) -> Store:
    for i, (user, ua, ip, rows, raw) in enumerate(EVENTS):
        store.execute(
            "INSERT INTO events_base (event_id, ts, user_name, user_agent, src_ip, rows, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [f"e{i}", dt.datetime(2025, 8, 12, 10, i), user, ua, ip, rows, raw],
        )
    return store


CASES = [
    ("user_name: admin@retail.example", {"e0"}),
    ("user_name: ADMIN@RETAIL.EXAMPLE", {"e0"}),  # case-insensitive by default
    ("user_name|cased: advisor@retail.example", set()),
    ("user_name|cased: Advisor@Retail.example", {"e1"}),
    ("user_agent|contains: requests", {"e0"}),
    ("user_agent|startswith: salesforce-", {"e2"}),
    ("user_agent|endswith: '/1.0'", {"e2"}),
    ("user_agent|contains|all: [python, '2.32']", {"e0"}),
    ("user_agent|contains: ['fetcher', 'chrome']", {"e1", "e2"}),
    ("user_name|re: '^svc_'", {"e2"}),
    ("user_name: 'svc_sync*'", {"e2"}),
    ("user_name: 'svc?sync@retail.example'", {"e2"}),
    ("user_name: 'svc%sync@retail.example'", set()),  # % is a literal, not a wildcard
    # plain values compare lower-cased text (not ILIKE): _ and % stay literals there too
    ("user_name|contains: 'svc_'", {"e2"}),
    ("user_name|startswith: 'sv_'", set()),  # as a wildcard, _ would match svc
    ("user_name|startswith: 'svc%'", set()),
    ("user_agent|contains: CHROME", {"e1"}),
    ("user_name|endswith: '@RETAIL.EXAMPLE'", {"e0", "e1", "e2"}),
    ("user_name: '*'", {"e0", "e1", "e2", "e3"}),
    ("src_ip|cidr: 185.220.100.0/22", {"e0"}),
    ("src_ip|cidr: 44.215.108.0/24", {"e2"}),
    ("rows|gte: 1000", {"e0", "e2"}),
    ("rows|gt: 1000", {"e0"}),
    ("rows|lt: 1000", {"e1"}),
    ("rows|lte: 12", {"e1"}),
    ("user_agent|exists: false", {"e3"}),
    ("user_agent|exists: true", {"e0", "e1", "e2"}),
    ("raw.JOB_STATUS|cased: Deleted", {"e0"}),
    ("raw.JOB_STATUS: deleted", {"e0", "e1"}),
    ("eventType|startswith: user.mfa", {"e0"}),  # not a column: looked up in raw
    ("user_name|base64offset|contains: admin", set()),
]  # fmt: skip


@pytest.mark.parametrize(("selection", "expected"), CASES, ids=[c[0] for c in CASES])
def test_modifier(events: Store, selection: str, expected: set[str]):
    rule = SigmaCollection.from_yaml(
        "title: t\nlogsource: {product: crmwatch}\n"
        f"detection:\n  sel:\n    {selection}\n  condition: sel\n"
    ).rules[0]
    got = {
        r[0] for r in events.execute(f"SELECT event_id FROM events WHERE {rule_where(rule)}").rows
    }
    assert got == expected


def test_not_and_or_conditions(events: Store):
    rule = SigmaCollection.from_yaml("""
title: scripted client that is not the sync account
logsource: {product: crmwatch}
detection:
  script: {user_agent|contains: [python, fetcher]}
  sync: {user_name|startswith: svc_}
  condition: script and not sync
""").rules[0]
    got = {
        r[0] for r in events.execute(f"SELECT event_id FROM events WHERE {rule_where(rule)}").rows
    }
    assert got == {"e0"}


def test_not_holds_where_the_field_is_missing(events: Store):
    """Sigma's `not sel`: an event without the field does not match `sel`, so `not sel` holds;
    SQL's NOT of a comparison with NULL would have dropped it."""
    rule = SigmaCollection.from_yaml("""
title: anything but failures
logsource: {product: crmwatch}
detection:
  any: {event_id|exists: true}
  failed: {status_detail: LOGIN_ERROR_INVALID_PASSWORD}
  condition: any and not failed
""").rules[0]
    total, missing, failed = events.execute(
        "SELECT count(*), count(*) FILTER (status_detail IS NULL), count(*) FILTER "
        "(status_detail = 'LOGIN_ERROR_INVALID_PASSWORD') FROM events"
    ).first()
    got = events.scalar(f"SELECT count(*) FROM events WHERE {rule_where(rule)}")
    assert missing > 0 and got == total - failed


def test_an_alerts_addresses_and_objects_are_listed_sorted(store: Store, tmp_path):
    """Alert fields are the same bytes at every run: DuckDB's ``list(DISTINCT …)`` keeps no
    order of its own."""
    from crmwatch.detect.rules import load_rule_file
    from crmwatch.detect.runner import run_rule

    ips = [f"198.51.100.{n}" for n in range(90, 10, -10)]
    objects = ["Opportunity", "Lead", "Contact", "Case", "Account", "Order", "Asset", "Task"]
    for i, (ip, obj) in enumerate(zip(ips, objects, strict=True)):
        store.execute(
            "INSERT INTO events_base (event_id, ts, source, user_name, login_key, category, "
            "src_ip, object) VALUES (?, ?, 'salesforce', 'jo@x.example', 'k1', 'api_query', ?, ?)",
            [f"s{i}", dt.datetime(2025, 8, 12, 10, i), ip, obj],
        )
    path = tmp_path / "r.yml"
    path.write_text(
        "title: t\nid: 0e0e0e0e-0000-4000-8000-000000000002\nlogsource: {product: salesforce}\n"
        "detection: {sel: {category: api_query}, condition: sel}\nfalsepositives: [none]\n"
    )
    [alert] = run_rule(store, load_rule_file(path))
    assert alert.key_fields["src_ips"] == sorted(ips)
    assert alert.key_fields["objects"] == sorted(objects)
