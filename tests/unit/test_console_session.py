"""The console's sessions: signed, expiring, tied to the key they were opened with; the CSRF token
and the Origin check; the durations and rates as the pages say them."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from services.api.console import labels
from services.api.console.session import Sessions, csrf_ok, same_origin

KEY_HASH = hashlib.sha256(b"whistle-dev-centre").digest()


def test_a_session_reads_back_until_it_expires() -> None:
    sessions = Sessions(b"secret", lifetime=3600)
    cookie, issued = sessions.issue("centre", "centre", KEY_HASH, now=1000)
    read = sessions.read(cookie, now=1000 + 3599)
    assert read == issued and read.department is None and read.expires == 4600
    assert sessions.read(cookie, now=1000 + 3600) is None
    assert "whistle-dev" not in cookie and KEY_HASH.hex() not in cookie


def test_a_cookie_signed_elsewhere_or_changed_is_no_session() -> None:
    sessions = Sessions(b"secret", lifetime=3600)
    cookie, _ = sessions.issue("heat", "department:heat", KEY_HASH, now=0)
    body, signature = cookie.split(".")
    other, _ = Sessions(b"another", lifetime=3600).issue("heat", "department:heat", KEY_HASH, now=0)
    changed = signature[:-1] + ("B" if signature.endswith("A") else "A")
    for wrong in (other, f"{body}x.{signature}", f"{body}.{changed}", body, "", None, "a.b.c"):
        assert sessions.read(wrong, now=1) is None


def test_a_session_ends_when_its_key_changes_or_goes() -> None:
    sessions = Sessions(b"secret", lifetime=3600)
    _, session = sessions.issue("heat", "department:heat", KEY_HASH, now=0)
    assert session.department == "heat"
    assert sessions.still_valid(session, (KEY_HASH, "department:heat"))
    assert not sessions.still_valid(session, (hashlib.sha256(b"rotated").digest(), "department:heat"))
    assert not sessions.still_valid(session, (KEY_HASH, "department:water"))
    assert not sessions.still_valid(session, None)


def test_forms_carry_the_sessions_token_and_come_from_the_console() -> None:
    _, session = Sessions(b"secret", lifetime=60).issue("centre", "centre", KEY_HASH, now=0)
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, session.csrf + "x") and not csrf_ok(session, None)
    assert same_origin(None, "http", "127.0.0.1:8085")
    assert same_origin("http://127.0.0.1:8085", "http", "127.0.0.1:8085")
    for origin in ("http://evil.example", "null", "https://127.0.0.1:8085"):
        assert not same_origin(origin, "http", "127.0.0.1:8085")


def test_durations_and_rates_in_words() -> None:
    assert labels.duration(timedelta(days=3, hours=2, minutes=5)) == "3 天 2 小时"
    assert labels.duration(timedelta(hours=2, minutes=5)) == "2 小时 5 分"
    assert labels.duration(timedelta(minutes=4, seconds=9)) == "4 分"
    assert labels.duration(timedelta(seconds=-5)) == "0 秒"
    assert labels.percent(0.9876) == "98.8%" and labels.percent(None) == "–"
