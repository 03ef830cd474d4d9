"""How well intake tags and places what residents say: accuracy on a hand-labelled set of calls.

Run from the repository root::

    python -m tools.accuracy [--data tests/data/labelled_calls.jsonl] [--examples 3] [--folds 5]

The set is one JSON object a line: ``content`` (what the resident said), ``address`` (or null),
the expected ``category`` code and the expected ``street``, ``community`` and ``compound`` names
(null where the call does not say). Tagging is judged without the operator's hint
(``tag_category(content, None, ref, fallback=model)``) and placing without a location block
(``place_order(None, address, content, ref)``): what the keywords, the classifier behind them and
the place names achieve.

The classifier is never judged on calls it was trained on: when the set shares calls with the
training examples (the labelled set does), it is cross-validated, each of ``--folds`` folds
(call i in fold i % folds) tagged by a model trained on the examples minus that fold's calls.
A set that shares none (the holdout set) is tagged by the model trained on all the examples.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from services.intake.domain import place_order, tag_category
from shared.classifier import DEFAULT_EXAMPLES, CategoryModel, Example, load_examples
from shared.reference import DEFAULT_JURISDICTION, Jurisdiction, load_jurisdiction

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT / "tests" / "data" / "labelled_calls.jsonl"
PLACE_LEVELS = ("street", "community", "compound")


@dataclass(frozen=True, slots=True)
class LabelledCall:
    content: str
    address: str | None
    category: str
    street: str | None
    community: str | None
    compound: str | None

    @property
    def place(self) -> tuple[str | None, str | None, str | None]:
        return (self.street, self.community, self.compound)


class LabelledSetError(ValueError):
    """A line of the labelled set cannot be used; the message names the file and the line."""


def _optional_str(raw: dict[str, object], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    raise LabelledSetError(f"{where}: {key} must be a string or null, not {value!r}")


def load_labelled(path: Path) -> list[LabelledCall]:
    calls: list[LabelledCall] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelledSetError(f"{where}: {exc.msg}") from exc
        if not isinstance(raw, dict):
            raise LabelledSetError(f"{where}: not a JSON object")
        content, category = raw.get("content"), raw.get("category")
        if not isinstance(content, str) or not content:
            raise LabelledSetError(f"{where}: content must be a non-empty string")
        if not isinstance(category, str) or not category:
            raise LabelledSetError(f"{where}: category must be a category code")
        calls.append(
            LabelledCall(
                content=content,
                address=_optional_str(raw, "address", where),
                category=category,
                street=_optional_str(raw, "street", where),
                community=_optional_str(raw, "community", where),
                compound=_optional_str(raw, "compound", where),
            )
        )
    return calls


@dataclass(frozen=True, slots=True)
class CategoryMiss:
    expected: str
    got: str
    confidence: float
    content: str


@dataclass(frozen=True, slots=True)
class PlaceMiss:
    expected: tuple[str | None, str | None, str | None]
    got: tuple[str | None, str | None, str | None]
    address: str | None
    content: str


@dataclass
class Report:
    total: int = 0
    category_right: int = 0
    keyword_right: int = 0  # what the keywords alone tag right
    folds: int = 0  # models the classifier was cross-validated with; 0: no classifier
    place_right: int = 0
    level_right: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PLACE_LEVELS, 0))
    per_category: dict[str, list[int]] = field(default_factory=dict)  # code -> [right, total]
    confusions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, got) -> count
    category_misses: list[CategoryMiss] = field(default_factory=list)
    place_misses: list[PlaceMiss] = field(default_factory=list)

    @property
    def category_accuracy(self) -> float:
        return self.category_right / self.total if self.total else 0.0

    @property
    def keyword_accuracy(self) -> float:
        return self.keyword_right / self.total if self.total else 0.0

    @property
    def place_accuracy(self) -> float:
        """All three of street, community and compound as expected (null where expected null)."""
        return self.place_right / self.total if self.total else 0.0

    @property
    def to_triage(self) -> int:
        """Misses tagged 其他: they go to the triage desk, not to a wrong department."""
        return sum(n for (expected, got), n in self.confusions.items() if got == "other")

    @property
    def to_wrong_desk(self) -> int:
        return sum(self.confusions.values()) - self.to_triage

    def level_accuracy(self, level: str) -> float:
        return self.level_right[level] / self.total if self.total else 0.0

    def format(self, examples: int = 2) -> str:
        lines = [
            f"labelled calls: {self.total}",
            f"category accuracy: {self.category_accuracy:.1%} ({self.category_right}/{self.total}); "
            f"of the misses {self.to_triage} went to other (triage), "
            f"{self.to_wrong_desk} to a wrong category",
            f"  keywords alone: {self.keyword_accuracy:.1%} ({self.keyword_right}/{self.total}); "
            + (
                "the classifier behind them "
                + (
                    f"cross-validated over {self.folds} folds"
                    if self.folds > 1
                    else "trained on all examples"
                )
                if self.folds
                else "no classifier"
            ),
            f"placement accuracy (street, community and compound all right): {self.place_accuracy:.1%} "
            f"({self.place_right}/{self.total})",
            "  per level: "
            + ", ".join(
                f"{level} {self.level_accuracy(level):.1%} ({self.level_right[level]}/{self.total})"
                for level in PLACE_LEVELS
            ),
            "",
            "per category (right/total, commonest mistakes):",
        ]
        by_expected: dict[str, list[tuple[str, int]]] = {}
        for (expected, got), count in self.confusions.most_common():
            by_expected.setdefault(expected, []).append((got, count))
        for code, (right, total) in sorted(self.per_category.items(), key=lambda kv: kv[1][0] / kv[1][1]):
            wrong = ", ".join(f"{got} {count}" for got, count in by_expected.get(code, [])[:3])
            lines.append(
                f"  {code:<18} {right:>3}/{total:<3} {right / total:6.1%}"
                + (f"  -> {wrong}" if wrong else "")
            )
        if self.confusions:
            lines += ["", "commonest confusions (expected -> tagged):"]
            lines += [f"  {e} -> {g}: {n}" for (e, g), n in self.confusions.most_common(10)]
        if examples and self.category_misses:
            lines += ["", f"category misses (up to {examples} per confusion):"]
            shown: Counter[tuple[str, str]] = Counter()
            for miss in self.category_misses:
                key = (miss.expected, miss.got)
                if shown[key] < examples:
                    shown[key] += 1
                    lines.append(f"  {miss.expected} -> {miss.got} ({miss.confidence:.2f}): {miss.content}")
        if examples and self.place_misses:
            lines += ["", "placement misses (expected | placed | address | content):"]
            lines += [
                f"  {_place(m.expected)} | {_place(m.got)} | {m.address or '-'} | {m.content}"
                for m in self.place_misses
            ]
        return "\n".join(lines)


def _place(place: tuple[str | None, str | None, str | None]) -> str:
    return "/".join(part or "-" for part in place)


def fold_models(calls: list[LabelledCall], examples: list[Example], folds: int) -> list[CategoryModel]:
    """Call i is tagged by model i % len(models), none of which was trained on it."""
    contents = {call.content for call in calls}
    if not any(example.content in contents for example in examples):
        return [CategoryModel(examples)]
    models = []
    for fold in range(folds):
        held_out = {call.content for call in calls[fold::folds]}
        models.append(CategoryModel([e for e in examples if e.content not in held_out]))
    return models


def evaluate_calls(
    calls: list[LabelledCall], ref: Jurisdiction, examples: list[Example] | None = None, folds: int = 5
) -> Report:
    """Keywords alone without ``examples``; with them, keywords and the classifier behind them."""
    models = fold_models(calls, examples, folds) if examples else []
    report = Report(folds=len(models))
    for i, call in enumerate(calls):
        report.total += 1
        keywords = tag_category(call.content, None, ref)
        report.keyword_right += keywords.category.code == call.category
        tag = tag_category(call.content, None, ref, fallback=models[i % len(models)]) if models else keywords
        counts = report.per_category.setdefault(call.category, [0, 0])
        counts[1] += 1
        if tag.category.code == call.category:
            report.category_right += 1
            counts[0] += 1
        else:
            report.confusions[(call.category, tag.category.code)] += 1
            report.category_misses.append(
                CategoryMiss(call.category, tag.category.code, tag.confidence, call.content)
            )
        placed = place_order(None, call.address, call.content, ref)
        got = (placed.street, placed.community, placed.compound)
        for level, expected, actual in zip(PLACE_LEVELS, call.place, got, strict=True):
            if expected == actual:
                report.level_right[level] += 1
        if got == call.place:
            report.place_right += 1
        else:
            report.place_misses.append(PlaceMiss(call.place, got, call.address, call.content))
    return report


def evaluate(path: Path, ref: Jurisdiction, examples: list[Example] | None = None, folds: int = 5) -> Report:
    return evaluate_calls(load_labelled(path), ref, examples, folds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_SET, help="the labelled set (JSON lines)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_JURISDICTION, help="reference data")
    parser.add_argument("--examples", type=int, default=2, help="misses shown per confusion (0: none)")
    parser.add_argument("--training", type=Path, default=DEFAULT_EXAMPLES, help="the classifier's examples")
    parser.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds (sets it was trained on)"
    )
    parser.add_argument("--keywords-only", action="store_true", help="without the classifier")
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds must be at least 2")
    examples = None if args.keywords_only else load_examples(args.training)
    report = evaluate(args.data, load_jurisdiction(args.reference), examples, args.folds)
    print(report.format(examples=args.examples))


if __name__ == "__main__":
    main()
