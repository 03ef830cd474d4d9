"""The project's own Prometheus metrics, shared by all services (label ``service`` tells them apart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
# The standard process series (process_cpu_seconds_total, memory, open files): the bench reads
# intake's CPU per call from them.
ProcessCollector(registry=REGISTRY)

MESSAGES = Counter(
    "whistle_messages",
    "Inbound messages by outcome: applied, duplicate, ignored, deadlettered",
    ["service", "topic", "outcome"],
    registry=REGISTRY,
)
DEADLETTERS = Counter(
    "whistle_deadletters", "Messages sent to deadletter.v1", ["service", "topic"], registry=REGISTRY
)
BATCH_SECONDS = Histogram(
    "whistle_batch_seconds",
    "Time to process one consumed batch (one transaction)",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "whistle_batch_size",
    "Messages per consumed batch",
    ["service"],
    buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000),
    registry=REGISTRY,
)
TRANSIENT_RETRIES = Counter(
    "whistle_transient_retries", "Batches retried after a transient failure", ["service"], registry=REGISTRY
)
BATCHES_REWOUND = Counter(
    "whistle_batches_rewound",
    "Batches whose transaction failed for good (the database away): rewound, to come again",
    ["service"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "whistle_outbox_pending",
    "Outbox rows not yet published (counted every few seconds, whether the relay succeeds or not)",
    ["service"],
    registry=REGISTRY,
)
RELAY_PUBLISHED = Counter(
    "whistle_relay_published", "Outbox rows published", ["service", "topic"], registry=REGISTRY
)
RELAY_FAILURES = Counter(
    "whistle_relay_failures",
    "Relay rounds that failed (broker or database away)",
    ["service"],
    registry=REGISTRY,
)
BROKER_REACHABLE = Gauge(
    "whistle_broker_reachable",
    "1 when the last look at the broker's topics (every second) answered, else 0",
    ["service"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "whistle_consumer_lag",
    "Records behind the partition's end after this replica's last committed batch",
    ["service", "topic", "partition"],
    registry=REGISTRY,
)
WORKORDERS = Counter(
    "whistle_workorders",
    "Work-order lifecycle events committed for publishing, by type (workorder.created, ...)",
    ["type"],
    registry=REGISTRY,
)
ESCALATIONS = Counter(
    "whistle_escalations",
    "Escalations applied (workorder.escalated committed by dispatch), by cause and level reached",
    ["reason", "to_level"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "whistle_notifications", "Notifications by channel and outcome", ["channel", "outcome"], registry=REGISTRY
)
RATES = Gauge(
    "whistle_rate",
    "The three rates (三率) over 30 days: response, resolution, satisfaction; by department,"
    " community or request type",
    ["rate", "scope", "name"],
    registry=REGISTRY,
)
BREACHES = Counter(
    "whistle_breaches",
    "Deadlines missed, by department and deadline (accept, resolve)",
    ["department", "deadline"],
    registry=REGISTRY,
)

# The reason of a workorder.escalated is free text naming departments and counts; the label keeps
# only its cause, so that the series stay few. Each prefix is the one its rule writes (a unit test
# checks them against services/escalation and services/dispatch).
ESCALATION_CAUSES = (
    ("not signed for", "accept_overdue"),
    ("not resolved", "resolve_overdue"),
    ("resident dissatisfied", "dissatisfied"),
    ("cluster:", "cluster"),
    ("every department", "all_returned"),
)
RETURNS_AUTO_APPROVED = Counter(
    "whistle_returns_auto_approved",
    "Returns (退单) approved automatically: the centre did not review them within RETURN_REVIEW_WITHIN",
    registry=REGISTRY,
)


def escalation_cause(reason: str) -> str:
    return next((cause for prefix, cause in ESCALATION_CAUSES if reason.startswith(prefix)), "other")
