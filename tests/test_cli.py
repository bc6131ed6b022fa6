"""The command line: exit codes, JSON output, errors as one line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crmwatch import cli
from crmwatch.cli import app
from crmwatch.console.accounts import ROLES
from crmwatch.ingest import SKIPPED
from crmwatch.simulate.scenarios import SCENARIOS
from crmwatch.sources import FORMATS
from crmwatch.store import Store
from tests.conftest import BAD, REAL

runner = CliRunner()


def test_ingest_real_samples_exits_zero_even_with_strict(tmp_path: Path):
    r = runner.invoke(app, ["ingest", str(REAL), "--db", str(tmp_path / "s.duckdb"), "--strict"])
    assert r.exit_code == 0, r.output
    assert "0 quarantined" in r.output


def test_strict_exits_one_when_anything_was_quarantined(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    assert (
        runner.invoke(app, ["ingest", str(BAD / "elf_wrong_columns.csv"), "--db", db]).exit_code
        == 0
    )
    r = runner.invoke(app, ["ingest", str(BAD / "elf_wrong_columns.csv"), "--db", db, "--strict"])
    assert r.exit_code == 1


def test_a_second_run_skips_unchanged_files_and_rescan_reads_them(tmp_path: Path):
    db, src = str(tmp_path / "s.duckdb"), str(REAL / "salesforce")
    first = json.loads(runner.invoke(app, ["ingest", src, "--db", db, "--json"]).output)
    n = sum(1 for f in first["files"] if f["format"] != SKIPPED)
    r = runner.invoke(app, ["ingest", src, "--db", db])
    assert r.exit_code == 0, r.output
    assert f"{n} files unchanged since ingested, not read" in r.output
    again = json.loads(runner.invoke(app, ["ingest", src, "--db", db, "--rescan", "--json"]).output)
    assert not any(f["unchanged"] for f in again["files"])
    records = sum(f["records"] for f in first["files"])
    assert sum(f["duplicates"] for f in again["files"]) == records


def test_missing_path_is_a_usage_error(tmp_path: Path):
    r = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--db", str(tmp_path / "s.duckdb")])
    assert r.exit_code == 2
    assert "no such file or directory" in r.output
    assert "Traceback" not in r.output


def test_unknown_format_name_is_a_usage_error(tmp_path: Path):
    r = runner.invoke(app, ["ingest", str(REAL), "--format", "syslog", "--db", str(tmp_path / "s")])
    assert r.exit_code == 2
    assert "unknown format 'syslog'" in r.output


@pytest.mark.parametrize("gap", ["1.5h", "0h", "24", "h"])
def test_incident_gap_must_be_a_sigma_timespan(tmp_path: Path, gap: str):
    r = runner.invoke(app, ["incidents", "--db", str(tmp_path / "s.duckdb"), "--gap", gap])
    assert r.exit_code == 2
    assert f"not a duration like 30m, 24h or 7d: {gap!r}" in r.output


def test_incident_gap_accepts_weeks(tmp_path: Path):
    Store(tmp_path / "s.duckdb").close()
    r = runner.invoke(app, ["incidents", "--db", str(tmp_path / "s.duckdb"), "--gap", "2w"])
    assert r.exit_code == 0, r.output
    # the hint names the store it listed, so it can be run as printed
    assert f"crmwatch incident show ID --db {tmp_path / 's.duckdb'}" in " ".join(r.output.split())


def test_only_commands_that_put_data_in_make_a_store(tmp_path: Path):
    """A mistyped --db: read commands say there is no store there and make none."""
    db = tmp_path / "typo.duckdb"
    for args in (["quarantine"], ["stats"], ["detect"], ["incidents"],
                 ["alerts", "export", "--ocsf", str(tmp_path / "f.json")]):  # fmt: skip
        r = runner.invoke(app, [*args, "--db", str(db)])
        assert r.exit_code == 2 and f"no store at {db}" in " ".join(r.stderr.split()), args
        assert not db.exists() and not (tmp_path / "f.json").exists()
    assert runner.invoke(app, ["ingest", str(BAD / "okta_truncated.json"), "--db", str(db)]
                         ).exit_code == 0  # fmt: skip
    assert runner.invoke(app, ["quarantine", "--db", str(db)]).exit_code == 0


def test_db_from_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CRMWATCH_DB", str(tmp_path / "env.duckdb"))
    assert runner.invoke(app, ["ingest", str(BAD / "okta_truncated.json")]).exit_code == 0
    assert (tmp_path / "env.duckdb").exists()


def test_stats_json_counts_by_source_type_category_day_and_quarantine(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    runner.invoke(app, ["ingest", str(BAD), "--db", db])
    r = runner.invoke(app, ["stats", "--db", db, "--json"])
    assert r.exit_code == 0
    s = json.loads(r.output)
    assert s["events"] == sum(x["events"] for x in s["by_source_type"])
    assert s["events"] == sum(x["events"] for x in s["by_category"])
    assert s["events"] == sum(x["events"] for x in s["by_day"])
    reasons = {x["reason"]: x["records"] for x in s["quarantine_by_reason"]}
    assert reasons == {"bad_quoting": 2, "wrong_column_count": 2, "bad_timestamp": 1,
                       "invalid_utf8": 2, "invalid_json": 2, "not_an_object": 1,
                       "empty_file": 1, "unknown_format": 2}  # fmt: skip
    assert s["quarantined"] == 13  # notes.txt, quarantined whole, stands for its 2 lines


def test_ingest_json_summary_accounts_for_every_record(tmp_path: Path):
    r = runner.invoke(app, ["ingest", str(BAD), "--db", str(tmp_path / "s.duckdb"), "--json"])
    files = json.loads(r.output)["files"]
    for f in files:
        assert (
            f["records"] == f["inserted"] + f["duplicates"] + f["quarantined"] or f["records"] == 0
        )


def test_quarantine_listing_names_file_line_and_reason_without_content(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    r = runner.invoke(app, ["ingest", str(BAD / "elf_bad_quoting.csv"), "--db", db])
    # the hint names the store it was given, as a shell would need it
    assert f"see them with: crmwatch quarantine --db {db}" in " ".join(r.output.split())
    r = runner.invoke(app, ["quarantine", "--db", db])
    assert "elf_bad_quoting.csv:3: bad_quoting" in r.output
    assert "quote2@example.com" not in r.output


NAIVE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(?![0-9Z+])")


def _times_without_zone(value) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _times_without_zone(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times_without_zone(v)]
    if isinstance(value, str) and NAIVE_TIME.fullmatch(value):
        return [value]
    return []


def test_every_json_output_gives_times_in_utc_with_z(tmp_path: Path):
    """Issue 12: `incidents --json` printed 2025-06-09T01:31:00, a time without its zone."""
    from tests.breach import SNAPSHOT, write_breach

    db = str(tmp_path / "s.duckdb")
    logs = write_breach(tmp_path / "logs")
    outputs = {
        "ingest": runner.invoke(app, ["ingest", str(logs), "--db", db, "--json"]),
        "detect": runner.invoke(app, ["detect", "--db", db, "--json"]),
        "incidents": runner.invoke(app, ["incidents", "--db", db, "--json"]),
        "stats": runner.invoke(app, ["stats", "--db", db, "--json"]),
    }
    iid = json.loads(outputs["incidents"].stdout)[0]["id"]
    outputs["show"] = runner.invoke(app, ["incident", "show", iid, "--db", db, "--json"])
    outputs["scope"] = runner.invoke(
        app, ["scope", iid, "--customers", str(SNAPSHOT), "--db", db, "--json"]
    )
    checked = 0
    for name, res in outputs.items():
        assert res.exit_code == 0, (name, res.output)
        lines = res.stdout.splitlines() if name == "detect" else [res.stdout]
        for line in lines:
            body = json.loads(line)
            assert _times_without_zone(body) == [], name
            checked += len(re.findall(r'"\d{4}-\d{2}-\d{2}T[0-9:.]+Z"', line))
    assert checked > 20


### the CLI's own contract (issue 13, issue 19.4) ###


def test_no_traceback_for_a_missing_rule_folder_or_an_unwritable_export(tmp_path: Path):
    res = runner.invoke(app, ["rules", "list", "--rules", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such rule file or directory" in res.stderr
    db = str(tmp_path / "s.duckdb")
    runner.invoke(app, ["ingest", str(REAL / "okta"), "--db", db])
    res = runner.invoke(app, ["alerts", "export", "--ocsf", str(tmp_path / "no" / "f.json"),
                              "--db", db])  # fmt: skip
    assert res.exit_code == 2 and "No such file or directory" in res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit)


def _hostile_logs(folder: Path) -> Path:
    """An attacker's session whose user name carries a terminal title-change sequence and
    whose queried object carries rich markup, in a real event-object export."""
    from tests.breach import _sf

    folder.mkdir()
    name = "evil\x1b]0;pwned\x07@x.example"
    records = [
        _sf("LoginEvent", 1, EventDate="2025-06-10T08:50:00.000+0000", Username=name,
            UserId="005000000000009AAA", SourceIp="185.220.101.7", LoginKey="LK-EVIL",
            Status="Success", LoginUrl="login.salesforce.com", Browser="Chrome 125"),
        _sf("ApiEvent", 2, EventDate="2025-06-10T08:55:00.000+0000", Username=name,
            UserId="005000000000009AAA", SourceIp="185.220.101.7", LoginKey="LK-EVIL",
            Query="SELECT Id FROM Contact", QueriedEntities="[/][link=http://evil.example]x",
            RowsProcessed=5000, Operation="Query"),
    ]  # fmt: skip
    body = {"totalSize": len(records), "done": True, "records": records}
    (folder / "events.json").write_text(json.dumps(body))
    return folder


def test_values_from_logs_print_as_text_not_terminal_codes_or_markup(tmp_path: Path):
    db = str(tmp_path / "s.duckdb")
    assert runner.invoke(app, ["ingest", str(_hostile_logs(tmp_path / "logs")), "--db", db]
                         ).exit_code == 0  # fmt: skip
    outputs = [runner.invoke(app, ["detect", "--db", db]),
               runner.invoke(app, ["incidents", "--db", db])]  # fmt: skip
    iid = json.loads(runner.invoke(app, ["incidents", "--db", db, "--json"]).stdout)[0]["id"]
    outputs.append(runner.invoke(app, ["incident", "show", iid, "--db", db]))
    for res in outputs:
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    shown = outputs[2].stdout.replace("\n", "")
    assert "evil\\x1b]0;pwned\\x07@x.example" in shown  # the sequence, visible as text
    assert "[/][link=http://evil.example]x" in shown


def test_a_file_of_several_rules_without_a_correlation_runs_every_rule(tmp_path: Path):
    """Issue 13: only the last rule of such a file ran."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "two.yml").write_text(
        "title: Tor sign-in\nid: 0e0e0e0e-0000-4000-8000-0000000000b1\n"
        "logsource: {product: crmwatch}\n"
        "detection: {sel: {ip_class: tor}, condition: sel}\nlevel: high\n---\n"
        "title: Any API query\nid: 0e0e0e0e-0000-4000-8000-0000000000b2\n"
        "logsource: {product: crmwatch}\n"
        "detection: {sel: {category: api_query}, condition: sel}\nlevel: low\n"
    )
    db = str(tmp_path / "s.duckdb")
    runner.invoke(app, ["ingest", str(_hostile_logs(tmp_path / "logs")), "--db", db])
    res = runner.invoke(app, ["detect", "--db", db, "--json", "--rules", str(tmp_path / "rules")])
    assert res.exit_code == 0, res.output
    titles = {json.loads(line)["title"] for line in res.stdout.splitlines()}
    assert {"Tor sign-in", "Any API query"} <= titles
    assert len(titles) > 2  # the pack's own findings too
    # issue 21: the user's rule set alone, without the built-in pack
    res = runner.invoke(app, ["detect", "--db", db, "--json", "--no-builtin", "--rules",
                              str(tmp_path / "rules")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert {json.loads(line)["title"] for line in res.stdout.splitlines()} == {
        "Tor sign-in", "Any API query"}  # fmt: skip
    listed = runner.invoke(app, ["rules", "list", "--no-builtin", "--rules",
                                 str(tmp_path / "rules")]).stdout  # fmt: skip
    assert len(listed.strip().splitlines()) == 2
    res = runner.invoke(app, ["detect", "--db", db, "--no-builtin"])
    assert res.exit_code == 2 and "give --rules" in res.output


def test_misuse_is_a_one_line_usage_error_and_changes_nothing(tmp_path: Path):
    """Issue 19: these printed tracebacks, silently overwrote a file or ran an empty range."""
    (tmp_path / "f").write_text("keep")
    for args, said in [
        (["simulate", "--days", "0", "--benign-only", "--out", str(tmp_path / "x")],
         "--days must be at least 1"),
        (["simulate", "--out", str(tmp_path / "f")], "is a file, not a folder"),
        (["detect", "--since", "2025-06-10", "--until", "2025-06-01", "--db",
          str(tmp_path / "s.duckdb")], "is not before --until"),
        (["alerts", "export", "--ocsf", str(tmp_path / "f"), "--db", str(tmp_path / "s.duckdb")],
         "exists; add --force"),
        (["alerts", "export", "--ocsf", str(tmp_path), "--force", "--db",
          str(tmp_path / "s.duckdb")], "is a directory; name a file"),
        (["alerts", "export", "--ocsf", ".", "--force", "--db", str(tmp_path / "s.duckdb")],
         "is a directory; name a file"),
        # these overflowed Python's dates or DuckDB's intervals (a traceback, or the SQL)
        (["detect", "--since", "0001-01-01T00:00:00+14:00", "--db", str(tmp_path / "s.duckdb")],
         "outside the calendar"),
        (["detect", "--until", "9999-12-31T23:59:59Z", "--db", str(tmp_path / "s.duckdb")],
         "outside the years crmwatch handles"),
        (["notify", "INC-X", "--aware-at", "9999-12-31T23:59:59Z", "--db",
          str(tmp_path / "s.duckdb")], "outside the years crmwatch handles"),
        (["incidents", "--gap", "99999999999h", "--db", str(tmp_path / "s.duckdb")], "years"),
        (["incidents", "--gap", "999999999d", "--db", str(tmp_path / "s.duckdb")], "years"),
    ]:  # fmt: skip
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and said in res.stderr, (args, res.output)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert (tmp_path / "f").read_text() == "keep" and not (tmp_path / "x").exists()
    assert not (tmp_path / "s.duckdb").exists()  # no command above made a store
    Store(tmp_path / "s.duckdb").close()
    res = runner.invoke(app, ["alerts", "export", "--ocsf", str(tmp_path / "f"), "--force",
                              "--db", str(tmp_path / "s.duckdb")])  # fmt: skip
    assert res.exit_code == 0 and json.loads((tmp_path / "f").read_text()) == []


def _setting(tmp_path: Path, name: str) -> tuple[list[str], dict[str, str], str]:
    """Issue 14: each of these printed a traceback. Returns the command, its environment and
    what its one-line error must say."""
    db = str(tmp_path / "s.duckdb")
    log = str(REAL / "okta")
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)))
    config = {"enrich not a table": "enrich = 5\n",
              "network list not text": "[enrich]\nnetwork_lists = [5]\n",
              "binary network list": '[enrich]\nnetwork_lists = ["binary.csv"]\n',
              "unknown key": "[enrich]\ncorporate_cidr = []\n"}  # fmt: skip
    if name in config:
        (tmp_path / "c.toml").write_text(config[name])
        said = {"enrich not a table": "[enrich] must be a table",
                "network list not text": "[enrich] network_lists must be a list of strings",
                "binary network list": "cannot read network list",
                "unknown key": "[enrich] has no key 'corporate_cidr'"}[name]  # fmt: skip
        return ["ingest", log, "--db", db, "--config", str(tmp_path / "c.toml")], {}, said
    if name == "batch bytes not a number":
        return ["ingest", log, "--db", db], {"CRMWATCH_BATCH_BYTES": "abc"}, "CRMWATCH_BATCH_BYTES"
    if name == "another application's database":
        import duckdb

        con = duckdb.connect(db)
        con.execute("CREATE TABLE orders (id INTEGER)")
        con.close()
        return ["stats", "--db", db], {}, "not a crmwatch store"
    (tmp_path / "org.toml").write_text("controller = 5\n")
    (tmp_path / "file").write_text("")
    args = ["notify", "INC-X", "--aware-at", "2025-06-10T00:00:00Z", "--db", db]
    if name == "org controller not a table":
        return [*args, "--org", str(tmp_path / "org.toml")], {}, "controller must be a table"
    return [*args, "--out", str(tmp_path / "file")], {}, "is a file, not a folder"


