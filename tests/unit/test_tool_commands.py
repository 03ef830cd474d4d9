"""The standalone tools' commands (``python -m tools.accuracy``, ``python -m tools.large_jurisdiction``)
take the options they always took."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tools import accuracy, large_jurisdiction

HOLDOUT = accuracy.ROOT / "tests" / "data" / "holdout_calls.jsonl"


def test_accuracy_lists_its_options() -> None:
    result = CliRunner().invoke(accuracy.app, ["--help"])
    assert result.exit_code == 0, result.output
    for option in ("--data", "--reference", "--examples", "--training", "--folds", "--keywords-only"):
        assert option in result.output


def test_accuracy_with_keywords_only_reports_on_the_set() -> None:
    result = CliRunner().invoke(
        accuracy.app, ["--data", str(HOLDOUT), "--keywords-only", "--examples", "0", "--folds", "3"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("labelled calls: 100\n")
    assert "no classifier" in result.output


def test_accuracy_wants_at_least_two_folds() -> None:
    result = CliRunner().invoke(accuracy.app, ["--folds", "1"])
    assert result.exit_code == 2
    assert "--folds" in result.output


def test_large_jurisdiction_writes_the_copies(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "large.json"
    result = CliRunner().invoke(large_jurisdiction.app, ["--copies", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text(encoding="utf-8"))["name"].endswith("×2 (synthetic)")
    assert result.output.startswith(f"{out}: ")


def test_large_jurisdiction_needs_out() -> None:
    result = CliRunner().invoke(large_jurisdiction.app, ["--copies", "2"])
    assert result.exit_code == 2
    assert "--out" in result.output


async def test_the_bench_tells_its_progress_as_calls_reach_their_outcome() -> None:
    import asyncio

    from shared.settings import Settings
    from tools.bench import Watcher

    watcher = Watcher(Settings(), "run")
    told: list[int] = []

    def seen(call: str) -> None:  # as the watcher's consumer notes an outcome
        watcher.first_seen[call] = 0.0
        watcher.changed.set()

    def advance(done: int) -> None:
        told.append(done)
        if done < 2:  # the next outcome arrives once the watcher waits again
            asyncio.get_running_loop().call_soon(seen, ("a", "b")[done])

    await watcher.wait(["a", "b"], limit=5, advance=advance)
    assert told == [0, 1, 2]


def test_the_dead_letter_commands_say_what_they_take() -> None:
    import structlog

    from tools.cli import app

    saved = structlog.get_config()  # the commands send log lines to stderr: put back the tests' own
    try:
        result = CliRunner().invoke(app, ["deadletters", "redrive", "--help"])
        assert result.exit_code == 0 and "--again" in result.output and "--with-data" in result.output
        result = CliRunner().invoke(app, ["deadletters", "redrive", "1:2", "3:4", "--with-data", __file__])
        assert result.exit_code == 1
    finally:
        structlog.configure(**saved)


def test_accuracy_reports_a_development_set_in_halves() -> None:
    dev = accuracy.ROOT / "tests" / "data" / "dev_residents.jsonl"
    result = CliRunner().invoke(
        accuracy.app, ["--data", str(dev), "--halves", "--keywords-only", "--examples", "0"]
    )
    assert result.exit_code == 0, result.output
    assert "dev_residents.jsonl, tuning half, read and tuned on:\nlabelled calls: 140\n" in result.output
    assert "dev_residents.jsonl, check half, its calls not shown:\nlabelled calls: 127\n" in result.output
    assert "missed emergencies:" not in result.output.split("check half")[1]


def test_the_bench_sets_its_figures_beside_the_raw_rate_but_not_its_ratios() -> None:
    from tools.bench import vs_raw

    report = {
        "raw_produce_msgs_per_s": 50_000,
        "burst": {"calls_per_s": 500.0},
        "steady": {"latency_ms_p99": 100.0},
        "preloaded_year": {"burst": {"calls_per_s": 550.0}, "ratio_to_empty": {"burst_calls_per_s": 1.1}},
    }
    ratios = vs_raw(report)
    assert ratios["burst.calls_per_s"] == 0.01 and ratios["preloaded_year.burst.calls_per_s"] == 0.011
    assert ratios["steady.latency_ms_p99"] == 5000.0
    assert not [key for key in ratios if "ratio_" in key]
