"""crmwatch command line: parse options, call one stage, print. No logic lives here.

Each command imports the stages it calls: `crmwatch detect` must not pay for loading the
simulator, the notification drafts and the posture checks (start-up, docs/design.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import os
import secrets
import socket
import sys
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from crmwatch.cli_params import install as install_plain_coercion
from crmwatch.errors import CrmwatchError, UsageError
from crmwatch.schema import LEVELS
from crmwatch.sql import lit
from crmwatch.store import Store, default_db_path
from crmwatch.terminal import clean
from crmwatch.timeutil import json_default, parse_duration, parse_utc

if TYPE_CHECKING:
    from crmwatch.detect.rules import RuleFile
    from crmwatch.detect.runner import RuleRun
    from crmwatch.evaluate import Evaluation
    from crmwatch.incidents import Incident
    from crmwatch.ingest import IngestSummary
    from crmwatch.notify.package import Package
    from crmwatch.notify.regimes import Regime
    from crmwatch.posture import Audit
    from crmwatch.posture.checks import Check
    from crmwatch.scope.results import ScopeResult

# plain text and path options coerced without importing pydantic (40-50 ms; cli_params.py)
install_plain_coercion()

app = typer.Typer(
    help="Catch customer-data theft from SaaS CRMs, and scope it.",
    no_args_is_help=True,
    add_completion=False,
)
# Piped output (CI logs, `make demo | tee`) gets room for the tables; a terminal its own width.
# Piped lines are never wrapped: one quarantined record, one note, one line (grep, wc -l).
out = Console(width=None if sys.stdout.isatty() else 140, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="Store file [env CRMWATCH_DB; default ./crmwatch.duckdb]"),
]


def _store(db: Path | None, create: bool = False) -> Store:
    """The store ``--db`` (or CRMWATCH_DB, or ./crmwatch.duckdb) names. Only commands that
    put data in (ingest, pull, watch, accounts) or may read none (posture) make a new one:
    any other, given a path with no store, would answer from an empty one made on the spot
    (a mistyped ``--db`` showed no quarantined record, exported no alert, and left a file
    behind)."""
    path = db or default_db_path()
    if not create and str(path) != ":memory:" and not Path(path).exists():
        raise UsageError(
            f"no store at {path}: `crmwatch ingest LOGS --db {path}` makes one "
            "(or check --db and CRMWATCH_DB)"
        )
    return Store(path)


ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="crmwatch.toml [env CRMWATCH_CONFIG]")
]


# The names some options' help lists. Typer reads every command's options at every start, and
# the modules that define them import every log reader (and pyarrow), the simulator, argon2:
# spelled here, and tests/test_cli.py holds them to crmwatch.sources.FORMATS,
# crmwatch.simulate.scenarios.SCENARIOS and crmwatch.console.accounts.ROLES.
FORMAT_NAMES = ("elf-csv", "elf-json", "sf-object", "okta", "sf-setup-csv")
SCENARIO_NAMES = (
    "vishing_data_loader",
    "drift_token_theft",
    "okta_mfa_phish",
    "branch_account_compromise",
    "slow_insider",
    "credential_stuffing",
)
ROLE_NAMES = ("admin", "responder", "privacy", "read-only")


def _fail(e: CrmwatchError) -> NoReturn:
    # one line, however long: a wrapped message splits the names it quotes
    err.print(f"[red]error:[/red] {clean(str(e))}", soft_wrap=True)
    raise typer.Exit(2)


def command(group: typer.Typer, name: str) -> Callable:
    """Register a command whose errors print as one line with exit status 2: a
    ``CrmwatchError``, or a path the user gave that cannot be read or written (OSError). Any
    other exception is a bug, and its traceback says where."""

    def register(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except CrmwatchError as e:
                _fail(e)
            except BrokenPipeError:
                # the reader stopped early (`detect --json | head`): what ran is stored, and
                # there is no one to tell; exit as a process SIGPIPE ended would
                with suppress(OSError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(141) from None
            except OSError as e:
                where = f" ({e.filename})" if e.filename else ""
                _fail(UsageError(f"{e.strerror or e}{where}"))
            except (KeyboardInterrupt, duckdb.InterruptException):
                # Ctrl-C: what was committed stays (every stage is all-or-nothing per step)
                err.print("interrupted")
                raise typer.Exit(130) from None

        return group.command(name)(guarded)

    return register


@command(app, "ingest")
def ingest_cmd(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or directories (recursive); .gz is fine")
    ],
    db: DbOption = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help=f"Force a format: {', '.join(FORMAT_NAMES)}")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 if anything was quarantined")
    ] = False,
    config: ConfigOption = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the per-file summary as JSON")
    ] = False,
    rescan: Annotated[
        bool,
        typer.Option(
            "--rescan", help="Read files again even if unchanged since they were ingested"
        ),
    ] = False,
) -> None:
    """Load Salesforce and Okta logs into the event store.

    Files already ingested and unchanged since (same path, size, modification time and
    format) are not read again; --rescan reads them anyway."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from crmwatch.config import Config
    from crmwatch.ingest import expand_paths, ingest

    cfg = Config.load(config)
    total = len(expand_paths(paths)[0])
    with _store(db, create=True) as store:
        if err.is_terminal and not json_out:
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("ingesting", total=total)
                summary = ingest(
                    store,
                    paths,
                    fmt,
                    cfg,
                    lambda f, _: bar.update(task, advance=1, description=clean(f.path.name)),
                    rescan,
                )
        else:
            summary = ingest(store, paths, fmt, cfg, rescan=rescan)
    if json_out:
        print(
            json.dumps(
                {
                    "files": [f.to_dict() for f in summary.files],
                    "seconds": round(summary.seconds, 3),
                },
                indent=2,
                default=json_default,
            )
        )
    else:
        _print_summary(summary, db)
    if summary.errors:
        raise typer.Exit(2)
    if strict and summary.total("quarantined"):
        raise typer.Exit(1)


def _print_summary(summary: IngestSummary, db: Path | None) -> None:
    table = Table(title="ingest", show_lines=False)
    for col in ("file", "format", "records", "new", "duplicate", "quarantined", "headers skipped"):
        table.add_column(col, justify="left" if col in ("file", "format") else "right")
    for f in summary.files:
        if f.unchanged:  # counted in the closing lines; listed in --json
            continue
        q = str(f.quarantined)
        if f.reasons:
            q += " (" + ", ".join(f"{r} {n}" for r, n in sorted(f.reasons.items())) + ")"
        table.add_row(
            clean(f.path.name),
            f.format or "-",
            str(f.records),
            str(f.inserted),
            str(f.duplicates),
            q,
            str(f.skipped_headers),
        )
    if table.row_count:
        out.print(table)
    for f in summary.errors:
        err.print(f"[red]error:[/red] {clean(f.error or '')}")
    for f in summary.files:
        for note in f.notes:
            err.print(f"[yellow]note:[/yellow] {clean(f.path)}: {clean(note)}")
        if f.id_collisions:
            err.print(
                f"[yellow]note:[/yellow] {clean(f.path)}: {f.id_collisions} records repeat the "
                "native id of another with other content: kept, as separate events"
            )
    out.print(
        f"{len(summary.files)} files, {summary.total('records')} records: "
        f"{summary.total('inserted')} new, {summary.total('duplicates')} duplicate, "
        f"{summary.total('quarantined')} quarantined in {summary.seconds:.2f}s"
    )
    if unchanged := summary.total("unchanged"):
        out.print(
            f"{unchanged} files unchanged since ingested, not read and not listed "
            "(--json lists them, --rescan reads them)"
        )
    if summary.total("quarantined"):
        import shlex

        store = f" --db {shlex.quote(str(db))}" if db else ""  # the command as it must be typed
        out.print(f"see them with: crmwatch quarantine{clean(store)}")


