"""Intake's tagger reads the complaint, not just the words: symptoms, dialect, slips of the
speech-to-text, what is only mentioned, and danger in any wording."""

from __future__ import annotations

import pytest

from services.intake.lexicon import Lexicon
from services.intake.tagging import (
    CONTEXT_WEIGHT,
    PRIOR,
    WORDS_ALONE_THRESHOLD,
    lexicon_for,
    read,
    tag_category,
)
from shared.classifier import CALM, EMERGENCY, Example, emergency_model
from shared.reference import Jurisdiction

# The words alone, without the classifier: at the threshold they were tuned for.
WORDS = WORDS_ALONE_THRESHOLD


@pytest.fixture(scope="module")
def lexicon(ref: Jurisdiction) -> Lexicon:
    return lexicon_for(ref)


# ---- what the problem is ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # the symptom without the official word
        ("楼顶那个排风扇嗡嗡的白天黑夜不停", "noise"),
        ("对门装了个摄像头正冲着我家门口", "neighbour_dispute"),
        ("垃圾车来了把分好的几个桶全倒进一个车里拉走了", "waste_sorting"),
        ("有人从五楼窗户扯了根电线下来给电动车充电", "fire_hazard"),
        ("商场后面的安全门被焊死了", "fire_hazard"),
        ("家里那几组散热片从上到下都是凉的", "heating"),
        # dialect, read as the standard words
        ("俺们单元的梯子天天坏", "elevator"),
        ("恁们咋还不来人修修，俺家一宿一宿睡不着，楼下工地打桩", "noise"),
        # slips of the speech-to-text, heard by their sound
        ("电题坏了三天了", "elevator"),
        ("俺们这片又听电了", "power_supply"),
        ("俺们那条街的路登坏了一冬了", "streetlight"),
        ("楼道里拉鸡堆了好几天没人清", "sanitation"),
        ("有人早上溜狗不管狗屎", "dog_control"),
    ],
)
def test_the_tagger_reads_residents_words(ref: Jurisdiction, text: str, code: str) -> None:
    tag = tag_category(text, None, ref, WORDS)
    assert tag.category.code == code
    assert tag.confidence >= WORDS


@pytest.mark.parametrize(
    ("text", "code"),
    [
        # who did not help is a mention; the lift is the complaint
        ("电梯坏了三天，物业说他们也不知道，物业也不管", "elevator"),
        # a fee that names rubbish collection is the property company's bill
        ("物业收的垃圾清运费一年比一年高，问他们收费依据也不给看", "property_service"),
        # the office a swindler pretended to be
        ("有人冒充燃气公司的上门，说要换报警器，收了我妈三百块", "public_security"),
        ("有人打电话说是社保局的，让我把钱转到安全账户", "public_security"),
        # a call made before, about something else
        ("客厅的暖气片接口往外滴水，上回反映停水的事也一直没人回", "heating"),
        # praise names the department it thanks
        ("上次反映的楼道灯的事已经修好了，谢谢你们", "other"),
    ],
)
def test_the_complaint_outweighs_what_is_only_mentioned(ref: Jurisdiction, text: str, code: str) -> None:
    assert tag_category(text, None, ref, WORDS).category.code == code


def test_a_mention_counts_for_less(ref: Jurisdiction) -> None:
    plain, mentioned = read("燃气公司", ref), read("冒充燃气公司", ref)
    assert mentioned.scores["gas"] == pytest.approx(plain.scores["gas"] * CONTEXT_WEIGHT)


def test_the_more_it_says_the_surer_the_tagger(ref: Jurisdiction) -> None:
    """PRIOR: one short word alone is not sure of itself; the confidence grows with the evidence."""
    sure = [
        tag_category(text, None, ref, WORDS).confidence
        for text in ("门口那个灯", "门口那个路灯", "门口路灯不亮")
    ]
    assert sure == pytest.approx([1 / (1 + PRIOR), 2 / (2 + PRIOR), 4 / (4 + PRIOR)])


def test_mixed_evidence_is_less_sure_and_goes_to_triage_without_the_classifier(ref: Jurisdiction) -> None:
    tag = tag_category("暖气、噪音、停水都有问题", None, ref, WORDS)  # 2 of 6, three ways
    assert tag.confidence < WORDS
    assert tag.category.code == "other"


def test_the_focus_is_the_clause_of_the_complaint(ref: Jurisdiction) -> None:
    tag = tag_category("我家住初家小区，今天在东城国际门口看见一个井盖没了", None, ref, WORDS)
    assert tag.category.code == "road"
    assert tag.focus == "今天在东城国际门口看见一个井盖没了"


