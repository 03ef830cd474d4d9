"""The pruning policy (shared/housekeeping.py): what may go, from when, and when to go again."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Table

from services.api import store as api
from services.dispatch import store as dispatch
from services.escalation import store as escalation
from services.intake import store as intake
from services.notify import store as notify
from shared.housekeeping import Prunable, horizon, inbox, more_waiting, prune_forever
from shared.settings import Settings


def test_the_horizon_is_the_setting_s_days_before_now() -> None:
    now = datetime(2026, 12, 3, 12, tzinfo=UTC)
    assert horizon(now, 30) == datetime(2026, 11, 3, 12, tzinfo=UTC)
    assert horizon(now, 0.5) == datetime(2026, 12, 3, 0, tzinfo=UTC)


def test_the_default_horizon_lies_beyond_kafka_s_redelivery() -> None:
    """Kafka keeps a topic 7 days by default: nothing it redelivers is older than the horizon."""
    settings = Settings()
    assert settings.prune_after_days >= 7 * 2
    assert settings.prune_interval_seconds > 0 and settings.prune_batch_rows > 0


@pytest.mark.parametrize(
    ("pruned", "more"),
    [
        ({}, False),
        ({"inbox": 0, "clocks": 0}, False),
        ({"inbox": 4999, "clocks": 12}, False),
        ({"inbox": 5000, "clocks": 0}, True),  # a full batch: a backlog, go again at once
        ({"inbox": 3, "clocks": 5000}, True),
    ],
)
def test_a_full_batch_means_more_is_waiting(pruned: dict[str, int], more: bool) -> None:
    assert more_waiting(pruned, 5000) is more


def test_only_ended_rows_past_the_horizon_go_and_each_statement_checks_them_again() -> None:
    by_table = {p.table: p for p in (*escalation.PRUNABLE, *notify.PRUNABLE)}
    assert by_table["clocks"].ended == "state <> 'open'"  # a running clock never goes
    assert by_table["notifications"].ended == "status <> 'pending'"  # nor one still to send
    for p in by_table.values():
        sql = str(p.statement)
        # the conditions stand in the DELETE itself (a row changed since it was found is judged
        # again) and in the search, by the indexed time, a batch at most
        assert sql.count(f"{p.ended} AND {p.column} < :before") == 2, sql
        assert f"ORDER BY {p.column} LIMIT :n" in sql, sql


def test_every_service_prunes_its_inbox_by_the_time_it_took_each_event() -> None:
    for store in (intake, dispatch, escalation, notify, api):
        table: Table = store.Inbox.__table__
        assert inbox(table) == Prunable("inbox", "received_at")
        assert table.c.received_at.index  # found by index, not by reading the table


def test_the_record_is_never_pruned() -> None:
    """Orders, dispatches, history and the api's read model are what the hotline answers for."""
    tables = {p.table for p in (*escalation.PRUNABLE, *notify.PRUNABLE)}
    assert tables == {"clocks", "notifications", "notification_attempts"}


async def test_an_interval_of_zero_turns_pruning_off() -> None:
    # Returns at once, touching no database (there is none here).
    await prune_forever("x", None, [inbox(intake.Inbox.__table__)], after_days=30, interval=0, batch=1)  # type: ignore[arg-type]
