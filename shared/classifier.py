"""The keyword tagger's fallback: multinomial naive Bayes over character 1-3-grams.

Intake asks it only when the keywords are not confident (none found, or a mixed text); the
confident path never pays for it. It is trained when loaded, from example calls shipped with the
package (``shared/data/category_examples.jsonl``: one ``{"content", "category"}`` object a line),
in well under a second, and is deterministic: the same examples give the same model.

Scoring is sparse so that a call costs a few dozen µs: with add-alpha smoothing, a class's score is
its prior, plus ``unseen[c]`` for every known n-gram, plus a bonus ``log(1 + count / alpha)`` for
the n-grams the class has actually seen; most n-grams were seen by one or two classes only.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shared.reference import Jurisdiction

DEFAULT_EXAMPLES = Path(__file__).parent / "data" / "category_examples.jsonl"
# The request type model's examples (services/intake/request_types.py): {"content", "request_type"}.
TYPE_EXAMPLES = Path(__file__).parent / "data" / "request_type_examples.jsonl"
# The request type model keeps only the n-grams its examples have more than once: a third of the
# table (9,000 n-grams of 34,000), so cheaper to ask, and no worse on calls it was not trained on.
TYPE_MIN_COUNT = 2
# The emergency model's examples (services/intake/tagging.py): {"content", "emergency"}, "emergency"
# or "calm": the calls labelled so (tools.accuracy.emergency_examples writes them).
EMERGENCY_EXAMPLES = Path(__file__).parent / "data" / "emergency_examples.jsonl"
EMERGENCY, CALM = "emergency", "calm"
EMERGENCY_NGRAMS = (2,)
NGRAMS = (1, 2, 3)
ALPHA = 0.1
# An n-gram seen in more categories than this (的, 小区, 了 …) says little about any of them and
# would cost most of the scoring loop: it is left out of the model, like an unknown one.
MAX_CLASSES = 12
# Naive Bayes sums ~100 correlated n-grams as if independent, so its raw posteriors are all but
# 0 or 1; dividing the log-odds by this temperature makes the top posterior a usable confidence.
TEMPERATURE = 8.0
# The n-grams' bonuses in fixed point (2**-20 of a nat, far below any difference that decides),
# a lane of 48 bits per class: room for 2**28 nats, a text of millions of n-grams.
_SCALE = 1 << 20
_LANE = 48
_MASK = (1 << _LANE) - 1
# Digits (house, room and plate numbers) carry no category: one symbol stands for them all.
_FOLD = str.maketrans("0123456789", "0000000000")


@dataclass(frozen=True, slots=True)
class Example:
    content: str
    category: str


def load_examples(path: Path = DEFAULT_EXAMPLES, label: str = "category") -> list[Example]:
    """One example a line; ``label`` names the key of its class (``category``, ``request_type``)."""
    examples: list[Example] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        raw = json.loads(line)
        content, category = raw.get("content"), raw.get(label)
        if not (isinstance(content, str) and content and isinstance(category, str) and category):
            raise ValueError(f"{path}: line {number}: content and {label} must be non-empty strings")
        examples.append(Example(content, category))
    return examples


def with_phrases(examples: Iterable[Example], ref: Jurisdiction) -> list[Example]:
    """The examples and, as one short example each, every phrase of the jurisdiction's categories
    (keywords, symptoms, danger words, alarms): the model then knows the words the tagger reads, in
    calls worded like none of its examples."""
    phrases = [
        Example(phrase, c.code)
        for c in ref.categories
        for phrase in (c.name, *c.keywords, *c.symptoms, *c.danger_keywords, *c.alarms)
    ]
    return [*examples, *phrases]


def type_model(examples: Iterable[Example] | None = None) -> CategoryModel:
    """The request type model (services/intake/request_types.py): by default from TYPE_EXAMPLES."""
    if examples is None:
        examples = load_examples(TYPE_EXAMPLES, "request_type")
    return CategoryModel(examples, min_count=TYPE_MIN_COUNT)


def emergency_model(examples: Iterable[Example] | None = None) -> CategoryModel:
    """The emergency model (tagging's second opinion on danger): by default from EMERGENCY_EXAMPLES,
    two classes, EMERGENCY and CALM. Every n-gram kept: an emergency is told in few words, and
    keeping only those seen twice lost half of what it recognised (cross-validated)."""
    if examples is None:
        examples = load_examples(EMERGENCY_EXAMPLES, "emergency")
    return CategoryModel(examples, orders=EMERGENCY_NGRAMS)


def ngrams(text: str, orders: tuple[int, ...] = NGRAMS) -> list[str]:
    text = text.lower().translate(_FOLD)
    return [text[i : i + n] for n in orders for i in range(len(text) - n + 1)]


# Texts up to this long have their slices kept (~100,000 slices, a few MB, at most); longer ones,
# rare, have them made for the call.
_KEEP_SLICES = 256


@lru_cache(maxsize=2 * _KEEP_SLICES + 2)
def _kept_slices(length: int, orders: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(i, i + n) for n in orders for i in range(length - n + 1))


def _slices(length: int, orders: tuple[int, ...] = NGRAMS) -> tuple[slice, ...]:
    """The n-grams of a text of this length as slices, in ngrams' order: cut in C (map) per call."""
    if length <= _KEEP_SLICES:
        return _kept_slices(length, orders)
    return tuple(slice(i, i + n) for n in orders for i in range(length - n + 1))


class CategoryModel:
    """Trained on example calls; ``classify`` says which category a text most resembles, and how surely.
    Alpha, temperature and MAX_CLASSES were chosen by cross-validation on the labelled set."""

    def __init__(
        self,
        examples: Iterable[Example],
        alpha: float = ALPHA,
        temperature: float = TEMPERATURE,
        min_count: int = 1,
        orders: tuple[int, ...] = NGRAMS,
    ) -> None:
        self._orders = orders
        counts: dict[str, Counter[str]] = {}
        docs: Counter[str] = Counter()
        for example in examples:
            counts.setdefault(example.category, Counter()).update(ngrams(example.content, orders))
            docs[example.category] += 1
        if not counts:
            raise ValueError("no examples to train on")
        self.codes: tuple[str, ...] = tuple(sorted(counts))  # sorted: the same model every run
        vocabulary = {gram for per_class in counts.values() for gram in per_class}
        total = sum(docs.values())
        self._prior = [math.log(docs[c] / total) for c in self.codes]
        self._unseen = [
            math.log(alpha / (sum(counts[c].values()) + alpha * len(vocabulary))) for c in self.codes
        ]
        totals: Counter[str] = Counter()
        for per_class in counts.values():
            totals.update(per_class)
        table: dict[str, list[float]] = {}
        for i, code in enumerate(self.codes):
            for gram, n in counts[code].items():
                table.setdefault(gram, [0.0] * len(self.codes))[i] = math.log1p(n / alpha)
        # Each kept n-gram's bonus for every class (0 where unseen), in fixed point, packed into one
        # integer a lane per class: a call's n-grams are summed as integers, in C (sum), and the
        # lanes read back once; several times faster than summing 25 columns of floats.
        self._table = {
            gram: sum(round(bonus * _SCALE) << (_LANE * i) for i, bonus in enumerate(row))
            for gram, row in table.items()
            if len(row) - row.count(0.0) <= MAX_CLASSES and totals[gram] >= min_count
        }
        self._lanes = tuple(_LANE * i for i in range(len(self.codes)))
        self._temperature = temperature

    def log_likelihoods(self, text: str) -> list[float] | None:
        """Each class's log-likelihood of the text's known n-grams, in ``codes``' order, without the
        prior; None with no known n-gram."""
        text = text.lower().translate(_FOLD)
        # ngrams(text), cut and looked up in C: the rows of the known n-grams (a row is never empty).
        grams = map(text.__getitem__, _slices(len(text), self._orders))
        rows = list(filter(None, map(self._table.get, grams)))
        if not rows:
            return None
        known, packed = len(rows), sum(rows)
        return [
            known * u + ((packed >> lane) & _MASK) / _SCALE
            for u, lane in zip(self._unseen, self._lanes, strict=True)
        ]

    def tempered(self, text: str) -> dict[str, float]:
        """Every class's log-posterior divided by the temperature, less the likeliest's (0 for it,
        negative for the others); empty with no known n-gram. The posteriors are their exponentials,
        normalised."""
        likelihoods = self.log_likelihoods(text)
        if likelihoods is None:
            return {}
        scores = [p + s for p, s in zip(self._prior, likelihoods, strict=True)]
        top, t = max(scores), self._temperature
        return {code: (s - top) / t for code, s in zip(self.codes, scores, strict=True)}

    def classify(self, text: str) -> tuple[str, float]:
        """The likeliest category code and its posterior (tempered); ("", 0.0) with no known n-gram."""
        likelihoods = self.log_likelihoods(text)
        if likelihoods is None:
            return "", 0.0
        scores = [p + s for p, s in zip(self._prior, likelihoods, strict=True)]
        best = max(range(len(scores)), key=scores.__getitem__)  # ties: the first code in order
        top, t = scores[best], self._temperature
        return self.codes[best], 1.0 / sum(math.exp((s - top) / t) for s in scores)
