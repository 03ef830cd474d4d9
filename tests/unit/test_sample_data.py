"""The committed sample data is what ``tools/yantai/*.yaml`` make (``python -m tools.sample_data``),
and the builder refuses sources it would otherwise turn into wrong data."""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.contract import INBOUND, CloudEvent
from tools.sample_data import COMMAND, JURISDICTION_PATH, LOG_PATH, ROOT, SOURCE, SourceError, app, build


@pytest.fixture(scope="module")
def built() -> dict[Path, str]:
    return build()


@pytest.mark.parametrize("path", [JURISDICTION_PATH, LOG_PATH], ids=lambda p: p.name)
def test_the_committed_file_is_what_the_sources_make(built: dict[Path, str], path: Path) -> None:
    expected = built[path].encode("utf-8")
    committed = path.read_bytes() if path.is_file() else b""
    if committed != expected:
        diff = difflib.unified_diff(
            committed.decode("utf-8", errors="replace").splitlines(),
            expected.decode("utf-8").splitlines(),
            "committed",
            "built",
            lineterm="",
            n=0,
        )
        pytest.fail(
            f"{path.relative_to(ROOT)} is not what {SOURCE.relative_to(ROOT)}/*.yaml make: "
            f"run `{COMMAND}` from the repository root and commit the result.\n" + "\n".join(list(diff)[:40])
        )


def test_the_check_command_agrees() -> None:
    result = CliRunner().invoke(app, ["--check"])
    assert result.exit_code == 0, result.output


def test_the_morning_keeps_to_the_contract(built: dict[Path, str]) -> None:
    for line in built[LOG_PATH].splitlines():
        record = json.loads(line)
        event = CloudEvent.model_validate(record["event"])
        assert record["key"] == event.subject
        INBOUND[(record["topic"], event.type)].model_validate(event.data)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SOURCE, tmp_path / "yantai"))


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_a_copy_of_the_sources_builds_the_same(source: Path, built: dict[Path, str]) -> None:
    assert build(source) == built


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        # PyYAML would keep the second one silently.
        ("departments.yaml", "  gongan: 公安分局\n", "  gongan: 公安分局\n  gongan: 交警\n", "written twice"),
        # 10:06 unquoted is a base-60 number in YAML 1.1.
        ("morning.yaml", 'at: "10:06"', "at: 10:06", "at: Input should be a valid string"),
        ("jurisdiction.yaml", '"2026-09-27"', "2026-09-27", "calendar.workdays.1"),
        ("places.yaml", "- {name: 夹河新村, grid: 4}", "- {name: 夹河新村, grid: 4, pm: x}", "Extra inputs"),
        ("duties.yaml", "    community: {lead: heat}\n", "", "duties of heating: levels"),
        ("duties.yaml", "  heating:\n", "  heatng:\n", "unknown categories: heatng"),
        (
            "categories.yaml",
            "name: 电梯\n  tier: property",
            "name: 电梯\n  tier: estate",
            "5.tier: Input should be",
        ),
        (
            "places.yaml",
            "{name: 菁华公寓, aliases: [菁华, 青华公寓]",
            "{name: 菁华公寓, aliases: [华]",
            "too short",
        ),
        ("morning.yaml", "place: 中海国际\n", "place: 海景苑\n", "neither the text nor the address"),
        ("morning.yaml", "category: 消防隐患", "category: 消防", "unknown category '消防'"),
    ],
)
def test_a_wrong_source_is_refused(source: Path, file: str, old: str, new: str, message: str) -> None:
    edit(source / file, old, new)
    with pytest.raises(ValueError, match=message):
        build(source)


def test_a_source_error_names_the_file(source: Path) -> None:
    edit(source / "jurisdiction.yaml", "timezone: Asia/Shanghai\n", "")
    with pytest.raises(SourceError, match=r"jurisdiction\.yaml: timezone: Field required"):
        build(source)