@pytest.mark.parametrize("name", ["enrich not a table", "network list not text",
                                  "binary network list", "unknown key", "batch bytes not a number",
                                  "another application's database", "org controller not a table",
                                  "notify out is a file"])  # fmt: skip
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, name: str, monkeypatch):
    args, env, said = _setting(tmp_path, name)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert said in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_help_lists_every_command():
    shown = runner.invoke(app, ["--help"]).output
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert len(names) == 20
    for name in names:
        assert re.search(rf"^│ {name} ", shown, re.MULTILINE), name


def test_the_names_the_options_help_lists_are_the_known_ones():
    assert tuple(FORMATS) == cli.FORMAT_NAMES
    assert tuple(SCENARIOS) == cli.SCENARIO_NAMES
    assert cli.ROLE_NAMES == ROLES


# What `crmwatch detect` must not import: the other stages, and with a cached pack the
# YAML-to-SQL converter (pySigma's backend and pipelines).
OTHER_STAGES = ("crmwatch.sources", "crmwatch.ingest", "crmwatch.enrich", "crmwatch.config",
                "crmwatch.incidents", "crmwatch.scope", "crmwatch.notify", "crmwatch.posture",
                "crmwatch.simulate", "crmwatch.evaluate", "crmwatch.console", "pyarrow")  # fmt: skip
