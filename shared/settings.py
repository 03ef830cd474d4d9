"""One settings object for every service and tool, read from environment variables."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from shared.contract import RequestType
from shared.reference import DEFAULT_JURISDICTION, TimeLimit, Urgency

SERVICE_PORTS = {"intake": 8081, "dispatch": 8082, "escalation": 8083, "notify": 8084, "api": 8085}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Kafka: any Kafka-compatible cluster; the local Tansu broker by default.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    topic_partitions: int = 6
    # A department's queue (``dispatch.<department>.v1``): a few thousand records a day, which one
    # partition keeps in order. Every partition costs the broker on each consumer's fetch, and the
    # departments' topics were 29 of 42 (docs/performance.md, "A quiet machine").
    department_topic_partitions: int = 1
    topic_replication_factor: int = 1

    # PostgreSQL server; a URL without a database name gets ``<database_prefix>_<service>``.
    database_url: str = "postgresql://postgres@127.0.0.1:5432"
    database_prefix: str = "whistle"
    db_pool_size: int = 5

    # "production" turns development fallbacks into refusals to start (notify's log channel).
    environment: Literal["development", "staging", "production"] = "development"
    # Off in Kubernetes, where an init container migrates before the service starts: a long
    # migration there is not killed by the startup probe.
    migrate_on_start: bool = True

    # Loopback for the local stack; a container sets 0.0.0.0 so that probes and Prometheus reach it.
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    log_level: str = "INFO"
    jurisdiction_file: Path = DEFAULT_JURISDICTION
    # Overrides the jurisdiction's time-limit policy, e.g.
    # TIME_LIMITS='{"normal": {"accept": "PT5S", "resolve": "PT30S"}}'
    time_limits: dict[Urgency, TimeLimit] = {}
    # Per category, e.g.
    # CATEGORY_TIME_LIMITS='{"policy_inquiry": {"normal": {"accept": "PT2H", "resolve": "P1D"}}}'
    category_time_limits: dict[str, dict[Urgency, TimeLimit]] = {}
    # Per urgency, "calendar" or "working" (working days with the jurisdiction's holidays), e.g.
    # TIME_COUNTING='{"normal": "working"}'; unset urgencies follow the jurisdiction (else calendar).
    time_counting: dict[Urgency, Literal["calendar", "working"]] = {}
    # A normal order's time to resolve by its request type (诉求类型), counted in working days; the
    # types named override the defaults (inquiry 2, help and suggestion 10, complaint and report
    # 15 working days: services/dispatch/routing.py), e.g. REQUEST_TYPE_TIME_LIMITS='{"inquiry": "P1D"}'
    request_type_time_limits: dict[RequestType, timedelta] = {}

    # Batching: a batch is one transaction and one offset commit, so its fixed costs spread over
    # its records; 2000 was the best measured (docs/performance.md). A poll returns what has come
    # as soon as anything has (batch_timeout_ms bounds an empty one), so under a light load batches
    # stay small and go at once. Tansu holds a fetch that finds nothing for fetch_max_wait_ms even
    # when records arrive meanwhile, and its waiting fetches cost it CPU: 50 ms took an idle
    # stack's broker from 93% of a core to 67%, and a burst from 545 calls/s to 674
    # (docs/performance.md).
    batch_max_records: int = 2000
    batch_timeout_ms: int = 20
    fetch_max_wait_ms: int = 50
    relay_batch_size: int = 1000
    relay_idle_seconds: float = 0.2
    # The relay wakes on PostgreSQL's NOTIFY at every staging commit, whichever replica committed;
    # off where LISTEN cannot work (a pooler in transaction mode): it then polls alone.
    relay_listen: bool = True
    timer_interval_seconds: float = 0.5
    # Reminder (督办) at this share of a limit, before the deadline itself.
    reminder_at: float = 0.75

    # Pruning (shared/housekeeping.py): inbox ids, ended clocks and finished notifications go once
    # older than this (the redelivery horizon), a batch of rows a table at a time; the next round
    # at once while batches come full, else after the interval (0: no pruning).
    prune_after_days: float = 30
    prune_interval_seconds: float = 300
    prune_batch_rows: int = 5000

    # Dispatch: an extension (延期) may add at most this share of the time first allowed.
    extension_max_factor: float = 1.0
    # The centre's review of a department's return (派单异议审核), and how long a resolved order
    # waits for the resident's rating (回访) before it closes as unrated; both counted in working
    # time (CENTRE_COUNTING=calendar counts them on the clock, as the tests do). RETURN_REVIEW off:
    # a return moves the order at once, as before the review.
    return_review: bool = True
    return_review_within: timedelta = timedelta(hours=2)
    feedback_within: timedelta = timedelta(days=3)
    centre_counting: Literal["calendar", "working"] = "working"
    rates_interval_seconds: float = 15

    # Notify: channels (unset URLs fall back to the log channel), retries, circuit breaker, rate.
    notify_webhook_url: str | None = None
    notify_webhook_secret: SecretStr = SecretStr("change-me")
    notify_sms_url: str | None = None
    notify_max_attempts: int = 8
    notify_backoff_seconds: float = 1.0
    notify_backoff_cap_seconds: float = 300.0
    notify_breaker_failures: int = 5
    notify_breaker_cooldown_seconds: float = 30.0
    notify_rate_per_second: float = 50.0
    # Sends in flight at once per channel (a gateway answering in 200 ms takes 5 a second each).
    notify_concurrency: int = Field(default=100, ge=1)
    # No SMS to residents in these local hours (business time) unless an emergency; "" turns it off.
    notify_quiet_hours: str = "22:00-07:00"
    # A resident's contact is deleted this long after the order is closed.
    notify_contact_retention_days: float = 30

    # Intake: tagging, merging repeat reports (并单), early warning on clusters (工单预警).
    tag_threshold: float = 0.85  # services/intake/tagging.py TAG_THRESHOLD (a test checks they agree)
    # The trained classifiers (shared/classifier.py): for calls the keywords cannot tag, and for every
    # call's request type; off: keywords and cues only.
    tag_fallback: bool = True
    # Processes of intake's that read calls (services/intake/tagger.py) beside the one that applies
    # batches; 0: read in that one.
    tag_processes: int = Field(default=1, ge=0)
    merge_window_minutes: int = 24 * 60
    cluster_threshold: int = 5
    cluster_window_minutes: int = 60

    # API: the hashed keys (JSON: a list of {"name", "role", "sha256", "channel"?}), re-read when the
    # file changes; unset, no key is known and only the public GETs answer.
    api_keys_file: Path | None = None
    # Bodies beyond this are refused (413) before they are read whole.
    api_max_body_bytes: int = 64 * 1024
    # Requests per second per key (aiolimiter); beyond it, 429.
    api_rate_per_second: float = 50.0
    # The console's session cookies are signed with this (every replica the same); unset, a random
    # secret per process: a restart signs everyone out.
    console_secret: SecretStr | None = None
    console_session_hours: float = 8.0

    def port_for(self, service: str) -> int:
        return self.http_port or SERVICE_PORTS.get(service, 8080)

    def database_url_for(self, service: str) -> str:
        """The async SQLAlchemy URL of this service's own database."""
        url = make_url(self.database_url)
        if not url.database:
            url = url.set(database=f"{self.database_prefix}_{service}")
        return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