# ---- danger -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "emergency"),
    [
        # a person trapped, in any wording, dialect or slip
        ("梯子卡在七楼和八楼中间了，俺老伴在里头出不来", "elevator", True),
        ("电题停在五楼不动了，里面关着一个小孩，灯也不亮", "elevator", True),
        # gas smelled
        ("一进楼道就一股臭鸡蛋味，越往上越浓，俺都不敢开灯", "gas", True),
        # wires sparking
        ("楼道里的电表箱噼里啪啦直冒火星子", "power_supply", True),
        # water into the power room, told in two parts
        ("下大雨，水顺着门缝流进楼下的配电房了", "power_supply", True),
        # fire and smoke
        ("楼道里冒黑烟了，好像是谁家电动车烧起来了", "fire_hazard", True),
        # someone collapsed
        ("楼下的老大爷在楼道口晕过去了，叫也叫不醒", "elderly_care", True),
        # feared, past or a consequence: no emergency, still the problem
        ("楼道里塞满了纸壳子，一着火跑都跑不出去", "fire_hazard", False),
        ("楼前那棵大杨树歪了，刮大风怕砸着人", "greenery", False),
        ("家里燃气灶打不着火了，燃气表里还有钱", "gas", False),
    ],
)
def test_danger_is_read_from_the_situation(ref: Jurisdiction, text: str, code: str, emergency: bool) -> None:
    tag = tag_category(text, None, ref, WORDS)
    assert (tag.category.code, tag.emergency) == (code, emergency)


def test_danger_at_triage_is_still_an_emergency(ref: Jurisdiction) -> None:
    reading = read("不知道怎么回事，屋里有股煤气味", ref)
    assert reading.is_dangerous("other")
    assert reading.is_dangerous("heating")  # an alarm: whatever desk the order goes to


def test_the_categorys_own_danger_stays_its_own(ref: Jurisdiction) -> None:
    reading = read("楼上装修砸墙砸了半个月，中午也不休息", ref)
    assert not reading.is_dangerous("noise")
    assert reading.is_dangerous("facade")  # 砸 would be, in a facade call


def test_the_hint_keeps_the_danger(ref: Jurisdiction) -> None:
    tag = tag_category("电梯里困着人，物业还没来", "物业服务", ref)
    assert (tag.category.code, tag.confidence, tag.emergency) == ("property_service", 1.0, True)


# ---- the lexicon --------------------------------------------------------------------------------


def test_dialect_is_read_as_standard_words(lexicon: Lexicon) -> None:
    assert lexicon.normalise("俺家梯子坏了，恁们咋不管") == "我家电梯坏了，你们怎么不管"
    assert lexicon.normalise("没有方言的话") == "没有方言的话"


def test_a_slip_keeps_a_character_of_the_word(lexicon: Lexicon) -> None:
    assert lexicon.sound("电题") == lexicon.sound("电梯") == lexicon.sound("店梯")
    assert lexicon.anchored("电题", ("电梯",))
    assert not lexicon.anchored("问问", ("嗡嗡",))  # the same sound, not the same word
    assert not lexicon.anchored("下的", ("瞎的",))  # 的 anchors nothing


def test_a_keyword_never_hides_a_danger_word_that_overlaps_it(ref: Jurisdiction) -> None:
    # 自来水 (a keyword) and 水管爆了 (a danger word) share 水
    assert read("小区门口的自来水管爆了，水呼呼往外冒", ref).is_dangerous("water_supply")


def test_the_lexicon_is_built_once_per_jurisdiction(ref: Jurisdiction) -> None:
    assert lexicon_for(ref) is lexicon_for(ref)


def test_reading_is_pure(ref: Jurisdiction) -> None:
    text = "电题停在五楼不动了，里面关着一个小孩"
    assert read(text, ref) == read(text, ref)


def test_the_settings_default_is_the_taggers_threshold() -> None:
    from services.intake.tagging import TAG_THRESHOLD
    from shared.settings import Settings

    assert Settings().tag_threshold == TAG_THRESHOLD


def test_the_emergency_model_makes_an_emergency_the_words_did_not(ref: Jurisdiction) -> None:
    """A danger no list holds (a child outside the balcony rail) is the emergency model's to see;
    asked only when the words find none, and only from EMERGENCY_THRESHOLD."""
    alarm = emergency_model(
        [
            Example("孩子爬到阳台栏杆外面了，吓死人了", EMERGENCY),
            Example("邻居家孩子爬到窗户外面了", EMERGENCY),
            Example("楼下的路灯不亮了", CALM),
            Example("小区的草好久没人修剪了", CALM),
        ]
    )
    text = "六楼孩子爬到栏杆外面了"
    assert not read(text, ref).danger
    assert not tag_category(text, None, ref).emergency
    assert tag_category(text, None, ref, alarm=alarm).emergency
    assert not tag_category("路灯不亮了", None, ref, alarm=alarm).emergency