@command(app, "stats")
def stats_cmd(
    db: DbOption = None, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Counts by source type, category and day; quarantine by reason."""
    from crmwatch.stats import store_stats

    with _store(db) as store:
        s = store_stats(store)
    if json_out:
        print(json.dumps(s, indent=2, default=json_default))
        return
    out.print(f"{s['events']} events from {s['files']} files, {s['first_ts']} → {s['last_ts']}")
    if s["id_collisions"]:
        out.print(f"[yellow]{s['id_collisions']} events repeat another's native id with other "
                  "content (kept)[/yellow]")  # fmt: skip
    for key, label in (
        ("by_source_type", "source_type"),
        ("by_category", "category"),
        ("by_ip_class", "ip_class"),
        ("by_day", "day"),
    ):
        t = Table(title=label)
        t.add_column(label)
        t.add_column("events", justify="right")
        for row in s[key]:
            t.add_row(clean(str(row[label])), str(row["events"]))
        out.print(t)
    t = Table(title=f"quarantine ({s['quarantined']})")
    t.add_column("reason")
    t.add_column("records", justify="right")
    for row in s["quarantine_by_reason"]:
        t.add_row(row["reason"], str(row["records"]))
    out.print(t)
    out.print(
        f"geoip: {s['enrichment']['geoip_database']}; networks: {s['enrichment']['network_lists']}"
    )


@command(app, "quarantine")
def quarantine_cmd(
    db: DbOption = None, limit: int = 50, json_out: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List quarantined records: file, line or byte offset, reason. Never prints their content."""
    with _store(db) as store:
        rows = store.execute(
            "SELECT path, line, byte_offset, reason, detail FROM quarantine "
            "ORDER BY path, line NULLS FIRST, byte_offset LIMIT ?",
            [limit],
        ).dicts()
    if json_out:
        print(json.dumps(rows, indent=2, default=json_default))
        return
    for r in rows:
        where = f":{r['line']}" if r["line"] is not None else f"@byte {r['byte_offset']}"
        out.print(f"{clean(r['path'])}{where}: {r['reason']}: {clean(r['detail'] or '')}")


@command(app, "enrich")
def enrich_cmd(db: DbOption = None, config: ConfigOption = None) -> None:
    """Reclassify every IP and user agent with the current lists and corporate ranges."""
    from crmwatch.config import Config
    from crmwatch.enrich import refresh

    with _store(db) as store:
        counts = refresh(store, Config.load(config).enrich)
    out.print(
        f"reclassified {counts['enrich_ips']} IPs and {counts['enrich_user_agents']} user agents"
    )


rules_app = typer.Typer(help="The rule pack and your own rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")
RulesOption = Annotated[
    list[Path] | None, typer.Option("--rules", help="Extra rule files or folders (Sigma YAML)")
]
NoBuiltinOption = Annotated[
    bool,
    typer.Option("--no-builtin", help="Leave out the built-in pack: only the --rules given"),
]


def _rule_files(rules: list[Path] | None, no_builtin: bool) -> list[RuleFile]:
    """The pack (unless left out) and the user's rules; loading errors collected per file.
    Through the compiled-pack cache: an unchanged pack is not parsed and compiled again."""
    from crmwatch.detect.rules import load_rules

    if no_builtin and not rules:
        raise UsageError("--no-builtin leaves no rule: give --rules FILE_OR_DIR")
    return load_rules(rules, builtin=not no_builtin, collect_errors=True, cached=True)


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        when = parse_utc(value)
    except ValueError as e:
        raise UsageError(f"not an ISO time: {value!r} ({e})") from e
    if not 1900 <= when.year <= 2999:
        raise UsageError(f"{value} is outside the years crmwatch handles (1900 to 2999)")
    return when


def _time_range(since: str | None, until: str | None) -> tuple[dt.datetime | None, ...]:
    """``--since`` and ``--until`` as UTC times; an empty range is a usage error, not a run
    that silently finds nothing."""
    start, end = _parse_time(since), _parse_time(until)
    if start and end and start >= end:
        raise UsageError(f"--since {since} is not before --until {until}")
    return start, end


@command(app, "detect")
def detect_cmd(
    db: DbOption = None,
    rules: RulesOption = None,
    no_builtin: NoBuiltinOption = False,
    since: Annotated[str | None, typer.Option(help="Only events at or after (ISO, UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="Only events before (ISO, UTC)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One alert per line as JSON")] = False,
) -> None:
    """Run the built-in rule pack and your rules; store and print the alerts.

    A rule that cannot be loaded or run is reported (exit 1) and the others still run."""
    from crmwatch.detect.runner import detect, iter_alerts

    rule_files = _rule_files(rules, no_builtin)
    window = _time_range(since, until)  # checked before the store is looked for
    with _store(db) as store:
        runs = detect(store, rule_files, *window)
        if json_out:
            for a in iter_alerts(store, "run_alerts"):
                print(json.dumps(a.to_dict(), default=json_default))
        else:
            _print_alert_summary(store, runs)
    failed = [r for r in runs if r.error]
    for r in failed:
        err.print(f"[red]rule failed:[/red] {clean(r.file.path.name)}: {clean(r.title)}: "
                  f"{clean(r.error or '')}", soft_wrap=True)  # fmt: skip
    if failed:
        raise typer.Exit(1)


SHOWN_ALERTS = 20


def _print_alert_summary(store: Store, runs: list[RuleRun]) -> None:
    """Counts per rule, then the most severe alerts: a terminal cannot show 100k lines."""
    rank = {lvl: i for i, lvl in enumerate(reversed(LEVELS))}
    # A rule's `levels:` raise some of its alerts above its own level: each level it raised.
    raised: dict[str, dict[str, int]] = {}
    for rule_id, level, n in store.execute(
        "SELECT rule_id, level, count(*) FROM run_alerts GROUP BY ALL"
    ).rows:
        raised.setdefault(rule_id, {})[level] = n

    def levels(r: RuleRun) -> list[tuple[str, int]]:
        """The levels a rule's alerts have, most severe first, with their counts."""
        got = raised.get(r.detection.rule_id if r.detection else "", {}) or {r.level: r.alerts}
        return sorted(got.items(), key=lambda x: rank.get(x[0], 9))

    table = Table("level", "rule", "alerts")
    fired = sorted(
        ((r, levels(r)) for r in runs if r.alerts), key=lambda x: rank.get(x[1][0][0], 9)
    )
    for r, shown in fired:
        label = shown[0][0] if len(shown) == 1 else ", ".join(f"{lvl} {n}" for lvl, n in shown)
        table.add_row(label, clean(r.title), str(r.alerts))
    if fired:
        out.print(table)
    order = "CASE level " + " ".join(f"WHEN {lit(lvl)} THEN {i}" for lvl, i in rank.items())
    top = store.execute(
        f"SELECT level, first_ts, principal, title, len(event_ids) AS n FROM run_alerts "
        f"ORDER BY {order} ELSE 9 END, first_ts, alert_id LIMIT {SHOWN_ALERTS}"
    ).dicts()
    for a in top:
        out.print(
            f"[bold]{a['level']}[/bold] {a['first_ts']:%Y-%m-%d %H:%M:%S} "
            f"{clean(a['principal'] or '-')}: {clean(a['title'])} ({a['n']} events)"
        )
    total = sum(r.alerts for r in runs)
    if total > len(top):
        out.print(f"… {total - len(top)} more: crmwatch detect --json, or the alerts table")
    ran = len([r for r in runs if not r.error])
    out.print(f"{total} alerts from {len(fired)} of the {ran} rules run")


@command(rules_app, "list")
def rules_list_cmd(rules: RulesOption = None, no_builtin: NoBuiltinOption = False) -> None:
    """Every rule: id, level, kind (match, new_terms, volume, correlation type), title, tests,
    and the rules that cannot be loaded or compiled (exit 1 if any)."""
    files = _rule_files(rules, no_builtin)
    for rf in files:
        if rf.errors:
            out.print(f"[red]{clean(rf.path.name)}: {clean(rf.errors[0])}[/red]")
            continue
        for d in rf.detections:
            out.print(f"{clean(d.rule_id)}  {d.level:8}  {d.kind:16}  {clean(d.title)}  "
                      f"({len(rf.tests)} tests)")  # fmt: skip
    if any(rf.errors for rf in files):
        raise typer.Exit(1)


@command(rules_app, "stats")
def rules_stats_cmd(
    db: DbOption = None,
    sim: Annotated[
        Path | None,
        typer.Option("--sim", help="A simulated org's folder: count the false incidents too"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Per rule: findings in the store, incidents they opened, and with --sim how many of
    those were false on the simulated org."""
    from crmwatch.evaluate import false_positives, load_truth, rule_scores

    with _store(db) as store:
        if sim is not None:
            rows = false_positives(store, load_truth(sim)).rules
        else:
            rows = rule_scores(store)
    if json_out:
        print(json.dumps([{**dataclasses.asdict(r), "share_false": r.share_false}
                          for r in rows], indent=2))  # fmt: skip
        return
    table = Table("rule", "level", "findings", "incidents opened",
                  *(("false", "share false") if sim is not None else ()))  # fmt: skip
    for r in rows:
        extra = ()
        if sim is not None:
            share = "-" if r.share_false is None else f"{r.share_false:.0%}"
            extra = (str(r.false_incidents), share)
        table.add_row(clean(r.title), r.level, f"{r.findings:,}", str(r.incidents_opened), *extra)
    out.print(table)


@command(rules_app, "test")
def rules_test_cmd(rules: RulesOption = None, no_builtin: NoBuiltinOption = False) -> None:
    """Run every rule's inline tests; exit 1 if any fails or a rule cannot be loaded."""
    from crmwatch.detect.testing import run_tests

    files = _rule_files(rules, no_builtin)
    results = run_tests([rf for rf in files if not rf.errors])
    broken = [rf for rf in files if rf.errors]
    for rf in broken:
        out.print(f"[red]CANNOT LOAD[/red] {clean(rf.path.name)}: {clean(rf.errors[0])}")
    failed = [r for r in results if not r.passed]
    for r in failed:
        want = "match" if r.test.expected else "no match"
        out.print(
            f"[red]FAIL[/red] {clean(r.rule.path.name)}: {clean(r.test.name)} "
            f"(expected {want}, got {r.alerts} alerts)"
        )
    out.print(f"{len(results) - len(failed)} passed, {len(failed)} failed"
              + (f", {len(broken)} rule files cannot be loaded" if broken else ""))  # fmt: skip
    if failed or broken:
        raise typer.Exit(1)


alerts_app = typer.Typer(help="Stored alerts.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@command(alerts_app, "export")
def alerts_export_cmd(
    ocsf: Annotated[Path, typer.Option("--ocsf", help="Write OCSF Detection Findings (JSON)")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
    db: DbOption = None,
) -> None:
    """Export stored alerts as OCSF Detection Finding (class 2004) JSON."""
    import os
    import textwrap

    from crmwatch.detect.ocsf import to_ocsf
    from crmwatch.detect.runner import iter_alerts

    if ocsf.is_dir():
        raise UsageError(f"{ocsf} is a directory; name a file")
    if ocsf.exists() and not force:
        raise UsageError(f"{ocsf} exists; add --force to overwrite it")
    if not ocsf.parent.is_dir():
        raise UsageError(f"{ocsf.parent}: No such file or directory")
    # One JSON array, as json.dumps(findings, indent=2) writes it, written a finding at a
    # time; the file appears whole or not at all.
    part = ocsf.with_name(f".{ocsf.name}.part")
    n = 0
    try:
        with _store(db) as store, part.open("w", encoding="utf-8") as f:
            for a in iter_alerts(store):
                f.write(",\n" if n else "[\n")
                f.write(textwrap.indent(json.dumps(to_ocsf(a), indent=2), "  "))
                n += 1
            f.write("\n]" if n else "[]")
        os.replace(part, ocsf)
    except OSError as e:  # the user named the file, not its part
        raise UsageError(f"{ocsf}: cannot write there: {e.strerror or e}") from e
    finally:
        part.unlink(missing_ok=True)
    out.print(f"wrote {n} findings to {clean(str(ocsf))}")


@command(alerts_app, "deliver")
def alerts_deliver_cmd(db: DbOption = None, config: ConfigOption = None) -> None:
    """Deliver each stored incident to the channels of crmwatch.toml's alerts table — once when it
    opens, again when its severity rises — and log every delivery in the store."""
    from crmwatch.config import Config
    from crmwatch.respond.deliver import deliver

    settings = Config.load(config).alerts
    if not settings.channels:
        raise UsageError("no channel in [alerts] (webhook, email, syslog, ocsf): docs/alerts.md")
    with _store(db) as store:
        done = deliver(store, settings)
    for d in done:
        mark = "[green]delivered[/green]" if d.status == "delivered" else "[red]failed[/red]"
        out.print(
            f"{d.incident_id} {d.severity} {d.activity} → {clean(d.channel)}: {mark} "
            f"({d.attempts} attempts; {clean(d.detail)})",
            soft_wrap=True,
        )
    failed = sum(d.status != "delivered" for d in done)
    out.print(f"{len(done) - failed} delivered, {failed} failed (due again next run)")
    if failed:
        raise typer.Exit(1)


def _parse_duration(value: str) -> dt.timedelta:
    """``30m``, ``24h``, ``7d``: parsed as a Sigma timespan, like the rules' own windows."""
    try:
        return parse_duration(value)
    except ValueError as e:
        raise UsageError(str(e)) from e


@command(app, "incidents")
def incidents_cmd(
    db: DbOption = None,
    config: ConfigOption = None,
    gap: Annotated[
        str | None,
        typer.Option(help="Findings further apart than this never join (30m, 24h, 7d) [24h]"),
    ] = None,
    open_level: Annotated[
        str | None,
        typer.Option(help="A finding at or above this level opens an incident by itself [high]"),
    ] = None,
    threshold: Annotated[
        int | None,
        typer.Option(help="Risk of linked findings within 24 h that opens an incident [60]"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON array")] = False,
) -> None:
    """Turn the stored findings into incidents (rebuilt from all of them) and list them.

    Settings come from crmwatch.toml's incidents table; the options override it."""
    from crmwatch.config import Config
    from crmwatch.incidents import build_incidents

    cfg = Config.load(config).incidents
    if threshold is not None and threshold < 1:
        raise UsageError("--threshold must be 1 or more")
    cfg = dataclasses.replace(
        cfg,
        **{k: v for k, v in (("gap", gap and _parse_duration(gap)),
                              ("open_level", open_level), ("risk_threshold", threshold))
           if v is not None},
    )  # fmt: skip
    with _store(db) as store:
        incidents = build_incidents(store, cfg)
    if json_out:
        print(json.dumps([i.to_dict() for i in incidents], indent=2, default=json_default))
        return
    _print_incidents(incidents, db)


def _opened(why: dict) -> str:
    """What opened an incident, in a few words."""
    if why.get("by") == "finding":
        return f"{why['level']} finding"
    if why.get("by") == "risk":
        return f"risk {why['score']} ≥ {why['threshold']} ({len(why['findings'])} findings)"
    return "-"


def _print_incidents(incidents: list[Incident], db: Path | None) -> None:
    table = Table("id", "severity", "who", "first malicious", "detect delay", "objects",
                  "opened by", "rules")  # fmt: skip
    for i in incidents:
        objects = ", ".join(
            f"{o['object']} ({o['rows'] if o['rows'] is not None else '?'} rows)"
            for o in i.objects[:3]
        )
        table.add_row(
            clean(i.id), i.severity, clean(", ".join(i.principals or i.user_ids)[:60]),
            i.first_malicious_at[:19], _delay(i.time_to_detect_seconds), clean(objects),
            _opened(i.opened_by), str(len(i.rules)),
        )  # fmt: skip
    out.print(table)
    where = f" --db {clean(str(db))}" if db else ""
    out.print(f"{len(incidents)} incidents; details: crmwatch incident show ID{where}")


def _delay(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


incident_app = typer.Typer(help="One incident.", no_args_is_help=True)
app.add_typer(incident_app, name="incident")


@command(incident_app, "show")
def incident_show_cmd(
    incident_id: Annotated[str, typer.Argument(help="Incident id, e.g. INC-1A2B3C4D5E")],
    db: DbOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Incident and timeline as JSON")] = False,
) -> None:
    """An incident's facts and its timeline, from the first malicious event to the last."""
    from crmwatch.incidents import get_incident, timeline
    from crmwatch.posture.results import on_path

    with _store(db) as store:
        incident = get_incident(store, incident_id)
        entries = timeline(store, incident)
        gaps = on_path(store, incident)
    if json_out:
        body = {**incident.to_dict(), "timeline": [e.__dict__ for e in entries],
                "posture_on_path": gaps}  # fmt: skip
        print(json.dumps(body, indent=2, default=json_default))
        return
    i = incident
    out.rule(f"{i.id}  {i.severity}")
    for label, value in (
        ("who", ", ".join(i.principals or i.user_ids)),
        ("source IPs", ", ".join(i.source_ips)),
        ("apps", ", ".join(i.apps)),
        ("tactics", ", ".join(i.tactics)),
        # Times to the second here (the timeline's grain); --json keeps their full precision.
        ("first malicious",
         f"{i.first_malicious_at[:19]} ({i.first_malicious_event['source_type']})"),
        ("first alert", f"{i.first_alert_at[:19]} ({_delay(i.time_to_detect_seconds)} later)"),
        ("recorded", (i.detected_at or "-")[:19]),
        ("last event", i.last_event_at[:19]),
        ("objects", ", ".join(
            f"{o['object']}: {o['events']} events, "
            f"{o['rows'] if o['rows'] is not None else '?'} rows" for o in i.objects)),
        ("opened by", _opened(i.opened_by)),
    ):  # fmt: skip
        out.print(f"[bold]{label:>16}[/bold]  {clean(value or '-')}")
    why = i.opened_by or {}
    for f in why.get("findings", []) if why.get("by") == "risk" else [why]:
        if f.get("title"):
            risk = f" +{f['risk']}" if "risk" in f else ""
            out.print(f"{'':>18}{f['level']}{risk}: {clean(f['title'])}")
    _print_gaps(gaps)
    out.rule("timeline")
    for e in entries:
        # to a time the same day, else to the date and time
        end = e.last_ts[11:19] if e.last_ts[:10] == e.ts[:10] else e.last_ts[:19]
        times = f" ×{e.count} (to {end})" if e.count > 1 else ""
        style = "red" if e.kind == "alert" else ""
        line = f"{e.ts[:19]}  {e.role:<11} {clean(e.text)}{times}"
        out.print(f"[{style}]{line}[/{style}]" if style else line)


@command(app, "scope")
def scope_cmd(
    incident_id: Annotated[str, typer.Argument(help="Incident id (see crmwatch incidents)")],
    customers: Annotated[
        list[Path],
        typer.Option(
            "--customers",
            help="Snapshot: CSV or Parquet per object (Contact.csv, …) or a folder of them",
        ),
    ],
    obj: Annotated[
        str | None, typer.Option("--object", help="Object of a file not named after it")
    ] = None,
    db: DbOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Which customers and fields an incident exposed: replays its queries on a snapshot."""
    from crmwatch.scope.exposure import scope_incident

    with _store(db) as store:
        result = scope_incident(store, incident_id, customers, obj)
    if json_out:
        _print_scope_json(result)
        return
    _print_scope(result)


def _print_scope_json(r: ScopeResult) -> None:
    """``json.dumps(r.to_dict(), indent=2)``, its events written one by one: an incident's
    millions of verdicts are never one list of dicts."""
    from crmwatch.scope.results import Verdicts

    text = json.dumps(dataclasses.replace(r, events=Verdicts.none()).to_dict(), indent=2,
                      default=json_default)  # fmt: skip
    head, tail = text.split('"events": []', 1)  # the key: any such text inside a value is escaped
    sys.stdout.write(head + '"events": [')
    for n, e in enumerate(r.events.dicts()):
        # indented as the list's items (JSON text has no empty line to skip)
        item = json.dumps(e, indent=2, default=json_default).replace("\n", "\n    ")
        sys.stdout.write(("," if n else "") + "\n    " + item)
    sys.stdout.write(("\n  ]" if len(r.events) else "]") + tail + "\n")


def _print_scope(r: ScopeResult) -> None:
    out.rule(f"scope of {r.incident_id}")
    conf = ", ".join(f"{n:,} {k}" for k, n in r.affected_by_confidence.items() if n)
    out.print(f"[bold]{r.affected_customers:,}[/bold] affected customers listed ({conf or 'none'})")
    if r.bounded_upper_bound:
        out.print(
            f"[yellow]plus up to {r.bounded_upper_bound:,} records that cannot be listed "
            "(see bounded events below)[/yellow]"
        )
    if r.unbounded_events:
        out.print(
            f"[yellow]and records of {len(r.unbounded_events)} events whose number neither the "
            "log nor the snapshot gives (bounded events with no bound below)[/yellow]"
        )
    out.print(f"exposed {r.first_exposure_at or '-'} … {r.last_exposure_at or '-'}")
    for title, counts in (("by country", r.by_country), ("by US state", r.by_us_state),
                          ("by data category", r.by_category)):  # fmt: skip
        if counts:
            out.print(f"{title}: " + ", ".join(f"{clean(k)} {v:,}" for k, v in counts.items()))
    out.print("fields: " + clean(", ".join(r.fields)))
    table = Table("time", "event", "object", "evidence", "records", "logged rows", "note")
    for e in r.events[:SCOPE_EVENTS_SHOWN]:
        records = (
            str(e.records) + (f" + ≤ {e.upper_bound}" if e.upper_bound else "")
            if e.kind in ("exact", "replayed", "candidate")
            else (f"≤ {e.upper_bound}" if e.upper_bound is not None else "-")
        )
        logged = "-" if e.rows_logged is None else str(e.rows_logged)
        table.add_row(
            e.ts[:19],
            clean(e.source_type),
            clean(e.object or "?"),
            e.kind,
            records,
            logged,
            clean(e.note),
        )
    out.print(table)
    if len(r.events) > SCOPE_EVENTS_SHOWN:
        rest = r.events.kinds(SCOPE_EVENTS_SHOWN)
        kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(rest.items(), key=lambda x: -x[1]))
        out.print(f"… {len(r.events) - SCOPE_EVENTS_SHOWN:,} more events ({kinds}): "
                  "crmwatch scope --json, or the exposures table")  # fmt: skip


# A scraper's incident is thousands of one-record queries: the table shows the first ones.
SCOPE_EVENTS_SHOWN = 50


@command(app, "notify")
def notify_cmd(
    incident_id: Annotated[
        str, typer.Argument(help="A scoped incident's id; or `check` to run the rule cases")
    ],
    aware_at: Annotated[
        str | None,
        typer.Option("--aware-at", help="When the company became aware (ISO; offset or Z)"),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Package folder")] = Path("notify-out"),
    org: Annotated[
        Path | None, typer.Option("--org", help="Org file (TOML/YAML): controller, contact")
    ] = None,
    regimes_dir: Annotated[
        Path | None,
        typer.Option("--regimes", help="Folder of jurisdiction files (default: the built-in)"),
    ] = None,
    db: DbOption = None,
) -> None:
    """Per-jurisdiction obligations and deadlines, regulator drafts, customer letters (HTML,
    PDF), mailing list and transparency check for a scoped incident. `crmwatch notify check`
    runs the cases every jurisdiction file carries and exits 1 if one fails."""
    from crmwatch.notify.org import load_org
    from crmwatch.notify.package import notify
    from crmwatch.notify.regimes import load_regimes

    regimes = load_regimes(regimes_dir)
    if incident_id.lower() == "check":
        _check_regimes(regimes)
        return
    if aware_at is None:
        raise UsageError("--aware-at is needed: when the company became aware of the breach")
    organisation, aware = load_org(org), _parse_time(aware_at)  # checked before any work
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file, not a folder")
    with _store(db) as store:
        pkg = notify(
            store, incident_id, aware, out_dir / incident_id.upper(), organisation,
            regimes=regimes,
        )  # fmt: skip
    _print_package(pkg)


def _check_regimes(regimes: list[Regime]) -> None:
    from crmwatch.notify.cases import run_cases

    results = run_cases(regimes)
    failed = [r for r in results if not r.passed]
    for r in failed:
        for problem in r.problems:
            out.print(f"[red]FAIL[/red] {clean(r.regime)}: {clean(r.name)}: {clean(problem)}")
    bare = [r.id for r in regimes if not r.cases]
    out.print(
        f"{len(results) - len(failed)} cases passed, {len(failed)} failed, "
        f"{len(regimes)} jurisdiction files"
        + (f"; without cases: {', '.join(bare)}" if bare else "")
    )
    if failed or bare:
        raise typer.Exit(1)


def _print_package(pkg: Package) -> None:
    table = Table("regime", "to", "affected", "deadline (UTC)", "left", "status")
    for o in pkg.obligations:
        hours = o.time_left_hours
        left = "-" if hours is None else f"{hours:.0f} h" if hours >= 0 else "overdue"
        table.add_row(clean(o.regime_name), clean(o.recipient), f"{o.affected:,}",
                      o.deadline_utc or clean(o.deadline_text[:40]), left, o.status)  # fmt: skip
    out.print(table)
    for a in pkg.assumptions:
        out.print(f"[yellow]assumed:[/yellow] {clean(a)}")
    absent = [k for k, v in pkg.transparency.items() if not v["present"]]
    out.print(
        f"{len(pkg.drafts)} regulator drafts, {len(pkg.letters)} letter files, "
        f"{pkg.mailing_rows:,} mailing-list rows → {clean(str(pkg.out))}"
        + (f"; transparency gaps: {', '.join(absent)}" if absent else "; transparency: complete")
    )


@command(app, "posture")
def posture_cmd(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Metadata retrieve folder(s), User/PermissionSetAssignment/"
            "OauthToken/LoginHistory exports, Okta policy JSON; or `check`"
        ),
    ],
    json_out: Annotated[bool, typer.Option("--json", help="Print the audit as JSON")] = False,
    ocsf: Annotated[
        Path | None, typer.Option("--ocsf", help="Write OCSF Compliance Findings (JSONL)")
    ] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report")] = None,
    checks_dir: Annotated[
        list[Path] | None, typer.Option("--checks", help="Extra check files or folders")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Judge ages (days since login) at this time [default: "
            "the newest time in the exports]",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Audit the org's configuration against the controls that would have stopped the 2025
    thefts (MFA, IP restriction, access control, monitoring); kept in the store, so incidents
    show the gaps on their path and the next audit shows drift. `crmwatch posture check` runs
    the cases every check carries and exits 1 if one fails."""
    from crmwatch.posture import posture
    from crmwatch.posture.checks import load_checks
    from crmwatch.posture.report import to_html
    from crmwatch.posture.report import to_ocsf as posture_ocsf
    from crmwatch.posture.results import summary

    checks = load_checks(checks_dir)
    if str(sources[0]) == "check" and not Path("check").exists():
        if len(sources) > 1:
            raise UsageError("`crmwatch posture check` takes no inputs: it runs the checks' "
                             "own cases (add --checks DIR for yours)")  # fmt: skip
        _check_checks(checks)
        return
    when = _parse_time(as_of)
    for target in (ocsf, html):
        if target is not None and target.is_dir():
            raise UsageError(f"{target} is a folder; give a file to write")
    with _store(db, create=True) as store:  # the org's own files may be all it reads
        audit = posture(store, sources, checks, when)
    for target, text in (
        (ocsf, lambda: "".join(json.dumps(r, default=json_default) + "\n"
                               for r in posture_ocsf(audit, checks))),
        (html, lambda: to_html(audit, checks)),
    ):  # fmt: skip
        if target is not None:
            try:
                target.write_text(text(), encoding="utf-8")
            except OSError as e:
                raise UsageError(f"cannot write {target}: {e.strerror or e}") from e
    if json_out:
        body = {**summary(audit),
                "outcomes": [dataclasses.asdict(o) for o in audit.outcomes],
                "findings": [dataclasses.asdict(f) for f in audit.findings]}  # fmt: skip
        print(json.dumps(body, indent=2, default=json_default))
        return
    _print_posture(audit)
    for target, what in ((ocsf, "OCSF"), (html, "HTML")):
        if target is not None:
            out.print(f"{what}: {clean(str(target))}")


def _print_gaps(gaps: list[dict]) -> None:
    """Posture findings on an incident's path: what let the attacker through."""
    if not gaps:
        return
    out.print(f"[bold]{'posture gaps':>16}[/bold]  (newest `crmwatch posture` audit)")
    for g in gaps:
        out.print(f"{'':>18}{g['severity']}: {clean(g['title'])} — {clean(g['on_path_because'])}")


def _check_checks(checks: list[Check]) -> None:
    from crmwatch.posture.checks import run_cases as run_check_cases

    results = run_check_cases(checks)
    failed = [r for r in results if not r.passed]
    for r in failed:
        for problem in r.problems:
            out.print(f"[red]FAIL[/red] {clean(r.check)}: {clean(r.name)}: {clean(problem)}")
    out.print(f"{len(results) - len(failed)} cases passed, {len(failed)} failed, "
              f"{len(checks)} checks")  # fmt: skip
    if failed:
        raise typer.Exit(1)


def _print_posture(audit: Audit) -> None:
    from crmwatch.posture.results import summary

    order = {level: i for i, level in enumerate(reversed(LEVELS))}
    ordered = sorted(audit.findings, key=lambda f: (order[f.severity], f.check_id))
    for title, rows in (("findings", [f for f in ordered if f.drift is None]),
                        ("changes since the previous audit",
                         [f for f in ordered if f.drift is not None])):  # fmt: skip
        if not rows:
            continue
        table = Table("severity", "check", "subjects", "examples", "controls", title=title)
        for f in rows:
            names = [clean(s["name"]) for s in f.subjects[:3]]
            more = f" +{len(f.subjects) - 3}" if len(f.subjects) > 3 else ""
            table.add_row(f.severity, clean(f.title), f"{len(f.subjects):,}",
                          "\n".join(names) + more, ", ".join(f.controls))  # fmt: skip
        out.print(table)
    status = summary(audit)["checks"]
    out.print(
        f"{audit.audit_id}: {len(audit.files)} files read; checks: {status.get('fail', 0)} "
        f"with a finding, {status.get('pass', 0)} without, {status.get('not_assessed', 0)} "
        "not assessed"
        + (f"; {audit.model.skipped:,} other files skipped" if audit.model.skipped else "")
    )
    for o in audit.outcomes:
        if o.status == "not_assessed":
            out.print(f"[yellow]not assessed:[/yellow] {clean(o.title)}: {clean(o.why_not or '')}")
    for p in audit.problems:
        out.print(f"[yellow]input problem:[/yellow] {clean(str(p))}")


@command(app, "simulate")
def simulate_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write (created)")],
    customers: Annotated[int, typer.Option(help="Customers in the snapshot")] = 100_000,
    employees: Annotated[int, typer.Option(help="Staff with CRM accounts")] = 200,
    days: Annotated[int, typer.Option(help="Days of activity")] = 14,
    scenario: Annotated[
        list[str] | None,
        typer.Option(
            "--scenario",
            help=f"Attack to include (repeat); default all: {', '.join(SCENARIO_NAMES)}",
        ),
    ] = None,
    benign_only: Annotated[bool, typer.Option(help="No attack at all")] = False,
    seed: Annotated[int, typer.Option(help="Same seed, same files")] = 7,
    noise: Annotated[
        str,
        typer.Option(
            help="realistic: a real company's noise (NAT pools, carriers, trips, …); "
            "clean: regular traffic"
        ),
    ] = "realistic",
    start: Annotated[
        str | None, typer.Option(help="First day, YYYY-MM-DD [2025-06-02, a Monday]")
    ] = None,
) -> None:
    """Write a simulated retailer's CRM logs (real formats), customer snapshot and ground truth."""
    from crmwatch.simulate.org import simulate

    first = None
    if start is not None:
        try:
            first = dt.date.fromisoformat(start)
        except ValueError as e:
            raise UsageError(f"--start must be a date like 2025-06-02: {start!r}") from e
    sim = simulate(out_dir, customers, employees, days, [] if benign_only else scenario,
                   seed, noise=noise, start=first)  # fmt: skip
    out.print(
        f"wrote {sim.files} files, {sim.events:,} log records, {sim.customers:,} customers, "
        f"{sim.employees} staff over {sim.days} days ({noise} noise), scenarios: "
        f"{', '.join(sim.scenarios) or 'none'} → {clean(str(out_dir))}"
    )


@command(app, "eval")
def eval_cmd(
    directory: Annotated[Path, typer.Argument(help="A `crmwatch simulate` output folder")],
    rules: RulesOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON")] = False,
) -> None:
    """Run ingest → detect → incidents → scope on a simulated org and score it against the
    ground truth (store: DIR/crmwatch.duckdb, rebuilt)."""
    from crmwatch.evaluate import evaluate

    ev = evaluate(directory, rules=rules)
    if json_out:
        print(json.dumps(ev.to_dict(), indent=2, default=json_default))
    else:
        _print_evaluation(ev)
    if not all(ev.targets_met.values()):
        raise typer.Exit(1)


def _print_evaluation(ev: Evaluation) -> None:
    table = Table("scenario", "incidents", "first malicious", "time to detect",
                  "vs 1st exfiltration", "customers", "precision", "recall",
                  "fields P/R")  # fmt: skip

    def secs(x: float | None) -> str:
        if x is None:
            return "-"
        sign = "-" if x < 0 else ""
        return f"{sign}{_delay(abs(x))}"

    def pr(p: float | None, r: float | None) -> str:
        return "-" if p is None else f"{p:.3f}/{r:.3f}" if r is not None else f"{p:.3f}"

    for s in ev.scenarios:
        n = len(s.incidents)
        err = s.first_malicious_error_s
        table.add_row(
            s.name, str(n) if n == 1 else f"[red]{n}[/red]",
            "-" if err is None else f"{err:+.0f}s" if abs(err) <= 60 else f"[red]{err:+.0f}s[/red]",
            secs(s.time_to_detect_s),
            secs(s.after_first_exfiltration_s), f"{s.listed_customers:,}/{s.expected_customers:,}",
            "-" if s.precision is None else f"{s.precision:.3f}",
            "-" if s.recall is None else f"{s.recall:.3f}", pr(s.field_precision, s.field_recall),
        )  # fmt: skip
    out.print(table)
    out.print(
        f"{ev.incidents} incidents, {ev.false_positive_incidents} false positive "
        f"({ev.fp_per_1000_user_days} per 1,000 user-days over {ev.user_days:,} user-days; "
        f"{ev.false_high_or_critical} high or critical)"
    )
    if ev.false_positives:
        fps = Table("false positive", "severity", "who", "opened by", "noise that day")
        for f in ev.false_positives:
            fps.add_row(
                f["id"],
                f["severity"],
                clean(", ".join(f["people"])[:40]),
                clean("; ".join(f["opened_by"])[:70]),
                clean(", ".join(f["noise"])),
            )
        out.print(fps)
    for target, met in ev.targets_met.items():
        out.print(f"  {'[green]met[/green]' if met else '[red]missed[/red]'}  {target}")


@command(app, "pull")
def pull_cmd(
    connector: Annotated[str, typer.Argument(help="okta or salesforce")],
    since: Annotated[
        str | None,
        typer.Option(help="Start here (ISO, UTC) instead of where the last pull stopped"),
    ] = None,
    spool: Annotated[
        Path | None,
        typer.Option(help="Where fetched pages are kept as files [beside the store: NAME.pull/]"),
    ] = None,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Fetch new logs from the Okta or Salesforce API (the connectors table of crmwatch.toml) into
    the store, through the same ingest as files. Resumes where the last pull stopped."""
    from crmwatch.config import Config
    from crmwatch.connectors.okta import pull_okta
    from crmwatch.connectors.salesforce import pull_salesforce

    cfg = Config.load(config)
    start = _parse_time(since)
    settings = {"okta": cfg.connectors.okta, "salesforce": cfg.connectors.salesforce}
    if connector not in settings:
        raise UsageError(f"unknown connector {connector!r}; okta or salesforce")
    if settings[connector] is None:
        raise UsageError(f"no [connectors.{connector}] in the configuration (docs/connectors.md)")
    path = Path(db or default_db_path())
    folder = spool or path.with_name(path.stem + ".pull") / connector
    run = pull_okta if connector == "okta" else pull_salesforce
    with Store(path) as store:
        result = run(store, settings[connector], folder, cfg, since=start)
    out.print(
        f"{connector}: {result.pages} pages, {result.records:,} records, "
        f"{result.inserted:,} new events, {result.retries} retries; {result.status}"
        + (f": {clean(result.detail)}" if result.detail else "")
    )
    for p in result.problems:
        out.print(f"[yellow]{clean(p)}[/yellow]")


@command(app, "watch")
def watch_cmd(
    folders: Annotated[
        list[Path] | None, typer.Argument(help="Folders whose new log files are ingested")
    ] = None,
    pull: Annotated[
        list[str] | None, typer.Option("--pull", help="okta and/or salesforce, each cycle")
    ] = None,
    interval: Annotated[str, typer.Option(help="Time between cycles (30s, 5m)")] = "60s",
    cycles: Annotated[int | None, typer.Option(help="Stop after this many cycles")] = None,
    rules: RulesOption = None,
    no_builtin: NoBuiltinOption = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Run pull / ingest → detect → incidents → delivery on what is new, every --interval:
    the live mode. Each cycle reports what it added; Ctrl-C stops between cycles."""
    from crmwatch.config import Config
    from crmwatch.watch import watch

    cfg = Config.load(config)
    pulls = list(pull or [])
    for name in pulls:
        if name not in ("okta", "salesforce"):
            raise UsageError(f"unknown --pull {name!r}; okta or salesforce")
        if getattr(cfg.connectors, name) is None:
            raise UsageError(f"--pull {name} needs [connectors.{name}] (docs/connectors.md)")
    if not folders and not pulls:
        raise UsageError("nothing to watch: give folders, or --pull okta / --pull salesforce")
    seconds = _parse_duration(interval).total_seconds()
    if cycles is not None and cycles < 1:
        raise UsageError("--cycles must be 1 or more")
    rule_files = _rule_files(rules, no_builtin)
    path = Path(db or default_db_path())

    def report(c) -> None:
        out.print(f"{c.started_at:%Y-%m-%d %H:%M:%S}  {c.new_events:,} new events, "
                  f"{c.new_alerts} new alerts, {c.incidents} incidents, {c.delivered} "
                  f"delivered ({c.seconds:.1f}s)")  # fmt: skip
        for p in c.problems:
            err.print(f"[yellow]{clean(p)}[/yellow]", soft_wrap=True)

    with Store(path) as store:
        watch(store, cfg, rule_files, list(folders or []), pulls,
              path.with_name(path.stem + ".pull"), seconds, cycles, report)  # fmt: skip


@command(app, "contain")
def contain_cmd(
    incident_id: Annotated[str, typer.Argument(help="Incident id (see crmwatch incidents)")],
    apply_: Annotated[
        bool, typer.Option("--apply", help="Send the write requests (default: print them)")
    ] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """The actions that stop an incident — freeze its users, end their sessions, revoke the
    tokens of the apps they authorised, block those apps; in Okta clear sessions, reset
    factors, suspend — as the exact requests they take. Dry run unless --apply; every request
    is recorded with who ran it and the API's answer. Users listed as protected in
    crmwatch.toml are never touched."""
    from crmwatch.config import Config
    from crmwatch.connectors import okta as okta_conn
    from crmwatch.connectors import salesforce as sf_conn
    from crmwatch.incidents import get_incident
    from crmwatch.respond.contain import apply, granted_apps, people, plan_okta, plan_salesforce

    cfg = Config.load(config)
    if cfg.connectors.salesforce is None and cfg.connectors.okta is None:
        raise UsageError("containment needs [connectors.salesforce] and/or [connectors.okta] "
                         "(docs/connectors.md): it acts through their APIs")  # fmt: skip
    protected = set(cfg.respond.protected)
    with _store(db) as store:
        incident = get_incident(store, incident_id)
        actions, clients = [], {}
        who = people(store, incident)
        if cfg.connectors.salesforce is not None:
            s = cfg.connectors.salesforce
            clients["salesforce"] = sf_conn.client(s)
            actions += plan_salesforce(clients["salesforce"], f"/services/data/v{s.api_version}",
                                       who, granted_apps(store, incident), protected)  # fmt: skip
        if cfg.connectors.okta is not None:
            clients["okta"] = okta_conn.client(cfg.connectors.okta)
            actions += plan_okta(clients["okta"], who, protected)
        apply(store, incident, actions, clients, dry_run=not apply_)
    out.rule(f"containment of {incident.id}" + ("" if apply_ else " (dry run: nothing sent)"))
    for a in actions:
        head = f"[bold]{a.system} {a.kind}[/bold] {clean(a.target)}: {clean(a.why)}"
        out.print(head, soft_wrap=True)
        if a.refused:
            out.print(f"   [yellow]refused: {clean(a.refused)}[/yellow]")
        if a.manual:
            out.print(f"   by hand: {clean(a.manual)}")
        for r, status in zip(a.requests, a.results, strict=True):
            out.print(f"   {clean(r.shown())}  → {status}", soft_wrap=True)
        if not a.requests and not a.manual and not a.refused:
            out.print("   nothing to do (already done, or nothing found)")
    if not apply_:
        out.print("dry run: add --apply to send the requests above")


users_app = typer.Typer(help="The web console's accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@command(users_app, "add")
def users_add_cmd(
    name: Annotated[str, typer.Argument(help="Login name")],
    role: Annotated[str, typer.Option(help=f"One of {', '.join(ROLE_NAMES)}")] = "read-only",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="Give an existing account a new password and role")
    ] = False,
    db: DbOption = None,
) -> None:
    """Create an account, or with --replace give one a new password and role (its sessions
    end). The password is asked for, or read from standard input; only its argon2 hash is
    stored."""
    from crmwatch.console.accounts import add_user, users

    with _store(db, create=True) as store:
        exists = any(u["name"] == name for u in users(store))
    if exists and not replace:
        raise UsageError(f"account {name!r} exists: add --replace to change its password and role")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with _store(db, create=True) as store:
        add_user(store, name, role, password)
    out.print(f"account {clean(name)} ({role}) saved")


@command(users_app, "list")
def users_list_cmd(db: DbOption = None) -> None:
    """The console's accounts and their roles."""
    from crmwatch.console.accounts import users

    with _store(db) as store:
        rows = users(store)
    table = Table("name", "role", "created (UTC)")
    for u in rows:
        table.add_row(clean(u["name"]), u["role"], str(u["created_at"])[:19])
    out.print(table)


@command(users_app, "remove")
def users_remove_cmd(name: Annotated[str, typer.Argument()], db: DbOption = None) -> None:
    """Delete an account and end its sessions."""
    from crmwatch.console.accounts import remove_user

    with _store(db) as store:
        if not remove_user(store, name):
            raise UsageError(f"no account {name!r}")
    out.print(f"account {clean(name)} removed")


LOOPBACK = ("127.0.0.1", "::1", "localhost")


@command(app, "serve")
def serve_cmd(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8765,
    rules: RulesOption = None,
    no_builtin: NoBuiltinOption = False,
    allowed_host: Annotated[
        list[str],
        typer.Option(
            "--allowed-host",
            help="A host name the console answers to (besides "
            "loopback's): the name users type, with --host and TLS",
        ),
    ] = [],  # noqa: B006 (typer reads the default)
    cert: Annotated[Path | None, typer.Option(help="TLS certificate (PEM)")] = None,
    key: Annotated[Path | None, typer.Option(help="TLS private key (PEM)")] = None,
) -> None:
    """The web console over the store: incidents, their evidence, scope and notification
    package, the rules and the ingest's health. Listens on loopback unless told otherwise,
    and then only over TLS. The store stays open while it runs: stop it to ingest."""
    import uvicorn

    from crmwatch.console.accounts import users
    from crmwatch.console.app import LOOPBACK_NAMES, create_app

    if (cert is None) != (key is None):
        raise UsageError("give both --cert and --key, or neither")
    if host not in LOOPBACK and cert is None:
        raise UsageError(f"{host} is not loopback: serve it over TLS (--cert, --key), or "
                         "keep 127.0.0.1 and reach it through an SSH tunnel")  # fmt: skip
    rule_files = _rule_files(rules, no_builtin)
    store = _store(db)
    if not users(store):
        store.close()
        raise UsageError("no console accounts in this store: crmwatch users add NAME --role admin")
    scheme = "https" if cert else "http"
    try:  # a port in use is said before anything claims the console is up
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.bind((host, port))
    except OSError as e:
        store.close()
        raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from e
    out.print(f"crmwatch console on {scheme}://{host}:{port}/ (Ctrl-C stops it)")
    try:
        # no proxy headers: the audit trail records the peer's own address, which a client
        # cannot choose; no Server header
        uvicorn.run(create_app(store, rule_files, hosts=(*LOOPBACK_NAMES, *allowed_host),
                               tls=cert is not None),
                    host=host, port=port, log_level="warning", proxy_headers=False,
                    server_header=False, ssl_certfile=str(cert) if cert else None,
                    ssl_keyfile=str(key) if key else None)  # fmt: skip
    finally:
        store.close()


@command(app, "demo")
def demo_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write")] = Path("demo-out"),
    customers: Annotated[int, typer.Option(help="Customers in the snapshot")] = 100_000,
    employees: Annotated[int, typer.Option(help="Staff with CRM accounts")] = 200,
    days: Annotated[int, typer.Option(help="Days of activity")] = 30,
    seed: Annotated[int, typer.Option(help="Simulation seed")] = 7,
) -> None:
    """The main job end to end: simulate a retailer with the 2025 attacks, ingest, detect,
    group incidents, scope each against the customer snapshot, score it all, and draft the
    notification packages."""
    from crmwatch.detect.rules import load_rules
    from crmwatch.detect.runner import detect
    from crmwatch.evaluate import score, simulated_config
    from crmwatch.incidents import build_incidents
    from crmwatch.ingest import ingest
    from crmwatch.posture import posture
    from crmwatch.posture.checks import load_checks
    from crmwatch.posture.report import to_html
    from crmwatch.posture.results import on_path
    from crmwatch.scope.exposure import scope_incident

    sim_dir = out_dir / "org"
    db = out_dir / "crmwatch.duckdb"
    out_dir.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    out.rule("1. simulate")
    simulate_cmd(out_dir=sim_dir, customers=customers, employees=employees, days=days,
                 scenario=None, benign_only=False, seed=seed, noise="realistic",
                 start=None)  # fmt: skip
    with Store(db) as store:
        out.rule("2. ingest")
        summary = ingest(store, [sim_dir / "logs"], config=simulated_config(sim_dir))
        out.print(
            f"{len(summary.files)} files, {summary.total('records'):,} records: "
            f"{summary.total('inserted'):,} new, {summary.total('quarantined')} quarantined "
            f"in {summary.seconds:.1f}s"
        )
        out.rule("3. detect")
        _print_alert_summary(store, detect(store, load_rules()))
        out.rule("4. incidents")
        incidents = build_incidents(store)
        _print_incidents(incidents, db)
        out.rule("5. scope")
        scopes = [scope_incident(store, i.id, [sim_dir / "snapshot"]) for i in incidents]
        _print_scopes(incidents, scopes)
        out.rule("6. evaluation against the ground truth")
        _print_evaluation(score(store, sim_dir))
        out.rule("7. notify")
        _demo_notify(store, incidents, scopes, sim_dir, out_dir / "notify")
        out.rule("8. posture: the controls that would have stopped it")
        # the simulated period's end is the audit's "now": ages as of the logs' last day
        truth = json.loads((sim_dir / "ground_truth.json").read_text(encoding="utf-8"))
        end = dt.datetime.fromisoformat(truth["start"]) + dt.timedelta(days=truth["days"])
        audit = posture(store, [sim_dir / "config",
                                sim_dir / "logs" / "salesforce" / "objects" / "OauthToken.json"],
                        as_of=end)  # fmt: skip
        checks = load_checks()
        (out_dir / "posture.html").write_text(to_html(audit, checks), encoding="utf-8")
        _print_posture(audit)
        table = Table("incident", "who", "posture gaps on its path")
        for i in incidents:
            gaps = on_path(store, i)
            table.add_row(i.id, clean(", ".join(i.principals or i.user_ids)[:40]),
                          clean("; ".join(g["check_id"] for g in gaps)))  # fmt: skip
        out.print(table)
        out.print(f"posture report for an auditor: {clean(str(out_dir / 'posture.html'))}")
        out.rule("9. the console")
        login = _demo_account(store, out_dir)
    out.print(
        f"store: {clean(str(db))}; simulated logs, snapshot and ground truth: {clean(str(sim_dir))}"
    )
    out.print(f"open the console: [bold]crmwatch serve --db {clean(str(db))}[/bold], then "
              f"http://127.0.0.1:8765/ and log in as demo with the password in "
              f"{clean(str(login))}")  # fmt: skip


def _demo_account(store: Store, out_dir: Path) -> Path:
    """An admin account for the demo's console; its password goes to a file only its owner
    can read, never to the terminal."""
    from crmwatch.console.accounts import add_user

    password = secrets.token_urlsafe(12)
    add_user(store, "demo", "admin", password)
    path = out_dir / "console-password.txt"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    out.print(f"console account: demo (admin); password in {clean(str(path))}")
    return path


def _demo_notify(store: Store, incidents: list[Incident], scopes: list[ScopeResult],
                 sim_dir: Path, folder: Path) -> None:  # fmt: skip
    """A package per incident that exposed customers, as if the company became aware at the
    first alert (the simulation's detection) and drafted the package an hour later."""
    from crmwatch.notify.org import load_org
    from crmwatch.notify.package import notify

    org = load_org(sim_dir / "org.toml")
    table = Table("incident", "required", "assess", "first deadline (UTC)", "drafts", "letters")
    for i, r in zip(incidents, scopes, strict=True):
        if not r.affected_customers:
            continue
        aware = parse_utc(i.first_alert_at)
        pkg = notify(store, i.id, aware, folder / i.id, org, now=aware + dt.timedelta(hours=1))
        required = sorted({o.regime for o in pkg.obligations if o.status == "required"})
        assess = sorted({o.regime for o in pkg.obligations if o.status == "assess"})
        due = min((o.deadline_utc for o in pkg.obligations
                   if o.status == "required" and o.deadline_utc), default="-")  # fmt: skip
        table.add_row(i.id, ", ".join(required), ", ".join(assess), due, str(len(pkg.drafts)),
                      str(len(pkg.letters)))  # fmt: skip
    out.print(table)
    out.print(f"packages (obligations, regulator drafts, letters, mailing lists): "
              f"{clean(str(folder))}")  # fmt: skip


def _print_scopes(incidents: list[Incident], scopes: list[ScopeResult]) -> None:
    table = Table("incident", "who", "customers", "exact / replayed / candidate", "up to",
                  "countries", "data categories")  # fmt: skip
    for i, r in zip(incidents, scopes, strict=True):
        c = r.affected_by_confidence
        countries = ", ".join(f"{k} {v:,}" for k, v in list(r.by_country.items())[:4])
        table.add_row(
            i.id, clean(", ".join(i.principals or i.user_ids)[:40]), f"{r.affected_customers:,}",
            f"{c['exact']:,} / {c['replayed']:,} / {c['candidate']:,}",
            f"+{r.bounded_upper_bound:,}" if r.bounded_upper_bound else "",
            clean(countries), clean(", ".join(r.categories)),
        )  # fmt: skip
    out.print(table)


def main() -> None:  # pragma: no cover
    sys.exit(app())
