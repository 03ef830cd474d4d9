"""API keys: known by their hash only, their roles, rotation when the file changes, a rate per key.
What each role may do: test_api_domain.py."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from services.api.keys import ApiKey, KeyFileError, KeyRing, RateLimits, digest, key_entry


def write(path: Path, entries: list[dict[str, Any]], bump: int = 0) -> Path:
    path.write_text(json.dumps(entries), encoding="utf-8")
    if bump:  # a later modification time, as a rotation made seconds later would have
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump * 1_000_000_000))
    return path


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return write(
        tmp_path / "keys.json",
        [
            key_entry("web", "channel", "web-secret"),
            key_entry("app", "channel", "app-secret", "app"),
            key_entry("heat", "department:heat", "heat-secret"),
            key_entry("desk", "centre", "desk-secret"),
        ],
    )


def test_the_file_holds_hashes_and_never_the_keys(keys_file: Path) -> None:
    text = keys_file.read_text()
    assert "web-secret" not in text and digest("web-secret") in text
    assert digest("web-secret") == hashlib.sha256(b"web-secret").hexdigest()


def test_a_presented_key_is_found_by_its_hash(keys_file: Path) -> None:
    ring = KeyRing(keys_file)
    assert ring.find("web-secret") == ApiKey("web", "channel", "web")
    assert ring.find("app-secret") == ApiKey("app", "channel", "app")
    assert ring.find("heat-secret") == ApiKey("heat", "department:heat", "web")
    assert ring.find("nope") is None and ring.find("") is None and ring.find(None) is None


def test_without_a_file_no_key_is_known() -> None:
    assert KeyRing(None).find("web-secret") is None


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ([{"name": "a", "role": "mayor", "sha256": digest("x")}], "0.role"),
        ([{"name": "a", "role": "department:Heat!", "sha256": digest("x")}], "0.role"),
        ([{"name": "a", "role": "channel", "sha256": "abc"}], "0.sha256"),
        ([{"name": "a", "role": "channel", "sha256": digest("x"), "channel": "fax"}], "0.channel"),
        ([{"name": "a", "role": "channel", "sha256": digest("x"), "key": "x"}], "0.key"),
        ([{"role": "channel", "sha256": digest("x")}], "0.name"),
        ([key_entry("a", "channel", "x"), key_entry("a", "centre", "y")], "a name is used twice"),
        ([key_entry("a", "channel", "x"), key_entry("b", "centre", "x")], "a key is listed twice"),
        ({"a": "b"}, "(top)"),
    ],
)
def test_a_file_that_cannot_be_used_stops_the_start_naming_the_entry(
    tmp_path: Path, entries: Any, problem: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(KeyFileError) as caught:
        KeyRing(path)
    assert problem in str(caught.value)
    assert digest("x") not in str(caught.value)


def test_a_missing_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="API_KEYS_FILE: no such file"):
        KeyRing(tmp_path / "absent.json")


def test_keys_rotate_when_the_file_changes(keys_file: Path) -> None:
    ring = KeyRing(keys_file)
    assert ring.find("web-secret") is not None
    write(keys_file, [key_entry("web", "channel", "new-web-secret")], bump=1)
    assert ring.find("web-secret") is None  # revoked
    assert ring.find("new-web-secret") == ApiKey("web", "channel")


def test_a_file_broken_later_leaves_no_key_valid_until_fixed(keys_file: Path) -> None:
    ring = KeyRing(keys_file)
    keys_file.write_text("[{")
    os.utime(keys_file, ns=(0, keys_file.stat().st_mtime_ns + 10**9))
    assert ring.find("web-secret") is None
    write(keys_file, [key_entry("web", "channel", "web-secret")], bump=2)
    assert ring.find("web-secret") is not None
    keys_file.unlink()
    assert ring.find("web-secret") is None
    write(keys_file, [key_entry("web", "channel", "web-secret")])
    assert ring.find("web-secret") is not None


def test_an_unchanged_file_is_not_read_again(keys_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ring = KeyRing(keys_file)
    reads = []
    original = Path.read_bytes

    def counting(self: Path) -> bytes:
        reads.append(self)
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    for _ in range(5):
        assert ring.find("web-secret") is not None
    assert reads == []


async def test_each_key_has_its_own_rate() -> None:
    limits = RateLimits(2)
    web, app = ApiKey("web", "channel"), ApiKey("app", "channel")
    assert [await limits.take(web) for _ in range(3)] == [True, True, False]
    assert await limits.take(app)  # another key is not held back by the first
