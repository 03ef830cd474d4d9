"""Plays the departments and the residents against a running stack, through Kafka only.

Departments sign for what they are sent and resolve it; one dispatch in ``slow_every`` is left
unanswered so that its accept-by passes and the ladder shows. Residents answer the follow-up
call; one in ``unhappy_every`` is dissatisfied the first time, which reopens the order.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from shared import contract
from shared.messaging import HEADERS, client_options, make_consumer
from shared.settings import Settings

DEPARTMENT_TOPICS = re.compile(r"^dispatch\.(?!responses\.)[a-z0-9_]+\.v1$")


def _bucket(text: str, every: int) -> bool:
    return every > 0 and int(hashlib.sha256(text.encode()).hexdigest(), 16) % every == 0


@dataclass
class Simulator:
    settings: Settings
    slow_every: int = 6
    unhappy_every: int = 5
    reaction_seconds: float = 0.5
    counts: Counter[str] = field(default_factory=Counter)
    _dissatisfied: set[str] = field(default_factory=set)
    _cancelled: set[str] = field(default_factory=set)
    _seen: set[str] = field(default_factory=set)  # event ids: one event delivered twice is one event

    async def run(self, stop: asyncio.Event) -> None:
        consumer = make_consumer(
            self.settings, f"whistle-simulator-{uuid.uuid4().hex[:8]}", fetch_max_wait_ms=50
        )
        consumer.subscribe(pattern=f"{DEPARTMENT_TOPICS.pattern}|^{re.escape(contract.WORKORDER_EVENTS)}$")
        producer = AIOKafkaProducer(**client_options(self.settings), acks="all", linger_ms=5)
        await consumer.start()
        await producer.start()
        tasks: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=500)
                for records in batches.values():
                    for record in records:
                        event = orjson.loads(record.value)
                        if event["id"] in self._seen:
                            continue  # a repeat (the contract allows them): a department acts once
                        self._seen.add(event["id"])
                        task = asyncio.create_task(self._react(producer, record.topic, event))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()
            await consumer.stop()
            await producer.stop()

    async def _react(self, producer: AIOKafkaProducer, topic: str, event: dict[str, Any]) -> None:
        data = event["data"]
        if event["type"] == "dispatch.cancelled":
            self._cancelled.add(data["dispatch_id"])  # taken back: a department stops working on it
        elif event["type"] == "dispatch.assigned":
            if (
                data["attempt"] == 1
                and data["level"] != "district"
                and _bucket(data["dispatch_id"], self.slow_every)
            ):
                self.counts["left unanswered"] += 1
                return  # a department that does not sign for it in time
            await asyncio.sleep(self.reaction_seconds)  # a person reading the new work
            if data["dispatch_id"] not in self._cancelled:
                await self._respond(producer, "dispatch.accepted", data, note="已签收，安排人员处理")
            await asyncio.sleep(self.reaction_seconds)
            if data["dispatch_id"] not in self._cancelled:
                await self._respond(producer, "dispatch.resolved", data, result="已上门处理，问题已解决")
        elif event["type"] == "workorder.resolved":
            order = data["work_order_id"]
            unhappy = _bucket(order, self.unhappy_every) and order not in self._dissatisfied
            if unhappy:
                self._dissatisfied.add(order)
            await asyncio.sleep(self.reaction_seconds)
            feedback = {
                "work_order_id": order,
                "satisfaction": "dissatisfied" if unhappy else "satisfied",
                "resolved": not unhappy,
                "comment": "还是没修好" if unhappy else "处理及时，满意",
            }
            self.counts["feedback " + feedback["satisfaction"]] += 1
            await self._send(producer, contract.FEEDBACK, order, "resident.feedback.received", feedback)

    async def _respond(
        self, producer: AIOKafkaProducer, type: str, dispatch: dict[str, Any], **extra: str
    ) -> None:
        data = {
            "dispatch_id": dispatch["dispatch_id"],
            "work_order_id": dispatch["work_order_id"],
            "department": dispatch["department"],
            **extra,
        }
        self.counts[type] += 1
        await self._send(producer, contract.DISPATCH_RESPONSES, dispatch["work_order_id"], type, data)

    async def _send(
        self, producer: AIOKafkaProducer, topic: str, key: str, type: str, data: dict[str, Any]
    ) -> None:
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "simulator/departments"
            if topic == contract.DISPATCH_RESPONSES
            else "simulator/residents",
            "type": type,
            "time": datetime.now(UTC).isoformat(),
            "subject": key,
            "datacontenttype": "application/json",
            "data": data,
        }
        await producer.send_and_wait(topic, orjson.dumps(event), key=key.encode(), headers=HEADERS)
