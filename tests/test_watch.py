"""`crmwatch watch`: an attack whose logs arrive over two cycles raises the incident a batch
run over all of them raises, with the same alerts, and it is delivered once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from crmwatch.config import Config
from crmwatch.detect.rules import load_rules
from crmwatch.detect.runner import detect
from crmwatch.incidents import build_incidents, stored_incidents
from crmwatch.ingest import ingest
from crmwatch.respond.settings import AlertSettings, Webhook
from crmwatch.store import Store
from crmwatch.watch import cycle, watch
from tests.breach import ANNA, write_breach
from tests.test_alerts import Receiver

# what the attacker did first (sign-in, app grant), then what they took (queries, bulk job)
FIRST = ("LoginEvent.json", "OauthToken.json")


def _incidents(store: Store) -> list[tuple]:
    alerts = dict(store.execute("SELECT alert_id, title FROM alerts").rows)
    return sorted((i.id, i.severity, i.first_malicious_at, tuple(i.principals),
                   tuple(sorted(alerts[a] for a in i.alert_ids)), i.events)
                  for i in stored_incidents(store))  # fmt: skip


def test_an_attack_over_two_cycles_is_the_incident_of_a_batch_run(tmp_path: Path):
    logs = write_breach(tmp_path / "all")
    with Store(tmp_path / "batch.duckdb") as store:
        ingest(store, [logs])
        detect(store, load_rules(None))
        build_incidents(store)
        batch = _incidents(store)
        batch_alerts = store.execute("SELECT alert_id FROM alerts ORDER BY 1").rows
    assert any(i[3] == (ANNA,) for i in batch)

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hook = Receiver()
    config = Config(alerts=AlertSettings(min_severity="low", webhooks=(Webhook(hook.url),)))
    rules = load_rules(None)
    try:
        with Store(tmp_path / "live.duckdb") as store:
            for name in FIRST:
                shutil.copy(logs / name, inbox / name)
            one = cycle(store, config, rules, [inbox], [], tmp_path / "spool")
            for path in logs.iterdir():
                if path.name not in FIRST:
                    shutil.copy(path, inbox / path.name)
            two = cycle(store, config, rules, [inbox], [], tmp_path / "spool")
            three = cycle(store, config, rules, [inbox], [], tmp_path / "spool")
            live = _incidents(store)
            live_alerts = store.execute("SELECT alert_id FROM alerts ORDER BY 1").rows
    finally:
        hook.close()
    assert one.new_events and two.new_events and three.new_events == 0
    # the second cycle detected from its own earliest event, not from the start of time
    assert two.since > one.since
    assert live == batch and live_alerts == batch_alerts
    # each incident went out once when it opened (or again when it escalated), no more
    sent = [(b["incident"]["id"], b["event"]) for b in hook.bodies]
    assert len(sent) == len(set(sent)) and {i for i, _ in sent} == {i[0] for i in batch
                                                                    if i[1] != "informational"}  # fmt: skip
    assert three.delivered == 0


def test_watch_runs_its_cycles_and_reports_each(tmp_path: Path):
    logs = write_breach(tmp_path / "logs")
    seen = []
    with Store(tmp_path / "s.duckdb") as store:
        n = watch(store, Config(), load_rules(None), [logs], [], tmp_path / "spool", 0.0,
                  cycles=2, on_cycle=seen.append, sleep=lambda s: None)  # fmt: skip
    assert n == 2 and seen[0].new_events == sum(
        len(json.loads(p.read_text())["records"]) for p in logs.iterdir()
    ) and seen[1].new_events == 0  # fmt: skip


def test_events_ingested_outside_a_finished_cycle_are_detected_by_the_next(tmp_path: Path):
    """A `crmwatch pull` or `ingest` between watches (or a cycle stopped before detecting)
    leaves events the rules have not seen: the next cycle runs over them."""
    logs = write_breach(tmp_path / "logs")
    rules = load_rules(None)
    with Store(tmp_path / "s.duckdb") as store:
        ingest(store, [logs])  # a backfill, as `crmwatch pull --since` leaves it
        c = cycle(store, Config(), rules, [], [], tmp_path / "spool")
        assert c.new_events == store.scalar("SELECT count(*) FROM events_base")
        assert c.new_alerts > 0 and any(i.principals == [ANNA] for i in stored_incidents(store))
        again = cycle(store, Config(), rules, [], [], tmp_path / "spool")
        assert again.new_events == 0
