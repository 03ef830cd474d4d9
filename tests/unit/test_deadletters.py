"""Dead letters and exported logs as an operator sees them: masked, and redriven with the bytes and
id that will be taken (tools.deadletters, tools.topiclog)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from shared.contract import DeadLetter
from tools.deadletters import DeadLetterError, Letter, parse_position, redrive_bytes
from tools.replay import Record
from tools.topiclog import Read, log_lines, mask, mask_raw

PHONE = "13812345678"
EVENT = {
    "specversion": "1.0",
    "id": "call-1",
    "source": "hotline/yantai-12345",
    "type": "hotline.call.received",
    "time": "2026-11-21T08:15:00+08:00",
    "data": {
        "call_id": "12345-1",
        "channel": "fax",
        "content": f"暖气不热，回电{PHONE}",
        "caller": {"name": "孙大爷", "phone": PHONE},
    },
}


def letter(
    raw: bytes, error: str = "invalid hotline.call.received: data.channel: Input should be …"
) -> Letter:
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode(), "base64"
    data = DeadLetter(
        original_topic="hotline.calls.v1",
        original_partition=2,
        original_offset=40,
        original_key="12345-1",
        error=error,
        raw=text,
        raw_encoding=encoding,
    )
    return Letter(3, 17, "dl-1", "2026-11-21T08:15:01+08:00", "whistle/intake", data)


def test_a_message_is_masked_by_its_keys_and_the_phones_in_its_text() -> None:
    masked = mask(EVENT)
    assert masked["data"]["caller"] == {"name": "孙**", "phone": "138****5678"}
    assert masked["data"]["content"] == "暖气不热，回电138****5678"
    assert masked["id"] == "call-1" and masked["time"] == EVENT["time"]
    assert mask({"phone": 13812345678, "count": 13812345678}) == {
        "phone": "138****5678",
        "count": 13812345678,
    }


def test_raw_text_is_masked_whether_it_parses_or_not() -> None:
    assert PHONE not in mask_raw(orjson.dumps(EVENT).decode()) and "孙大爷" not in mask_raw(
        orjson.dumps(EVENT).decode()
    )
    broken = '{"caller": {"name": "孙大爷", "phone": "5551234"}, "content": "回电 138-1234-5678'
    shown = mask_raw(broken)
    assert "孙大爷" not in shown and "5551234" not in shown and "1234-5678" not in shown
    assert shown.startswith('{"caller": {"name": "孙**", "phone": "*****34"}')
    assert mask_raw(base64.b64encode(b"\xff\xfe" * 6).decode(), "base64").startswith("<12 bytes, not UTF-8")


def test_a_dead_letter_of_a_dead_letter_has_its_inner_raw_masked() -> None:
    inner = {
        "original_topic": "hotline.calls.v1",
        "raw": orjson.dumps(EVENT).decode(),
        "raw_encoding": "utf-8",
    }
    outer = mask({"type": "deadletter.recorded", "data": inner})
    assert PHONE not in orjson.dumps(outer).decode() and "孙**" in outer["data"]["raw"]


def test_a_dead_letter_is_shown_masked_unless_raw() -> None:
    found = letter(orjson.dumps(EVENT))
    masked, clear = found.shown(raw=False), found.shown(raw=True)
    assert PHONE not in orjson.dumps(masked).decode() and masked["position"] == "3:17"
    assert orjson.loads(clear["raw"]) == EVENT
    assert found.summary()["original_topic"] == "hotline.calls.v1"


def test_positions_are_partition_and_offset() -> None:
    assert parse_position("3:17") == (3, 17)
    for wrong in ("17", "3:x", "a:b:c"):
        with pytest.raises(DeadLetterError, match="PARTITION:OFFSET"):
            parse_position(wrong)


def test_a_message_refused_before_any_handler_is_redriven_byte_for_byte() -> None:
    raw = orjson.dumps(EVENT) + b" "  # the bytes as they came, spacing and all
    assert redrive_bytes(letter(raw), 1) == (raw, "call-1")
    assert redrive_bytes(letter(b"\xff\xfe"), 1) == (b"\xff\xfe", None)  # not even UTF-8: as it was


def test_a_message_a_handler_refused_gets_a_new_id_naming_the_old() -> None:
    found = letter(orjson.dumps(EVENT), error="refused hotline.call.received: data.grid_id: unknown grid")
    first, first_id = redrive_bytes(found, 1)
    _, second_id = redrive_bytes(found, 2)
    event: dict[str, Any] = orjson.loads(first)
    assert event["id"] == first_id != "call-1" and event["redriveof"] == "call-1"
    assert event["data"] == EVENT["data"]
    assert second_id not in (first_id, "call-1")
    assert redrive_bytes(found, 1) == (first, first_id)  # the same redrive again: the same id, a duplicate


def test_corrected_data_replaces_the_events_data() -> None:
    fixed = EVENT["data"] | {"channel": "phone"}  # type: ignore[operator]
    value, event_id = redrive_bytes(letter(orjson.dumps(EVENT)), 1, fixed)
    assert orjson.loads(value) == EVENT | {"data": fixed} and event_id == "call-1"
    with pytest.raises(DeadLetterError, match="not a JSON object"):
        redrive_bytes(letter(b"not json"), 1, fixed)


def test_an_exported_topic_is_lines_replay_reads() -> None:
    records = [
        Read(0, 0, 1, "12345-1", orjson.dumps(EVENT)),
        Read(1, 0, 2, "k", b"not json"),
        Read(1, 1, 3, "k", None),
        Read(1, 2, 4, "k", b"\xff"),
    ]
    masked = list(log_lines("hotline.calls.v1", records))
    assert masked[2:] == [None, None]  # a tombstone and bytes that are not UTF-8 have no line
    first = orjson.loads(masked[0] or "")
    record = Record(first["topic"], first["key"], first["event"])
    assert record.topic == "hotline.calls.v1" and record.key == "12345-1" and PHONE not in (masked[0] or "")
    assert orjson.loads(masked[1] or "")["event"] == "not json"
    [clear] = [line for line in log_lines("hotline.calls.v1", records[:1], raw=True) if line]
    assert orjson.loads(clear)["event"] == EVENT
