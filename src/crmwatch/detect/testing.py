"""Run a rule file's inline tests on a real, empty, in-memory store."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from crmwatch.config import EnrichConfig
from crmwatch.detect.rules import RuleFile, RuleTest, event_row
from crmwatch.detect.runner import run_rule
from crmwatch.enrich import enrich
from crmwatch.errors import RuleError
from crmwatch.schema import BASE_NAMES
from crmwatch.store import Store


@dataclass
class TestResult:
    rule: RuleFile
    test: RuleTest
    alerts: int
    levels: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        if (self.alerts > 0) != self.test.expected:
            return False
        return self.test.level is None or set(self.levels) == {self.test.level}


def run_test(rf: RuleFile, test: RuleTest) -> TestResult:
    ids = itertools.count()
    with Store(":memory:") as store:
        for event in test.events:
            row = {"event_id": f"t{next(ids):04d}", "source": "salesforce", **event_row(event)}
            unknown = set(row) - set(BASE_NAMES)
            if unknown:
                raise RuleError(
                    f"{rf.path.name}, test {test.name!r}: unknown fields {sorted(unknown)}"
                )
            cols = ", ".join(row)
            store.execute(
                f"INSERT INTO events_base ({cols}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
        enrich(store, EnrichConfig(corporate_cidrs=test.corporate_cidrs))
        alerts = run_rule(store, rf)
        return TestResult(rf, test, len(alerts), tuple(sorted({a.level for a in alerts})))


def run_tests(rule_files: list[RuleFile]) -> list[TestResult]:
    return [run_test(rf, t) for rf in rule_files for t in rf.tests]
