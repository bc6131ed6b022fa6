"""The one quoting layer (issues 13 and 19): hostile values and names go in and come out of
DuckDB unchanged, as data; rules, baselines and snapshot names that carry them run as written
and never rewrite the query around them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch.cli import app
from crmwatch.detect.rules import load_rule_file
from crmwatch.detect.runner import run_rule
from crmwatch.sql import formatted, ident, json_path, lit, lit_list, num, ts
from crmwatch.store import Store
from tests.breach import SNAPSHOT, write_breach

HOSTILE = ["o'brien", "a\\b", "raw.a'b", '"', ";--", "x' OR '1'='1", "'); DROP TABLE events; --",
           "\\'", "%_*?", "é中\u202e"]  # fmt: skip


@pytest.mark.parametrize("value", HOSTILE)
def test_a_literal_is_the_value(store: Store, value: str):
    assert store.scalar(f"SELECT {lit(value)}") == value
    assert store.scalar(f"SELECT {lit(value)} IN {lit_list([value, 'other'])}") is True


@pytest.mark.parametrize("value", HOSTILE)
def test_a_template_writes_in_sql_what_format_writes(store: Store, value: str):
    """One template, the same words from Python and from SQL: its text is quoted, its fields
    are expressions (here literals of hostile text)."""
    template = "it's {a} as {b} {{x}}; " + value.replace("{", "{{").replace("}", "}}")
    sql = formatted(template, a=lit(value), b="'b'")
    assert store.scalar(f"SELECT {sql}") == template.format(a=value, b="b")
    assert store.scalar(f"SELECT {formatted('')}") == ""


@pytest.mark.parametrize("name", HOSTILE)
def test_an_identifier_is_the_name(store: Store, name: str):
    store.execute(f"CREATE TEMP TABLE {ident(name)} ({ident(name)} VARCHAR)")
    store.execute(f"INSERT INTO {ident(name)} VALUES (?)", ["ok"])
    assert store.scalar(f"SELECT {ident(name)} FROM {ident(name)}") == "ok"
    assert store.scalar("SELECT count(*) FROM events_base") == 0  # nothing else ran


@pytest.mark.parametrize("key", HOSTILE)
def test_a_json_path_reaches_the_member(store: Store, key: str):
    doc = json.dumps({key: {"in": "deep"}, "other": 1})
    assert store.scalar(f"SELECT json_extract_string(?, {json_path([key, 'in'])})", [doc]) == "deep"


def test_timestamps_and_numbers_are_checked(store: Store):
    t = dt.datetime(2025, 6, 10, 8, 50, 1, 250000)
    assert store.scalar(f"SELECT {ts(t)}") == t
    assert num(25) == "25" and num(0.5) == "0.5"
    for bad in (float("nan"), "1; DROP TABLE x", True):
        with pytest.raises(ValueError):
            num(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ts("2025-06-10")  # type: ignore[arg-type]


def _rule(tmp_path: Path, detection: str, extra: str = "") -> object:
    path = tmp_path / "r.yml"
    path.write_text("title: quoting\nid: 0e0e0e0e-0000-4000-8000-0000000000aa\n"
                    f"logsource: {{product: crmwatch}}\ndetection: {detection}\n{extra}")  # fmt: skip
    return load_rule_file(path)


def _events(store: Store, *names: str, raw: dict | None = None) -> None:
    for i, name in enumerate(names):
        store.execute(
            "INSERT INTO events_base (event_id, ts, source, category, user_name, raw) "
            "VALUES (?, ?, 'salesforce', 'authentication', ?, ?)",
            [f"e{i}", dt.datetime(2025, 8, 1, 9, i), name, json.dumps(raw or {})],
        )


def test_a_rule_value_with_an_apostrophe_matches_it_and_only_it(store: Store, tmp_path: Path):
    """pySigma's backslash escape wrote 'o\\'brien', which DuckDB does not read as an escape:
    detect failed; a crafted value rewrote its own WHERE clause and matched every principal."""
    _events(store, "o'brien@x.example", "jo@x.example", "x' OR '1'='1")
    rf = _rule(tmp_path, '{sel: {user_name: "o\'brien@x.example"}, condition: sel}')
    assert [a.principal for a in run_rule(store, rf)] == ["o'brien@x.example"]
    rf = _rule(tmp_path, "{sel: {user_name: \"x' OR '1'='1\"}, condition: sel}")
    assert [a.principal for a in run_rule(store, rf)] == ["x' OR '1'='1"]
    rf = _rule(tmp_path, '{sel: {user_name|contains: "\\\\\'"}, condition: sel}')
    assert run_rule(store, rf) == []


def test_raw_field_names_and_baseline_fields_are_names(store: Store, tmp_path: Path):
    _events(store, "jo@x.example", raw={"a'b": "yes", 'q"': "1"})
    rf = _rule(tmp_path, "{sel: {raw.a'b: 'yes'}, condition: sel}")
    assert len(run_rule(store, rf)) == 1
    rf = _rule(tmp_path, "{sel: {category: authentication}, condition: sel}",
               "baseline: {type: new_terms, fields: ['raw.q\"', \"raw.a'b\"], lookback: 30d}\n")  # fmt: skip
    [alert] = run_rule(store, rf)
    assert alert.key_fields["new_terms"] == [{'raw.q"': "1", "raw.a'b": "yes"}]


def test_a_hostile_snapshot_file_name_or_object_changes_no_table(tmp_path: Path):
    """Issue 19: a snapshot named `Contact" AS SELECT 1 AS x;DROP TABLE alerts;--.csv` dropped
    the alerts table while the command reported a parse error."""
    runner = CliRunner()
    db = str(tmp_path / "s.duckdb")
    logs = write_breach(tmp_path / "logs")
    assert runner.invoke(app, ["ingest", str(logs), "--db", db]).exit_code == 0
    runner.invoke(app, ["detect", "--db", db])
    iid = json.loads(runner.invoke(app, ["incidents", "--db", db, "--json"]).stdout)[0]["id"]
    snap = tmp_path / "snap"
    snap.mkdir()
    evil = snap / 'Contact"\tAS\tSELECT\t1\tAS\tx;DROP\tTABLE\talerts;--.csv'
    evil.write_bytes((SNAPSHOT / "Contact.csv").read_bytes())
    with Store(tmp_path / "s.duckdb") as store:
        before = store.scalar("SELECT count(*) FROM alerts")
    res = runner.invoke(app, ["scope", iid, "--customers", str(snap), "--db", db])
    assert res.exit_code == 2 and "not a Salesforce object name" in res.stderr
    res = runner.invoke(app, ["scope", iid, "--customers", str(SNAPSHOT / "Contact.csv"),
                              "--object", 'Contact" AS SELECT 1; DROP TABLE alerts; --',
                              "--db", db])  # fmt: skip
    assert res.exit_code == 2 and "not a Salesforce object name" in res.stderr
    with Store(tmp_path / "s.duckdb") as store:
        assert store.scalar("SELECT count(*) FROM alerts") == before > 0


def test_a_hostile_column_header_is_a_column(tmp_path: Path):
    """A snapshot column named like SQL is read as a column of that name."""
    snap = tmp_path / "snap"
    snap.mkdir()
    text = (SNAPSHOT / "Contact.csv").read_text(encoding="utf-8")
    header, rest = text.split("\n", 1)
    # a CSV-quoted header cell whose name is `Phone" , (SELECT 1) AS "x`
    hostile = header.replace("Phone", '"Phone"" , (SELECT 1) AS ""x"')
    (snap / "Contact.csv").write_text(hostile + "\n" + rest, encoding="utf-8")
    db = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    runner.invoke(app, ["ingest", str(write_breach(tmp_path / "logs")), "--db", db])
    runner.invoke(app, ["detect", "--db", db])
    iid = json.loads(runner.invoke(app, ["incidents", "--db", db, "--json"]).stdout)[0]["id"]
    res = runner.invoke(app, ["scope", iid, "--customers", str(snap), "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["affected_customers"] > 0
