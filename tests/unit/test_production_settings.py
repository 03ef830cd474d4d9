"""Production refuses what development tolerates: notify without a real channel does not start."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from services.notify import app, channels
from shared.settings import Settings

REAL = {
    "notify_sms_url": "https://sms.example.gov.cn/send",
    "notify_webhook_url": "https://hooks.example.gov.cn/whistle",
    "notify_webhook_secret": SecretStr("a-real-secret"),
}


def test_development_falls_back_to_the_log_channel() -> None:
    assert Settings().environment == "development"
    assert channels.production_problems(Settings()) == []
    app.create_app(Settings())


@pytest.mark.parametrize(
    ("missing", "said"),
    [
        ({"notify_sms_url": None}, "NOTIFY_SMS_URL"),
        ({"notify_webhook_url": None}, "NOTIFY_WEBHOOK_URL"),
        ({"notify_webhook_secret": SecretStr("change-me")}, "NOTIFY_WEBHOOK_SECRET"),
    ],
)
def test_production_without_a_channel_refuses_to_start(missing: dict[str, object], said: str) -> None:
    settings = Settings(environment="production", **(REAL | missing))  # type: ignore[arg-type]
    with pytest.raises(channels.NoChannel, match=said):
        app.create_app(settings)


def test_production_with_real_channels_starts() -> None:
    settings = Settings(environment="production", **REAL)  # type: ignore[arg-type]
    assert channels.production_problems(settings) == []
    app.create_app(settings)


def test_the_environment_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("MIGRATE_ON_START", "false")
    s = Settings()
    assert (s.environment, s.http_host, s.migrate_on_start) == ("production", "0.0.0.0", False)
    monkeypatch.setenv("ENVIRONMENT", "prod")
    with pytest.raises(ValueError, match="environment"):
        Settings()
