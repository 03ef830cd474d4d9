"""Loading and validating a jurisdiction's reference data."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.reference import (
    DEFAULT_JURISDICTION,
    Jurisdiction,
    ReferenceDataError,
    load_jurisdiction,
    next_level,
)


def test_sample_jurisdiction_loads(ref: Jurisdiction) -> None:
    assert ref.format == "whistle.jurisdiction/1"
    assert ref.time_limits["emergency"].accept == timedelta(minutes=30)
    assert ref.time_limits["normal"].resolve == timedelta(days=7)
    assert ref.triage == {"community": "community_desk", "street": "street_desk", "district": "district_desk"}
    assert "other" in ref.category_by_code


def test_sample_lookups(ref: Jurisdiction) -> None:
    street, community, grid = ref.places_by_grid["HB-FLS-JH-03"]
    assert (street.name, community.name, grid.name) == ("福莱山街道", "夹河社区", "第三网格")
    assert ref.department_by_code["heat"].kind == "utility"
    assert ref.duty_by_key[("gas", "street")].assist == ("street_desk", "xiaofang")


@pytest.mark.parametrize(
    ("key", "code"), [("heating", "heating"), ("HEATING", "heating"), ("供暖", "heating"), (" 燃气 ", "gas")]
)
def test_find_category_by_code_or_name(ref: Jurisdiction, key: str, code: str) -> None:
    found = ref.find_category(key)
    assert found is not None and found.code == code


def test_find_category_unknown(ref: Jurisdiction) -> None:
    assert ref.find_category("weather") is None


# ---- broken files -----------------------------------------------------------------------------


def minimal() -> dict[str, Any]:
    """A small valid jurisdiction to break one field at a time."""
    return {
        "format": "whistle.jurisdiction/1",
        "version": "t1",
        "name": "测试辖区",
        "districts": [
            {
                "code": "d",
                "name": "测试区",
                "streets": [
                    {
                        "code": "s",
                        "name": "福莱山街道",
                        "communities": [
                            {
                                "code": "c",
                                "name": "夹河社区",
                                "grids": [{"code": "G1", "name": "第一网格"}],
                                "compounds": [
                                    {"name": "菁华公寓", "grid": "G1", "property_company": "yeda_wuye"}
                                ],
                            },
                            {
                                "code": "c2",
                                "name": "墨翠府社区",
                                "grids": [{"code": "G2", "name": "第一网格"}],
                            },
                        ],
                    }
                ],
            }
        ],
        "departments": [
            {"code": "heat", "name": "热力公司", "kind": "utility"},
            {"code": "yeda_wuye", "name": "业达物业", "kind": "property"},
            {"code": "community_desk", "name": "社区工作站", "kind": "desk"},
            {"code": "street_desk", "name": "街道综治中心", "kind": "desk"},
        ],
        "categories": [
            {"code": "heating", "name": "供暖", "tier": "community", "keywords": ["暖气"]},
            {"code": "other", "name": "其他", "tier": "community"},
        ],
        "duties": [{"category": "heating", "level": "community", "lead": "heat"}],
        "time_limits": {
            "emergency": {"accept": "PT30M", "resolve": "PT24H"},
            "urgent": {"accept": "PT2H", "resolve": "P3D"},
            "normal": {"accept": "PT24H", "resolve": "P7D"},
        },
        "triage": {"community": "community_desk", "street": "street_desk"},
    }


def write(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / "j.json"
    path.write_text(json.dumps(body, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def load_error(tmp_path: Path, body: dict[str, Any]) -> str:
    with pytest.raises(ReferenceDataError) as info:
        load_jurisdiction(write(tmp_path, body))
    return str(info.value)


def test_minimal_file_loads(tmp_path: Path) -> None:
    assert load_jurisdiction(write(tmp_path, minimal())).name == "测试辖区"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="no such reference-data file"):
        load_jurisdiction(tmp_path / "absent.json")


def test_invalid_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "j.json"
    path.write_text(
        '{\n "format": "whistle.jurisdiction/1",\n "version": "t1"\n "name": "x"\n}\n', encoding="utf-8"
    )
    with pytest.raises(ReferenceDataError) as info:
        load_jurisdiction(path)
    assert str(path) in str(info.value)
    assert "line 4" in str(info.value)


def test_compound_outside_its_community(tmp_path: Path) -> None:
    body = minimal()
    body["districts"][0]["streets"][0]["communities"][0]["compounds"][0]["grid"] = "G2"
    error = load_error(tmp_path, body)
    assert "districts[0].streets[0].communities[0].compounds[0].grid" in error
    assert "'G2' is not a grid of 夹河社区" in error


def test_compound_with_unknown_property_company(tmp_path: Path) -> None:
    body = minimal()
    body["districts"][0]["streets"][0]["communities"][0]["compounds"][0]["property_company"] = "wanke_wuye"
    error = load_error(tmp_path, body)
    assert "compounds[0].property_company: unknown department 'wanke_wuye'" in error


def test_grid_code_used_twice(tmp_path: Path) -> None:
    body = minimal()
    body["districts"][0]["streets"][0]["communities"][1]["grids"][0]["code"] = "G1"
    assert "communities[1].grids: grid code 'G1' is used twice" in load_error(tmp_path, body)


def test_duty_with_unknown_department(tmp_path: Path) -> None:
    body = minimal()
    body["duties"][0]["assist"] = ["xiaofang"]
    assert "duties[0]: unknown department 'xiaofang'" in load_error(tmp_path, body)


def test_duty_with_unknown_category(tmp_path: Path) -> None:
    body = minimal()
    body["duties"].append({"category": "gas", "level": "community", "lead": "heat"})
    assert "duties[1].category: unknown category 'gas'" in load_error(tmp_path, body)


def test_missing_other_category(tmp_path: Path) -> None:
    body = minimal()
    body["categories"] = [c for c in body["categories"] if c["code"] != "other"]
    assert "categories: the fallback category 'other' is missing" in load_error(tmp_path, body)


def test_unknown_triage_desk(tmp_path: Path) -> None:
    body = minimal()
    body["triage"]["street"] = "nobody"
    assert "triage.street: unknown department 'nobody'" in load_error(tmp_path, body)


def test_missing_time_limit(tmp_path: Path) -> None:
    body = minimal()
    del body["time_limits"]["urgent"]
    assert "time_limits.urgent: missing" in load_error(tmp_path, body)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(format="whistle.jurisdiction/2"), "format"),
        (lambda b: b["departments"][0].update(code="Heat Co"), "departments.0.code"),
        (lambda b: b["categories"][0].update(tier="city"), "categories.0.tier"),
        (lambda b: b["departments"][0].update(phone="0535-1234567"), "departments.0.phone"),  # typo guard
    ],
)
def test_schema_errors_name_the_field(tmp_path: Path, mutate: Any, field: str) -> None:
    body = minimal()
    mutate(body)
    assert f"{field}:" in load_error(tmp_path, body)


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    body = minimal()
    body["duties"][0]["lead"] = "nobody"
    body["categories"] = [c for c in body["categories"] if c["code"] != "other"]
    error = load_error(tmp_path, body)
    assert "duties[0]: unknown department 'nobody'" in error
    assert "'other' is missing" in error


def test_default_path_points_at_bundled_sample() -> None:
    assert DEFAULT_JURISDICTION.name == "yantai.json" and DEFAULT_JURISDICTION.is_file()


@pytest.mark.parametrize(
    ("level", "up"),
    [
        ("property", "community"),
        ("grid", "community"),
        ("community", "street"),
        ("street", "district"),
        ("district", None),
    ],
)
def test_next_level_ladder(level: Any, up: str | None) -> None:
    assert next_level(level) == up
