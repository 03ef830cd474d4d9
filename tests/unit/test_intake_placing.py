"""Where the problem lies when a call names several places: not where the caller works or was."""

from __future__ import annotations

import pytest

from services.intake.placing import Place, place_order
from services.intake.tagging import tag_category
from shared.reference import Jurisdiction


@pytest.mark.parametrize(
    ("text", "compound"),
    [
        # the workplace named before the home
        ("暖汽片子一点不热乎，我在万科城上班，家住松霞小区3号楼", "松霞小区"),
        ("我单位在金城公寓，家在锦绣华庭，俺家那个单元的下水道堵了三天了", "锦绣华庭"),
        ("在锦绣华庭那边上班的，我家是天马相城的，小区的监控坏了大半年了物业也不修", "天马相城"),
        # the home named before the workplace
        ("家住河口花园，我在滨河湾上班，我们楼的暖气从开始就没热过", "河口花园"),
        # a place only visited
        ("我家在翠湖苑，前两天去墨翠府看我妈，回来发现俺们单元门口那盏路灯坏了", "翠湖苑"),
        # the complaint's own clause names the place: it wins over the home
        ("我家住初家小区，今天在东城国际门口看见一个井盖没了", "东城国际"),
        ("我从福新花园搬到新华苑了，新华苑楼下天天有人烧烤喝酒吵到半夜", "新华苑"),
    ],
)
def test_the_problems_place_wins(ref: Jurisdiction, text: str, compound: str) -> None:
    focus = tag_category(text, None, ref).focus
    assert place_order(None, None, text, ref, focus).compound == compound


def test_one_place_is_placed_as_before(ref: Jurisdiction) -> None:
    assert place_order(None, None, "我在万科城上班，单位楼下的路灯坏了", ref).compound == "万科城"


def test_the_address_still_wins_over_the_text(ref: Jurisdiction) -> None:
    place = place_order(None, "菁华公寓3号楼", "我家住松霞小区，在菁华公寓上班", ref)
    assert place == Place("福莱山街道", "夹河社区", "HB-FLS-JH-03", "菁华公寓", "yeda_wuye")


def test_without_markers_the_first_place_named_wins(ref: Jurisdiction) -> None:
    assert place_order(None, None, "万科城和松霞小区都停水了", ref).compound == "万科城"
