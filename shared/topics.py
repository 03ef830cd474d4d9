"""Topics: created with their partition counts before anyone subscribes."""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared import contract
from shared.logs import get_logger
from shared.messaging.kafka import client_options
from shared.reference import Jurisdiction
from shared.settings import Settings

log = get_logger(__name__)


def all_topics(jurisdiction: Jurisdiction) -> list[str]:
    """Every topic of the system: the contract's, the internal ones, one per department."""
    fixed = [
        contract.HOTLINE_CALLS,
        contract.GRID_REPORTS,
        contract.DISPATCH_RESPONSES,
        contract.FEEDBACK,
        contract.WORKORDER_EVENTS,
        contract.ALERTS,
        contract.NOTIFICATIONS,
        contract.DEADLETTER,
        contract.INTAKE_ORDERS,
        contract.INTAKE_CONTACTS,
        contract.ESCALATION_COMMANDS,
        contract.DISPATCH_DEADLINES,
        contract.ORDER_COMMANDS,
    ]
    return fixed + [contract.department_topic(d.code) for d in jurisdiction.departments]


def partitions_for(settings: Settings, topic: str) -> int:
    """How many partitions the project gives a topic it creates."""
    if contract.is_department_topic(topic):
        return settings.department_topic_partitions
    return settings.topic_partitions


async def existing_topics(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10000)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def ensure_topics(settings: Settings, names: Iterable[str]) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=10000)
    await admin.start()
    try:
        have = set(await admin.list_topics())
        missing = sorted(set(names) - have)
        created = []
        for name in missing:  # one by one: an "already exists" from a racing replica is fine
            try:
                await admin.create_topics(
                    [NewTopic(name, partitions_for(settings, name), settings.topic_replication_factor)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass
        if created:
            log.info("topics created", topics=created)
        return created
    finally:
        await admin.close()


async def records_in(settings: Settings, topic: str) -> int:
    """How many records a topic holds now: end minus beginning offsets, over its partitions."""
    consumer = AIOKafkaConsumer(**client_options(settings))  # no group: reads offsets only
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()
