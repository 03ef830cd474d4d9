"""诉求类型: the type a call is tagged with, from its words, the request type model and its category;
the operator's type; a grid report's type; and the floors on the labelled set and on the check
half of the development set (tests/data/dev_request_types.jsonl)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from services.intake.domain import grid_request_type, request_type_of, tag_category, tag_request_type
from shared.classifier import TYPE_EXAMPLES, CategoryModel, Example, load_examples, type_model
from shared.contract import REQUEST_TYPES
from shared.reference import Jurisdiction
from tools.accuracy import (
    DEFAULT_SET,
    DEV_TYPES,
    LabelledSetError,
    dev_halves,
    evaluate_request_types,
    load_labelled,
    load_typed,
    type_examples,
)

# On the labelled set, whose calls the cues were tuned on, with the cues alone (no model) and the
# categories of the words alone: 88.7% when written; 87.7% since the cues were made general.
TYPE_TARGET = 0.87
TYPE_PER_TYPE_TARGET = 0.8  # the weakest type when written: inquiry 82%
# With the request type model (cross-validated over 5 folds: never judged on a call it was trained
# on) and the categories of the words alone: 86.7% when the model came (90.0% before it, by cues
# tuned on these very calls: generalising cost a little memorisation); the weakest, complaint, 84.3%.
MODEL_TARGET = 0.85
MODEL_PER_TYPE_TARGET = 0.8
# The development set's check half, never read nor trained on: 78.9% when the model came (46.7% by
# the cues and the category before it, 52.8% by the general cues alone); its weakest type, report,
# 68.8% (21.9% before).
DEV_CHECK_TARGET = 0.77
DEV_CHECK_PER_TYPE_TARGET = 0.65


@pytest.fixture(scope="module")
def types() -> list[Example]:
    return load_examples(TYPE_EXAMPLES, "request_type")


@pytest.fixture(scope="module")
def model() -> CategoryModel:
    return type_model()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请问居住证怎么办理，需要什么材料", "inquiry"),
        ("想问一下高龄补贴去哪申请", "inquiry"),
        ("家里暖气不热，屋里才十五度", "help"),  # a problem someone must fix
        ("电梯坏了，老人下不了楼", "help"),
        ("楼上装修电钻声太吵了，吵得睡不着", "complaint"),  # the category's usual type
        ("物业光收钱不干活，楼道灯坏了也不修", "complaint"),
        ("暖气费交了，热力公司来回踢皮球，凭什么", "complaint"),  # a heating call about who harms
        ("举报顶楼有人私搭乱建加盖彩钢房", "report"),
        ("楼道里停满电瓶车，还私接电线飞线充电", "report"),  # two cues outweigh the category
        ("有人冒充燃气公司上门收钱", "report"),
        ("建议在公园里增设几个长椅", "suggestion"),
        ("表扬一下社区的王书记", "suggestion"),
        ("问问暖气什么时候来，家里冻得不行，赶紧派人来看看", "help"),  # one cue does not beat two
    ],
)
def test_a_call_is_tagged_with_its_request_type(ref: Jurisdiction, text: str, expected: str) -> None:
    category = tag_category(text, None, ref).category
    assert tag_request_type(text, category, ref) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请问居住证怎么办理，需要什么材料", "inquiry"),
        ("出租车从火车站到机场大概多少钱", "inquiry"),  # a question for information, no harm
        ("家里暖气不热，屋里才十五度", "help"),
        ("路边大树让风刮倒了，横在路中间", "help"),  # a problem, no one blamed
        ("在超市买的鸡蛋一半是坏的，去退人家不给退", "complaint"),  # a party that fails the caller
        ("物业光收钱不干活，楼道灯坏了也不修", "complaint"),
        ("有人在河边偷偷挖沙子，半夜开着挖掘机", "report"),  # someone else's violation
        ("那家小诊所没有执业证还给人打针", "report"),
        ("公园里能不能多放几个长椅，老人走累了没地方坐", "suggestion"),
        ("建议在公交站装个遮雨棚", "suggestion"),
    ],
)
def test_the_model_reads_the_type_of_a_call(
    ref: Jurisdiction, model: CategoryModel, text: str, expected: str
) -> None:
    category = tag_category(text, None, ref).category
    assert tag_request_type(text, category, ref, model) == expected


class _Counting:
    """A type model that counts the calls it is asked about, and reads nothing."""

    codes: tuple[str, ...] = REQUEST_TYPES

    def __init__(self) -> None:
        self.asked = 0

    def log_likelihoods(self, text: str) -> list[float] | None:
        self.asked += 1
        return None


def test_cues_that_decide_spare_the_model(ref: Jurisdiction) -> None:
    counting = _Counting()
    noise = ref.category_by_code["noise"]
    assert tag_request_type("我要投诉楼上装修太吵", noise, ref, counting) == "complaint"  # 投诉 said
    assert counting.asked == 0
    assert tag_request_type("楼上有点动静", noise, ref, counting) == "complaint"  # the category's type
    assert counting.asked == 1


def test_the_category_decides_when_the_call_says_nothing_more(
    ref: Jurisdiction, model: CategoryModel
) -> None:
    for code, expected in (("noise", "complaint"), ("illegal_building", "report"), ("heating", "help")):
        assert tag_request_type("就是这个事", ref.category_by_code[code], ref) == expected
        # with the model a weak prior, enough when the words lean nowhere
        assert tag_request_type("", ref.category_by_code[code], ref, model) == expected


def test_the_operators_type_wins(ref: Jurisdiction) -> None:
    noise = ref.category_by_code["noise"]
    assert request_type_of("suggestion", "楼上太吵了", noise, ref) == "suggestion"
    assert request_type_of(None, "楼上太吵了", noise, ref) == "complaint"


@pytest.mark.parametrize(
    ("category", "expected"),
    [("fire_hazard", "report"), ("illegal_parking", "report"), ("heating", "help"), ("noise", "help")],
)
def test_a_grid_workers_finding_is_a_report_or_help(ref: Jurisdiction, category: str, expected: str) -> None:
    assert grid_request_type(ref.category_by_code[category]) == expected


def test_every_call_of_the_labelled_set_has_a_request_type() -> None:
    calls = load_labelled(DEFAULT_SET)
    counts = Counter(call.request_type for call in calls)
    assert set(counts) == set(REQUEST_TYPES), counts


def test_request_type_accuracy_on_the_labelled_set(ref: Jurisdiction) -> None:
    report = evaluate_request_types(load_labelled(DEFAULT_SET), ref)
    print("\n" + report.format())
    assert report.accuracy >= TYPE_TARGET
    for kind, (right, total) in report.per_type.items():
        assert right / total >= TYPE_PER_TYPE_TARGET, (kind, right, total)


def test_request_type_accuracy_with_the_model_on_the_labelled_set(
    ref: Jurisdiction, types: list[Example]
) -> None:
    report = evaluate_request_types(load_labelled(DEFAULT_SET), ref, types=types)
    print("\nrequest types, labelled set, the model cross-validated:\n" + report.format())
    assert report.accuracy >= MODEL_TARGET
    for kind, (right, total) in report.per_type.items():
        assert right / total >= MODEL_PER_TYPE_TARGET, (kind, right, total)


def test_the_model_is_trained_on_the_labelled_set_and_the_dev_sets_tuning_half_only(
    types: list[Example],
) -> None:
    assert types == type_examples()
    tune, check = dev_halves(load_typed(DEV_TYPES))
    assert len(tune) >= 200 and len(check) >= 199
    trained = {example.content for example in types}
    assert [call.content for call in check if call.content in trained] == []


def test_request_type_accuracy_on_the_dev_sets_check_half(ref: Jurisdiction, types: list[Example]) -> None:
    """The development set was written blind by another hand; its check half was never read: not by
    the cues, not by the model, not to choose a weight."""
    _, check = dev_halves(load_typed(DEV_TYPES))
    report = evaluate_request_types(check, ref, types=types)
    print("\nrequest types, development set, check half (never tuned on):\n" + report.format())
    assert report.accuracy >= DEV_CHECK_TARGET, report.format()
    for kind, (right, total) in report.per_type.items():
        assert right / total >= DEV_CHECK_PER_TYPE_TARGET, (kind, right, total)


# The blind held-out set: written by someone who never saw the cues, and never tuned on. The cues
# alone scored 47.3% when it arrived; the tagger as intake runs it, with the request type model
# trained on the labelled set and half the dev set (a third writer's), 76.8% (tools.accuracy
# --types). The floors keep both from going backwards.
TYPES_HOLDOUT = DEFAULT_SET.with_name("holdout_request_types.jsonl")
TYPES_HOLDOUT_FLOOR = 0.47
TYPES_HOLDOUT_MODEL_FLOOR = 0.76


def test_the_types_holdout_is_not_in_the_labelled_set() -> None:
    held_out = {call.content for call in load_typed(TYPES_HOLDOUT)}
    assert len(held_out) >= 300
    assert [c.content for c in load_labelled(DEFAULT_SET) if c.content in held_out] == []


def test_request_type_accuracy_on_the_blind_holdout(ref: Jurisdiction) -> None:
    report = evaluate_request_types(load_typed(TYPES_HOLDOUT), ref)
    print("\nrequest types, blind held-out set (never tuned on):\n" + report.format(examples=0))
    assert report.accuracy >= TYPES_HOLDOUT_FLOOR, report.format(examples=0)
    with_model = evaluate_request_types(load_typed(TYPES_HOLDOUT), ref, load_examples(), type_examples())
    print("\nwith the classifiers, as intake runs:\n" + with_model.format(examples=0))
    assert with_model.accuracy >= TYPES_HOLDOUT_MODEL_FLOOR, with_model.format(examples=0)


def test_a_types_set_names_the_line_that_cannot_be_used(tmp_path: Path) -> None:
    bad = tmp_path / "types.jsonl"
    bad.write_text(
        '{"content": "问一下", "request_type": "inquiry"}\n{"content": "x", "request_type": "gossip"}\n'
    )
    with pytest.raises(LabelledSetError, match=r"line 2: request_type must be one of inquiry"):
        load_typed(bad)
