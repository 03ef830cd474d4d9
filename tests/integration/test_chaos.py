"""The short chaos run (`whistle chaos --short`, tools/chaos.py): two replicas of every service on
a stack of its own (its ports, its broker, a PostgreSQL server it makes itself), calls with the
departments and residents playing, random SIGKILLs and a PostgreSQL crash; the broker's restart is
`make chaos`'s (`tools.chaos.SHORT` says why). Counted from the topics: nothing lost, nothing
doubled, every order's events in order."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.chaos import SHORT, Run, passed, summary, write_report

pytestmark = pytest.mark.integration


def test_calls_survive_kills_and_a_postgres_crash(tmp_path: Path) -> None:
    report = Run(SHORT, say=print).execute()  # the run stops its stack and its server itself
    write_report(report, tmp_path)
    line = summary(report)
    assert report["calls"] > 0 and report["faults"], line
    # Every call the run holds to it (not sent while the broker was away, nor in flight when it
    # forgot) has its order, its lead dispatch and its resident told.
    assert report["lost"] == 0, (line, report["lost_examples"])
    assert report["doubled"] == 0, (line, report["doubled_examples"])
    assert report["order_violations"] == 0, (line, report["order_examples"])
    assert passed(report)
    # Every replica killed came back, and the stack recovered from each outage.
    assert report["recovery_s"]["never"] == 0, report["recovery_s"]
    assert all(not r.get("not_ready") for r in report["recovery_s"]["each"]), report["recovery_s"]
    assert not report["reader"]["unread"], report["reader"]
