"""Kafka clients: the services' faststream broker, and aiokafka producers and consumers, all from
the one set of connection settings (plain, TLS or SASL)."""

from __future__ import annotations

import ssl
from itertools import chain
from typing import Any, TypeVar

import aiokafka.client
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from shared.contract import CONTENT_TYPE
from shared.logs import get_logger
from shared.settings import Settings

T = TypeVar("T")
HEADERS = [("content-type", CONTENT_TYPE.encode())]
# Beside the content type, what we publish carries its event type in ``ce_type`` (as CloudEvents'
# binary mode names it): a consumer can pass over a type it has no use for unparsed.
TYPE_HEADER = "ce_type"
# And the trace context of the event (shared.tracing), under the names W3C's Kafka instrumentations
# read: a tracer outside the project continues our traces without parsing the event.
TRACEPARENT_HEADER = "traceparent"
TRACESTATE_HEADER = "tracestate"


class _MetadataRequest(MetadataRequest):  # type: ignore[misc]  # aiokafka's protocol is untyped
    """A metadata request that never creates the topics it asks about."""

    def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool = False) -> None:
        super().__init__(topics, allow_auto_topic_creation)


# aiokafka's clients ask for metadata allowing the broker to create the topics named, and have no
# setting against it. Tansu does: restarted empty, it made a topic again, with a partition count of
# its own, as soon as any client looked (the relay's check before a round among them), and took
# records into it. Topics are made only by ``ensure_topics``, with their partition counts.
aiokafka.client.MetadataRequest = _MetadataRequest


def _ssl(settings: Settings) -> ssl.SSLContext | None:
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context: ssl.SSLContext = create_ssl_context(cafile=settings.kafka_ssl_cafile)
        return context
    return None


def client_options(settings: Settings) -> dict[str, Any]:
    """aiokafka options shared by the relay's producer, admin clients and tools."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": _ssl(settings),
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        )
    return options


def _broker_security(settings: Settings) -> BaseSecurity | None:
    context = _ssl(settings)
    user = settings.kafka_sasl_username or ""
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    use_ssl = settings.kafka_security_protocol == "SASL_SSL"
    match settings.kafka_sasl_mechanism:
        case "PLAIN":
            return SASLPlaintext(user, password, ssl_context=context, use_ssl=use_ssl)
        case "SCRAM-SHA-256":
            return SASLScram256(user, password, ssl_context=context, use_ssl=use_ssl)
        case "SCRAM-SHA-512":
            return SASLScram512(user, password, ssl_context=context, use_ssl=use_ssl)
    return BaseSecurity(ssl_context=context) if context else None


def make_broker(settings: Settings, service: str) -> KafkaBroker:
    """The faststream broker of a service: it consumes; the relay's own producer publishes."""
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"whistle-{service}",
        security=_broker_security(settings),
        acks="all",
        enable_idempotence=False,  # not supported by every Kafka-compatible broker; the inbox dedupes
        allow_auto_create_topics=False,
        logger=get_logger(f"faststream.{service}"),
    )


class _PromptBatches(BatchSubscriber):
    """faststream's batch subscriber, without the pause it takes after a poll that found nothing:
    a record arriving during that pause waited it out (up to BATCH_TIMEOUT_MS a hop, on every hop
    of a light load). The poll itself returns as soon as records are there, so batches under load
    are as large as before."""

    __slots__ = ()

    async def get_msg(self, consumer: AIOKafkaConsumer) -> tuple[ConsumerRecord[Any, Any], ...]:
        messages = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
        return tuple(chain.from_iterable(messages.values()))


def prompt_batches(subscriber: T) -> T:
    """A service's batch subscriber, made prompt (``_PromptBatches``). Anything but faststream's
    batch subscriber is refused: a faststream that made another would keep its pause unnoticed."""
    if type(subscriber) is not BatchSubscriber:
        raise TypeError(f"not faststream's batch subscriber: {type(subscriber).__name__}")
    subscriber.__class__ = _PromptBatches  # type: ignore[assignment]
    return subscriber


def make_consumer(settings: Settings, group_id: str | None, **overrides: Any) -> AIOKafkaConsumer:
    """A plain consumer for tools and tests (the services consume through faststream)."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "auto_offset_reset": "earliest",
        "fetch_max_wait_ms": 20,
        "metadata_max_age_ms": 1000,
        "session_timeout_ms": 6000,  # what Tansu needs to form a group quickly; real Kafka's minimum
        "heartbeat_interval_ms": 1000,
    }
    return AIOKafkaConsumer(**client_options(settings), **(options | overrides))


def make_producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        request_timeout_ms=15000,
    )
