"""Dead letters an operator works with, through the `whistle` commands as an operator runs them
(a process of their own, against the test stack): listed and shown masked, redriven once their
cause is fixed, each redrive recorded; a topic exported as a log `whistle replay` reads."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared import contract
from tests.integration.bus import Bus, cloud_event
from tests.integration.flows import PHONE, call, dead_letters, of_order, uid
from tools.replay import read_log
from tools.stack import ROOT, Stack

pytestmark = pytest.mark.integration
RAW_PHONE = "13987654321"


async def whistle(stack: Stack, *args: str, ok: bool = True) -> str:
    """The command's stdout; it must succeed, or with ``ok=False`` fail (then its stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools",
        *args,
        cwd=ROOT,
        env=stack.child_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)  # a loaded machine: imports take seconds
    assert (process.returncode == 0) is ok, (args, out.decode(), err.decode())
    return out.decode() if ok else err.decode()


async def listed(stack: Stack, key: str) -> list[dict[str, Any]]:
    out = await whistle(stack, "deadletters", "list", "--key", key, "--json", "--last", "0")
    return [orjson.loads(line) for line in out.splitlines()]


async def test_a_dead_letter_redriven_once_its_cause_is_fixed_becomes_a_work_order(
    bus: Bus, stack: Stack, tmp_path: Path
) -> None:
    report_id = uid("GR")
    report = {
        "report_id": report_id,
        "grid_id": "HB-FLS-JH-1",  # a typo: the grid is HB-FLS-JH-01
        "worker_id": "W-0003",
        "category": "供暖",
        "description": "楼道暖气管漏水",
    }
    sent = cloud_event("grid.issue.reported", report)
    await bus.send(contract.GRID_REPORTS, report_id, sent)
    await dead_letters(bus, report_id, count=1)
    [first] = await listed(stack, report_id)
    assert first["original_topic"] == contract.GRID_REPORTS and "data.grid_id" in first["error"]
    assert first["redrives"] == 0

    # Redriven as it is, it is refused again: intake's handler refused it, so it goes with a new id
    # (the old one is in intake's inbox) that names the old one.
    out = await whistle(stack, "deadletters", "redrive", first["position"], "--operator", "duty-1")
    assert f"{first['position']}: redriven (redrive 1)" in out
    [again] = await bus.wait_for(
        lambda s: s.topic == contract.GRID_REPORTS and s.event.get("redriveof") == sent["id"]
    )
    assert again.key == report_id and again.event["id"] != sent["id"]
    assert again.headers["ce_type"] == b"grid.issue.reported"
    await dead_letters(bus, report_id, count=2)

    # Once is the rule: a second redrive of the same dead letter needs --again.
    err = await whistle(stack, "deadletters", "redrive", first["position"], ok=False)
    assert "redriven already (1x, last by duty-1" in err and "--again" in err

    # The cause is in the report itself: the operator redrives a corrected copy.
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(orjson.dumps(report | {"grid_id": "HB-FLS-JH-01"}))
    out = await whistle(
        stack, "deadletters", "redrive", first["position"], "--again", "--with-data", str(fixed)
    )
    assert "redriven with corrected data (redrive 2)" in out
    [created] = await bus.wait_for(of_order(f"WO-G-{report_id}", "workorder.created"))
    assert created.data["grid"] == "HB-FLS-JH-01" and created.data["source"] == "grid"

    letters = await listed(stack, report_id)
    assert [x["redrives"] for x in letters] == [2, 0]  # the second dead letter was never redriven
    shown = await whistle(stack, "deadletters", "show", first["position"])
    assert "redrive 1:" in shown and "by duty-1" in shown and "redrive 2:" in shown
    assert "with corrected data" in shown


async def test_dead_letters_are_shown_masked_unless_the_raw_bytes_are_asked_for(
    bus: Bus, stack: Stack, tmp_path: Path
) -> None:
    call_id = uid("DL")
    # A number of its own: deadletter.v1 keeps the raw bytes, phone and all, and the pipeline's test
    # looks for PHONE in clear on every topic but the two the contract allows.
    sent = call(
        call_id, "锦绣园", "门口路灯不亮", channel="fax", caller={"name": "孙大爷", "phone": RAW_PHONE}
    )
    await bus.send(contract.HOTLINE_CALLS, call_id, sent)
    await dead_letters(bus, call_id, count=1)
    [letter] = await listed(stack, call_id)
    assert "data.channel" in letter["error"]

    shown = await whistle(stack, "deadletters", "show", letter["position"])
    assert RAW_PHONE not in shown and "孙大爷" not in shown
    assert "139****4321" in shown and "孙**" in shown and "门口路灯不亮" in shown
    assert RAW_PHONE in await whistle(stack, "deadletters", "show", letter["position"], "--raw")
    listing = await whistle(stack, "deadletters", "list", "--topic", contract.HOTLINE_CALLS)
    assert RAW_PHONE not in listing

    # Refused before any handler saw it, the call goes with its own bytes and id once corrected.
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(orjson.dumps(sent["data"] | {"channel": "phone"}))
    await whistle(stack, "deadletters", "redrive", letter["position"], "--with-data", str(fixed))
    [created] = await bus.wait_for(of_order(f"WO-H-{call_id}", "workorder.created"))
    assert created.data["caused_by"] == sent["id"]


async def test_a_topic_exported_is_a_log_replay_reads_masked_unless_raw(
    bus: Bus, stack: Stack, tmp_path: Path
) -> None:
    call_id = uid("EX")
    await bus.send(contract.HOTLINE_CALLS, call_id, call(call_id, "海韵花园", "楼下垃圾三天没人收"))
    await bus.wait_for(of_order(f"WO-H-{call_id}", "workorder.created"))

    masked, raw = tmp_path / "masked.jsonl", tmp_path / "raw.jsonl"
    await whistle(stack, "export", contract.HOTLINE_CALLS, "--out", str(masked))
    await whistle(stack, "export", contract.HOTLINE_CALLS, "--out", str(raw), "--raw")
    [ours] = [r for r in read_log(masked) if r.key == call_id]
    assert ours.topic == contract.HOTLINE_CALLS and isinstance(ours.event, dict)
    assert ours.event["data"]["caller"] == {"name": "孙**", "phone": "138****5678"}
    assert PHONE not in masked.read_text(encoding="utf-8")
    [clear] = [r for r in read_log(raw) if r.key == call_id]
    assert isinstance(clear.event, dict) and clear.event["data"]["caller"]["phone"] == PHONE

    # Replayed, the call is the same event again: published, and taken as a duplicate.
    one = tmp_path / "one.jsonl"
    one.write_text(
        next(line for line in masked.read_text(encoding="utf-8").splitlines() if call_id in line) + "\n"
    )
    assert "published 1 events" in await whistle(stack, "replay", str(one))
    await bus.wait_for(lambda s: s.topic == contract.HOTLINE_CALLS and s.key == call_id, count=2)

    err = await whistle(stack, "export", "no.such.topic.v1", ok=False)
    assert "no topic 'no.such.topic.v1'" in err