CONVERTER = ("crmwatch.detect.backend", "crmwatch.detect.pipeline", "sigma.conversion",
             "sigma.processing.pipeline")  # fmt: skip
# ... nor what loads rules: a cached pack's rules are crmwatch's frozen ones; nor pydantic,
# which typer would import to coerce options (crmwatch.cli_params)
LOADER = ("sigma", "yaml", "pyparsing", "pydantic")


def _imported(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_detect_imports_only_what_it_runs(tmp_path: Path):
    """Start-up (docs/design.md): run in a child, with the test session's pack cache."""
    db, seen = tmp_path / "s.duckdb", tmp_path / "modules.json"
    Store(db).close()
    code = ("import json, sys\nfrom crmwatch.cli import app\n"
            f"try:\n    app(['detect', '--db', {str(db)!r}])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            f"open({str(seen)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n")  # fmt: skip
    modules = []
    for _ in range(2):  # the first run may fill the cache; the second reads it
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        modules.append(json.loads(seen.read_text()))
    assert "crmwatch.detect.runner" in modules[1]
    assert _imported(modules[0], OTHER_STAGES) == []
    assert _imported(modules[1], OTHER_STAGES + CONVERTER + LOADER) == []


def _parameters() -> list[tuple[object, object]]:
    """(command, parameter) for every option and argument of every command."""
    import typer.main

    out, todo = [], [typer.main.get_command(app)]
    while todo:
        command = todo.pop()
        out += [(command, p) for p in command.params]
        todo += list(getattr(command, "commands", {}).values())
    return out


VALUES = ["x", "", "-", " a b ", "x\n", "./rules", "x/", "/nonexistent/x.duckdb", "o'brien;--", "caf\u00e9",
          "\udcff.yml", "12", "yes", "2025-06-10T09:00:00Z"]  # fmt: skip


def _outcome(runtime, value, param, ctx) -> tuple:
    try:
        got = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as e:  # the error, as the user would read it
        return ("error", type(e).__name__, str(e))
    return ("value", type(got).__name__, got if not isinstance(got, list) else tuple(got))


def test_options_coerce_as_typer_does_without_pydantic(tmp_path: Path, monkeypatch):
    """crmwatch.cli_params coerces plain text and paths itself (start-up): every option and
    argument of every command gives the value, or the error, typer's own coercion gives."""
    from typer._click import Context
    from typer._coercion import build_runtime_param

    from crmwatch.cli_params import install

    assert not install(), "installed once, by crmwatch.cli"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("a file")
    (tmp_path / "rules").mkdir()
    checked = plain = 0
    for command, param in _parameters():
        ctx = Context(command)
        ours = type(param).get_runtime_param(param)
        theirs = build_runtime_param(param.type_descriptor)
        multi = param.multiple or param.nargs == -1
        values = [None, (), ("x", "./rules"), ("\udcff",)] if multi else [None, *VALUES]
        for value in values:
            assert _outcome(ours, value, param, ctx) == _outcome(theirs, value, param, ctx), (
                command.name, param.name, value)  # fmt: skip
            checked += 1
        plain += getattr(ours, "kind", None) is not None
    assert checked > 500 and plain > 40


def test_detect_does_not_import_pydantic(tmp_path: Path):
    """Typer would import pydantic to coerce ``--db`` (40-50 ms of every start)."""
    code = ("import sys\nfrom crmwatch.cli import app\n"
            f"try:\n    app(['detect', '--db', {str(tmp_path / 's.duckdb')!r}, '--since', "
            "'2025-06-01', '--rules', sys.argv[1]])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "assert not [m for m in sys.modules if m.startswith('pydantic')]\n")  # fmt: skip
    rules = tmp_path / "rules"
    rules.mkdir()
    Store(tmp_path / "s.duckdb").close()
    subprocess.run([sys.executable, "-c", code, str(rules)], check=True, capture_output=True)


def test_a_reader_that_stops_early_ends_detect_json_quietly(tmp_path: Path):
    """`crmwatch detect --json | head`: the alerts are stored, nothing is said on stderr, and
    the exit status is a SIGPIPE'd process's (the pipe shrunk to a page so that it fills)."""
    import fcntl

    db = str(tmp_path / "s.duckdb")
    runner.invoke(app, ["ingest", str(REAL), "--db", db])
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "all.yml").write_text(
        "title: every event\nid: 0e0e0e0e-0000-4000-8000-0000000000aa\n"
        "logsource: {product: salesforce}\n"
        "detection: {sel: {event_id|exists: true}, condition: sel}\nlevel: low\n"
    )
    read, write = os.pipe()
    fcntl.fcntl(write, 1031, 4096)  # F_SETPIPE_SZ
    child = subprocess.Popen(
        [sys.executable, "-m", "crmwatch", "detect", "--no-builtin", "--rules", str(rules),
         "--db", db, "--json"],
        stdout=write, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(write)
    with os.fdopen(read, "rb") as head:
        assert json.loads(head.readline())["rule_id"] == "0e0e0e0e-0000-4000-8000-0000000000aa"
    _, stderr = child.communicate(timeout=120)
    assert (child.returncode, stderr) == (141, b"")
    with Store(tmp_path / "s.duckdb") as store:
        assert store.scalar("SELECT count(*) FROM alerts") > 10
