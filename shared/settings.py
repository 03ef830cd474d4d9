"""One settings object for every service and tool, read from environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from shared.reference import DEFAULT_JURISDICTION, TimeLimit, Urgency

SERVICE_PORTS = {"intake": 8081, "dispatch": 8082, "escalation": 8083, "notify": 8084}


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
    topic_replication_factor: int = 1

    # PostgreSQL server; a URL without a database name gets ``<database_prefix>_<service>``.
    database_url: str = "postgresql://postgres@127.0.0.1:5432"
    database_prefix: str = "whistle"
    db_pool_size: int = 5

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

    # Batching: a batch is one transaction and one offset commit. 2000 rather than 500: a batch's
    # fixed costs (its commit, each set-based query, the offset commit) spread over four times the
    # records; intake alone ran ~4,200 calls/s at 500, ~5,000 at 2,000 and no faster at 4,000 on
    # the bench's 2 cores. Under a light load batches stay small (batch_timeout_ms).
    batch_max_records: int = 2000
    batch_timeout_ms: int = 20
    fetch_max_wait_ms: int = 40
    relay_batch_size: int = 1000
    relay_idle_seconds: float = 0.2
    timer_interval_seconds: float = 0.5
    # Reminder (督办) at this share of a limit, before the deadline itself.
    reminder_at: float = 0.75

    # Dispatch: an extension (延期) may add at most this share of the time first allowed.
    extension_max_factor: float = 1.0
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
    # No SMS to residents in these local hours (business time) unless an emergency; "" turns it off.
    notify_quiet_hours: str = "22:00-07:00"
    # A resident's contact is deleted this long after the order is closed.
    notify_contact_retention_days: float = 30

    # Intake: tagging, merging repeat reports (并单), early warning on clusters (工单预警).
    tag_threshold: float = 0.4
    # The trained classifier for calls the keywords cannot tag (shared/classifier.py); off: keywords only.
    tag_fallback: bool = True
    merge_window_minutes: int = 24 * 60
    cluster_threshold: int = 5
    cluster_window_minutes: int = 60

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
