"""Baselines: new terms (lookback, learning, candidates, tuples, global groups) and volume
over a principal's own history, plus ``--since`` keeping history and correlation spans."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmwatch.config import EnrichConfig
from crmwatch.detect.rules import load_rule_file
from crmwatch.detect.runner import run_rule
from crmwatch.enrich import enrich
from crmwatch.errors import RuleError
from crmwatch.store import Store
from tests.test_properties import SETTINGS

T0 = dt.datetime(2025, 8, 1, 9, 0, 0)
_ids = itertools.count()


def add(store: Store, days: float, user: str = "jo@x.example", **cols) -> str:
    event_id = f"b{next(_ids):05d}"
    row = {"event_id": event_id, "ts": T0 + dt.timedelta(days=days), "source": "salesforce",
           "user_name": user, **cols}  # fmt: skip
    store.execute(
        f"INSERT INTO events_base ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )
    return event_id


def rule(tmp_path: Path, baseline: str, detection: str = "{sel: {category: authentication}, "
         "condition: sel}") -> object:  # fmt: skip
    path = tmp_path / f"r{next(_ids)}.yml"
    path.write_text(
        "title: under test\nid: 0e0e0e0e-0000-4000-8000-000000000001\n"
        f"logsource: {{product: salesforce}}\ndetection: {detection}\n"
        f"falsepositives: [none]\nbaseline: {baseline}\n"
    )
    return load_rule_file(path)


NEW_OBJECT = "{type: new_terms, fields: [object], lookback: 30d}"


def fired(store: Store, rf, **window) -> list[list[str]]:
    return [a.event_ids for a in run_rule(store, rf, **window)]


### new terms ###


def test_new_term_fires_once_per_term_and_principal(store: Store, tmp_path: Path):
    rf = rule(tmp_path, NEW_OBJECT, "{sel: {category: bulk_export}, condition: sel}")
    first = add(store, 0, category="bulk_export", object="Contact", login_key="k1")
    add(store, 1, category="bulk_export", object="Contact", login_key="k2")
    other = add(store, 0, user="ann@x.example", category="bulk_export", object="Contact")
    case = add(store, 2, category="bulk_export", object="Case", login_key="k3")
    assert sorted(fired(store, rf)) == sorted([[first], [other], [case]])


@pytest.mark.parametrize(("gap_days", "new"), [(29.9, False), (30.1, True)])
def test_a_term_unseen_for_the_lookback_is_new_again(store, tmp_path, gap_days, new):
    rf = rule(tmp_path, NEW_OBJECT, "{sel: {category: bulk_export}, condition: sel}")
    add(store, 0, category="bulk_export", object="Contact", login_key="k1")
    again = add(store, gap_days, category="bulk_export", object="Contact", login_key="k2")
    assert ([again] in fired(store, rf)) is new


@pytest.mark.parametrize(("history_days", "judged"), [(6.9, False), (7.0, True)])
def test_learning_mutes_principals_seen_for_less_than_it(store, tmp_path, history_days, judged):
    rf = rule(tmp_path, "{type: new_terms, fields: [object], lookback: 30d, learning: 7d}",
              "{sel: {category: bulk_export}, condition: sel}")  # fmt: skip
    add(store, 0, category="record_view")  # any event starts the learning clock
    export = add(store, history_days, category="bulk_export", object="Contact")
    assert fired(store, rf) == ([[export]] if judged else [])


def test_candidates_narrow_the_alerts_but_not_the_history(store, tmp_path):
    rf = rule(tmp_path, "{type: new_terms, fields: [mfa], lookback: 30d, "
              "candidates: {mfa: false}}")  # fmt: skip
    add(store, 0, category="authentication", mfa=True)  # new, but not a candidate
    add(store, 1, category="authentication", mfa=False, login_key="k1")
    add(store, 2, category="authentication", mfa=False, login_key="k2")  # seen yesterday
    assert len(fired(store, rf)) == 1
    assert run_rule(store, rf)[0].key_fields["new_terms"] == [{"mfa": False}]


def test_several_fields_make_one_tuple_term(store, tmp_path):
    rf = rule(tmp_path, "{type: new_terms, fields: [country, client_app], lookback: 30d}")
    add(store, 0, category="authentication", src_ip="81.2.69.144", client_app="A", login_key="1")
    add(store, 1, category="authentication", src_ip="81.2.69.144", client_app="B", login_key="2")
    add(store, 2, category="authentication", src_ip="81.2.69.145", client_app="A", login_key="3")
    from crmwatch.config import EnrichConfig
    from crmwatch.enrich import enrich

    enrich(store, EnrichConfig())
    assert len(fired(store, rf)) == 2  # (GB, A) and (GB, B); the third repeats (GB, A)


def test_an_empty_group_by_looks_at_the_whole_org(store, tmp_path):
    rf = rule(tmp_path, "{type: new_terms, fields: [client_app], group-by: [], lookback: 90d}")
    first = add(store, 0, category="authentication", client_app="Dataloader Partner")
    add(store, 3, user="ann@x.example", category="authentication", client_app="Dataloader Partner")
    assert fired(store, rf) == [[first]]


def test_null_terms_and_groups_are_not_terms(store, tmp_path):
    rf = rule(tmp_path, NEW_OBJECT, "{sel: {category: bulk_export}, condition: sel}")
    add(store, 0, category="bulk_export", object=None)
    add(store, 0, user=None, category="bulk_export", object="Contact")
    assert fired(store, rf) == []


### volume ###

VOLUME = ("{type: volume, value: rows, bucket: 1h, lookback: 30d, factor: 10, floor: 1000}",
          "{sel: {category: bulk_export}, condition: sel}")  # fmt: skip


def test_volume_compares_with_the_highest_earlier_bucket(store, tmp_path):
    rf = rule(tmp_path, *VOLUME)
    add(store, 0, category="bulk_export", rows=500)
    add(store, 1, category="bulk_export", rows=4000)  # 8x the highest hour: quiet
    add(store, 2, category="bulk_export", rows=30000)  # 7.5x the 4000-row hour: quiet
    big = add(store, 3, category="bulk_export", rows=300_001)  # > 10 x 30000
    [a] = run_rule(store, rf)
    assert a.event_ids == [big]
    assert (a.key_fields["baseline"], a.key_fields["threshold"]) == (30000, 300000)


def test_volume_sums_an_hour_and_respects_the_floor(store, tmp_path):
    rf = rule(tmp_path, *VOLUME)
    add(store, 0, category="bulk_export", rows=600)  # first bucket: floor only, 600 < 1000
    a = add(store, 1, category="bulk_export", rows=600)
    b = add(store, 1 + 1 / 48, category="bulk_export", rows=5500)  # same hour: 6100 > 10 x 600
    assert fired(store, rf) == [[a, b]]


def test_volume_fires_at_the_event_that_crosses_the_threshold(store, tmp_path):
    rf = rule(tmp_path, *VOLUME)
    add(store, 0, category="bulk_export", rows=600)
    add(store, 1, category="bulk_export", rows=3000)  # 3000 < 6000: not yet
    add(store, 1 + 1 / 96, category="bulk_export", rows=3000)  # 6000, not > 6000
    add(store, 1 + 2 / 96, category="bulk_export", rows=1)  # 6001: this one
    add(store, 1 + 3 / 96, category="bulk_export", rows=9000)
    [a] = run_rule(store, rf)
    assert (a.first_ts, a.fired_at) == (
        T0 + dt.timedelta(days=1),
        T0 + dt.timedelta(days=1 + 2 / 96),
    )


@pytest.mark.parametrize(("day", "forgotten"), [(29, False), (31, True)])
def test_volume_history_older_than_the_lookback_is_forgotten(store, tmp_path, day, forgotten):
    rf = rule(tmp_path, *VOLUME)
    big = add(store, 0, category="bulk_export", rows=900_000)  # first hour: over the floor
    later = add(store, day, category="bulk_export", rows=5000)
    assert fired(store, rf) == ([[big], [later]] if forgotten else [[big]])


### windows ###


def test_since_keeps_the_history_before_it(store, tmp_path):
    rf = rule(tmp_path, NEW_OBJECT, "{sel: {category: bulk_export}, condition: sel}")
    add(store, 0, category="bulk_export", object="Contact", login_key="k1")
    add(store, 5, category="bulk_export", object="Contact", login_key="k2")  # not new
    new = add(store, 5, category="bulk_export", object="Case", login_key="k3")
    assert fired(store, rf, since=T0 + dt.timedelta(days=4)) == [[new]]


def test_since_finds_correlation_spans_that_start_before_it(store, tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(
        "title: export\nname: export\nlogsource: {product: salesforce}\n"
        "detection: {sel: {category: bulk_export}, condition: sel}\n---\n"
        "title: three exports in ten minutes\nid: 0e0e0e0e-0000-4000-8000-000000000002\n"
        "correlation: {type: event_count, rules: [export], group-by: [principal], "
        "timespan: 10m, condition: {gte: 3}}\n"
    )
    rf = load_rule_file(path)
    ids = [add(store, m / 1440, category="bulk_export") for m in (0, 4, 8)]
    since = T0 + dt.timedelta(minutes=6)
    assert fired(store, rf, since=since) == [ids]
    assert fired(store, rf, since=T0 + dt.timedelta(minutes=9)) == []


### errors ###


@pytest.mark.parametrize(
    ("baseline", "message"),
    [
        ("{type: rare}", "baseline type must be one of"),
        ("{type: new_terms, lookback: 30d}", "needs fields"),
        ("{type: new_terms, fields: [object]}", "needs 'lookback'"),
        ("{type: new_terms, fields: [object], lookback: soon}", "lookback 'soon'"),
        ("{type: volume, lookback: 30d, factr: 3}", "unknown baseline keys ['factr']"),
    ],
)
def test_bad_baselines_are_refused_when_the_file_loads(tmp_path, baseline, message):
    with pytest.raises(RuleError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rule(tmp_path, baseline)


def test_a_correlation_cannot_count_a_volume_rule(store, tmp_path):
    path = tmp_path / "c.yml"
    path.write_text(
        "title: big\nname: big\nlogsource: {product: salesforce}\n"
        "detection: {sel: {category: bulk_export}, condition: sel}\n"
        "baseline: {type: volume, lookback: 30d}\n---\n"
        "title: twice\nid: 0e0e0e0e-0000-4000-8000-000000000003\n"
        "correlation: {type: event_count, rules: [big], timespan: 1h, condition: {gte: 2}}\n"
    )
    with pytest.raises(RuleError, match="volume baseline"):
        run_rule(store, load_rule_file(path))


### the bucketed new-terms query against a plain reading of the definition ###

EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["a@x.example", "b@x.example"]),
        st.sampled_from(["Contact", "Case", None]),
        st.integers(0, 120 * 24),  # hour offsets over 120 days
    ),
    max_size=40,
)


def reference_new_terms(events: list[tuple], lookback_h: int) -> set[str]:
    """An event is new when no earlier event (ts, id order) of its user and term lies within
    the lookback before it."""
    new = set()
    ordered = sorted(events, key=lambda e: (e[2], e[3]))
    for i, (user, term, at, eid) in enumerate(ordered):
        if term is None:
            continue
        earlier = [e for e in ordered[:i] if e[0] == user and e[1] == term]
        if not earlier or at - earlier[-1][2] > lookback_h:
            new.add(eid)
    return new


@SETTINGS
@given(events=EVENTS, lookback_days=st.sampled_from([1, 7, 30]))
def test_new_terms_matches_the_definition(tmp_path_factory, events, lookback_days):
    rf = rule(tmp_path_factory.mktemp("nt"), f"{{type: new_terms, fields: [object], "
              f"lookback: {lookback_days}d}}", "{sel: {category: bulk_export}, condition: sel}")  # fmt: skip
    with Store(":memory:") as store:
        rows = []
        for user, term, hours in events:
            eid = add(store, hours / 24, user=user, category="bulk_export", object=term)
            rows.append((user, term, hours, eid))
        got = {e for a in run_rule(store, rf) for e in a.event_ids}
    assert got == reference_new_terms(rows, lookback_days * 24)


### impossible travel, levels by context, learning (issue 12) ###

TRAVEL = "{type: travel, group-by: [person], speed: 1000, lookback: 1d}"


@pytest.mark.parametrize(
    ("second_ip", "hours", "fires"),
    [
        ("89.160.20.112", 0.5, True),  # Seoul, then Sweden half an hour later
        ("89.160.20.112", 12, False),  # twelve hours: a flight
        ("1.209.16.99", 0.1, False),  # the same country
        ("89.160.20.112", 30, False),  # beyond the lookback, any move is possible
    ],
)
def test_travel_fires_when_the_move_is_faster_than_the_speed(store, tmp_path, second_ip,
                                                            hours, fires):  # fmt: skip
    rf = rule(tmp_path, TRAVEL)
    first = add(store, 0, category="authentication", src_ip="1.209.16.10")
    second = add(store, hours / 24, category="authentication", src_ip=second_ip)
    enrich(store, EnrichConfig())
    alerts = run_rule(store, rf)
    assert bool(alerts) == fires
    if fires:
        [a] = alerts
        assert a.event_ids == [first, second] and a.fired_at == T0 + dt.timedelta(hours=hours)
        assert a.key_fields["from"] == "KR" and a.key_fields["to"] == "SE"
        assert 6000 < a.key_fields["km"] < 8000  # Seoul–Stockholm is about 7,400 km


def test_neighbouring_countries_are_never_an_impossible_trip(store, tmp_path):
    """Strasbourg and Kehl are a bridge apart: the nearest towns of France and Germany."""
    rf = rule(tmp_path, TRAVEL)
    add(store, 0, category="authentication", src_ip="82.64.10.10")  # France
    add(store, 1 / 24 / 60, category="authentication", src_ip="46.114.0.10")  # Germany
    enrich(store, EnrichConfig())
    countries = {r[0] for r in store.execute("SELECT country FROM events").rows}
    assert countries == {"FR", "DE"} and run_rule(store, rf) == []


def test_learning_ignores_snapshot_creation_dates(store, tmp_path):
    """An OauthToken created a year ago says the user exists, not that anyone watched them:
    on the first day of logs their first export is still in learning."""
    rf = rule(tmp_path, "{type: new_terms, fields: [object], lookback: 30d, learning: 7d}",
              "{sel: {category: bulk_export}, condition: sel}")  # fmt: skip
    add(store, -365, source_type="api:OauthToken", category="oauth_grant")
    add(store, 0, category="bulk_export", object="Contact")
    assert fired(store, rf) == []
    add(store, -8, category="record_view")  # seen working for eight days: judged
    assert len(fired(store, rf)) == 1


def test_candidates_may_be_a_detection_with_a_condition(store, tmp_path):
    rf = rule(tmp_path, "{type: new_terms, fields: [country], lookback: 30d, candidates: "
              "{net: {ip_class: [tor, vpn]}, ok: {outcome: failure}, condition: net and not ok}}")  # fmt: skip
    add(store, 0, category="authentication", src_ip="121.134.10.10")
    add(store, 1, category="authentication", src_ip="89.160.20.112")  # a new country, an ISP
    tor = add(store, 2, category="authentication", src_ip="185.220.101.7")  # new, and Tor
    enrich(store, EnrichConfig())
    assert fired(store, rf) == [[tor]]


def _levelled(tmp_path: Path, levels: str) -> object:
    path = tmp_path / f"l{next(_ids)}.yml"
    path.write_text(
        "title: bulk export\nid: 0e0e0e0e-0000-4000-8000-000000000002\n"
        "logsource: {product: salesforce}\n"
        "detection: {sel: {category: bulk_export}, condition: sel}\n"
        f"level: high\nlevels: {levels}\n"
    )
    return load_rule_file(path)


def test_levels_take_the_first_context_the_evidence_meets(store, tmp_path):
    rf = _levelled(tmp_path, "[{level: medium, all: {ip_class: corporate}}, "
                   "{level: critical, any: {ip_class: tor}}]")  # fmt: skip
    add(store, 0, category="bulk_export", src_ip="90.3.9.1", login_key="office")
    add(store, 0, category="bulk_export", src_ip="90.3.9.2", login_key="office")
    add(store, 0, category="bulk_export", src_ip="90.3.9.3", login_key="mixed")
    add(store, 0, category="bulk_export", src_ip="185.220.101.7", login_key="mixed")
    add(store, 0, category="bulk_export", src_ip="89.160.20.112", login_key="home")
    enrich(store, EnrichConfig(corporate_cidrs=("90.3.8.0/22",)))
    got = {a.key_fields["login_key"]: (a.level, a.risk) for a in run_rule(store, rf)}
    assert got == {"office": ("medium", 25), "mixed": ("critical", 100), "home": ("high", 60)}


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        ("{level: low}", "must be a list"),
        ("[{level: serious, all: {ip_class: tor}}]", "needs a level"),
        ("[{level: low, all: {ip_class: tor}, any: {ip_class: vpn}}]", "exactly one of all, any"),
        ("[{level: low, all: 5}]", "must be a selection"),
    ],
)
def test_bad_levels_are_refused_when_the_file_loads(tmp_path, levels, message):
    with pytest.raises(RuleError, match=message):
        _levelled(tmp_path, levels)


@pytest.mark.parametrize("risk", ["101", "-1", "high", "true"])
def test_a_rules_risk_is_a_whole_number_up_to_100(tmp_path, risk):
    path = tmp_path / "r.yml"
    path.write_text("title: t\nlogsource: {product: crmwatch}\n"
                    f"detection: {{sel: {{category: x}}, condition: sel}}\nrisk: {risk}\n")  # fmt: skip
    with pytest.raises(RuleError, match="risk must be a whole number"):
        load_rule_file(path)
