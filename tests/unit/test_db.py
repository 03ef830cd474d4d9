"""The bulk insert: one statement, one typed array per column, rows kept in order."""

from __future__ import annotations

from services.intake.store import OrderCount, Outbox, WorkOrder
from shared.db import bulk_insert


def test_each_column_is_an_array_of_its_type_without_length() -> None:
    insert = bulk_insert(WorkOrder.__table__, ["id", "received_at", "confidence", "location"])  # type: ignore[arg-type]
    sql = str(insert.statement)
    # A cast to VARCHAR(80) would cut a long value short silently; the insert itself refuses it.
    assert "CAST(:c0 AS VARCHAR[])" in sql
    assert "CAST(:c1 AS TIMESTAMP WITH TIME ZONE[])" in sql
    assert "CAST(:c3 AS JSONB[])" in sql
    assert insert.json == {"location"}


def test_rows_keep_their_order_and_the_conflict_clause_follows() -> None:
    sql = str(
        bulk_insert(
            OrderCount.__table__,  # type: ignore[arg-type]
            ("community", "category", "minute", "n"),
            "ON CONFLICT (community, category, minute) DO NOTHING",
        ).statement
    )
    assert sql.startswith("INSERT INTO order_counts (community, category, minute, n) SELECT")
    assert "WITH ORDINALITY AS u(community, category, minute, n, _n) ORDER BY _n ON CONFLICT" in sql


def test_outbox_payload_is_bytea() -> None:
    sql = str(bulk_insert(Outbox.__table__, ("topic", "key", "payload")).statement)  # type: ignore[arg-type]
    assert "CAST(:c2 AS BYTEA[])" in sql
