"""``crmwatch watch``: the pipeline run again and again on what is new — pull from the APIs
and/or pick up new files in folders, ingest, detect, rebuild incidents, deliver.

A cycle detects from the earliest timestamp among the events it added (``detect``'s
``since``), not from the cycle's start: a late log file still has its rules run over it. And
``since`` is a window's *end*, not its start: correlations read back their own timespan and
baselines their lookback (crmwatch.detect), so an attack whose steps arrive in two cycles
is found as one, exactly as a batch run over all the logs finds it. Alerts already stored
are kept (their ids are stable), incidents are rebuilt from all alerts, and delivery sends
each incident once when it opens and again when it escalates.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from crmwatch.config import Config
from crmwatch.detect.rules import RuleFile
from crmwatch.detect.runner import detect
from crmwatch.errors import CrmwatchError
from crmwatch.incidents import build_incidents
from crmwatch.ingest import ingest
from crmwatch.store import Store

# meta key: the highest events_base rowid the rules have run over
WATERMARK = "watch_detected_rowid"


@dataclass
class Cycle:
    started_at: dt.datetime
    new_events: int = 0
    since: dt.datetime | None = None
    new_alerts: int = 0
    incidents: int = 0
    delivered: int = 0
    failed_deliveries: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def _pullers() -> dict[str, Callable]:
    from crmwatch.connectors.okta import pull_okta
    from crmwatch.connectors.salesforce import pull_salesforce

    return {"okta": pull_okta, "salesforce": pull_salesforce}


def cycle(store: Store, config: Config, rule_files: list[RuleFile], folders: list[Path],
          pulls: list[str], spool: Path) -> Cycle:  # fmt: skip
    """One pass over what is new. A source that fails (an API down) is reported and the
    rest of the cycle goes on; its position is kept, so the next cycle catches up."""
    start = time.perf_counter()
    c = Cycle(dt.datetime.now(dt.UTC).replace(tzinfo=None))
    # What the rules have run over is kept in the store, not in this process: events ingested
    # by a cycle that was stopped before detecting, or by a `crmwatch pull` or `ingest` run
    # between watches, are new to the next cycle.
    done = store.meta(WATERMARK)
    before = int(done) if done is not None else -1
    if before > store.scalar("SELECT coalesce(max(rowid), -1) FROM events_base"):
        before, done = -1, None  # the table was rewritten: run over everything once more
    settings = {"okta": config.connectors.okta, "salesforce": config.connectors.salesforce}
    for name in pulls:
        try:
            _pullers()[name](store, settings[name], spool / name, config)
        except CrmwatchError as e:
            c.problems.append(f"pull {name}: {e}")
    if folders:
        summary = ingest(store, folders, config=config)
        c.problems += [f.error for f in summary.files if f.error]
    c.new_events, c.since, last = store.execute(
        "SELECT count(*), min(ts), max(rowid) FROM events_base WHERE rowid > ?", [before]
    ).first()
    if c.new_events:
        alerts_before = store.scalar("SELECT count(*) FROM alerts")
        runs = detect(store, rule_files, since=c.since)
        c.problems += [f"rule {r.title}: {r.error}" for r in runs if r.error]
        c.new_alerts = store.scalar("SELECT count(*) FROM alerts") - alerts_before
        if c.new_alerts or done is None:
            c.incidents = len(build_incidents(store, config.incidents))
        store.set_meta(WATERMARK, str(last))
    if config.alerts.channels:
        from crmwatch.respond.deliver import deliver

        done = deliver(store, config.alerts)
        c.delivered = sum(d.status == "delivered" for d in done)
        c.failed_deliveries = len(done) - c.delivered
    c.seconds = time.perf_counter() - start
    return c


def watch(store: Store, config: Config, rule_files: list[RuleFile], folders: list[Path],
          pulls: list[str], spool: Path, interval: float, cycles: int | None = None,
          on_cycle: Callable[[Cycle], None] | None = None,
          sleep: Callable[[float], None] = time.sleep) -> int:  # fmt: skip
    """Cycles every ``interval`` seconds (from the start of one to the start of the next;
    at once if a cycle took longer) until ``cycles`` are done or the process is stopped."""
    done = 0
    while cycles is None or done < cycles:
        begun = time.monotonic()
        c = cycle(store, config, rule_files, folders, pulls, spool)
        done += 1
        if on_cycle:
            on_cycle(c)
        if cycles is not None and done >= cycles:
            break
        sleep(max(interval - (time.monotonic() - begun), 0.0))
    return done
