"""The keyword tagger's second opinion: multinomial naive Bayes over character 1-3-grams, and a
linear model over the same n-grams beside it (``LinearModel``, ``Opinion``).

Intake asks it about every call (services/intake/tagging.py, SECOND_OPINION). Naive Bayes is
trained when loaded, from example calls shipped with the package
(``shared/data/category_examples.jsonl``: one ``{"content", "category"}`` object a line), in well
under a second, and is deterministic: the same examples give the same model.

Scoring is sparse so that a call costs a few dozen µs: with add-alpha smoothing, a class's score is
its prior, plus ``unseen[c]`` for every known n-gram, plus a bonus ``log(1 + count / alpha)`` for
the n-grams the class has actually seen; most n-grams were seen by one or two classes only.

The linear model (a linear support vector machine over the n-grams present, weighted by their
inverse document frequency) separates what naive Bayes only counts: it is trained offline from the
same examples by ``tools.linear`` (scikit-learn, a development dependency) and shipped as its weights
(``shared/data/category_linear.json``); here it is only read and asked.
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
# The linear model's weights (tools.linear writes them from DEFAULT_EXAMPLES and the phrases).
LINEAR_WEIGHTS = Path(__file__).parent / "data" / "category_linear.json"
# The linear model's decision values count this many times naive Bayes' tempered log-posteriors in
# the category model's opinion (``Opinion``): cross-validated on the labelled set and the residents'
# calls trained on (docs/performance.md#the-thresholds).
LINEAR_WEIGHT = 8.0
# ... in full from this many known n-grams, in proportion below: a text is scaled to length 1, so a
# greeting of a few n-grams would otherwise be as sure of a category as a whole complaint.
LINEAR_FULL_AT = 40
# ... and not asked at all when naive Bayes is this sure by itself: cross-validated, no call's
# category changed, and about half the calls no longer pay for the linear model.
LINEAR_UNLESS = 0.999
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


def category_model(examples: Iterable[Example], linear: LinearModel | None = None) -> Opinion:
    """The category model (tagging's second opinion): naive Bayes trained on ``examples`` (with
    ``with_phrases``), beside the linear model (by default the one shipped: trained on the shipped
    examples with the default jurisdiction's phrases). A jurisdiction whose categories are not the
    linear model's gets naive Bayes alone: its weights know other classes."""
    bayes = CategoryModel(examples)
    linear = linear or LinearModel.load()
    return Opinion(bayes, linear if linear.codes == bayes.codes else None)


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
        scores = self.scaled(text)
        if scores is None:
            return {}
        top = max(scores)
        return {code: s - top for code, s in zip(self.codes, scores, strict=True)}

    def scaled(self, text: str) -> list[float] | None:
        """Every class's log-posterior divided by the temperature, unnormalised, in ``codes``'
        order; None with no known n-gram."""
        likelihoods = self.log_likelihoods(text)
        if likelihoods is None:
            return None
        t = self._temperature
        return [(p + s) / t for p, s in zip(self._prior, likelihoods, strict=True)]

    def classify(self, text: str) -> tuple[str, float]:
        """The likeliest category code and its posterior (tempered); ("", 0.0) with no known n-gram."""
        likelihoods = self.log_likelihoods(text)
        if likelihoods is None:
            return "", 0.0
        scores = [p + s for p, s in zip(self._prior, likelihoods, strict=True)]
        best = max(range(len(scores)), key=scores.__getitem__)  # ties: the first code in order
        top, t = scores[best], self._temperature
        return self.codes[best], 1.0 / sum(math.exp((s - top) / t) for s in scores)


# The linear model's weights in fixed point, a lane of 48 bits per class and one more for the
# squared idfs (the norm): each n-gram's value is offset to be positive (weights and squared idfs
# are below 2**6 and 2**7: a value below 2**27), and the offsets taken off once, knowing how many
# n-grams were summed. A lane holds 2**20 n-grams' values: texts are far shorter (LongText: 4,000
# characters), and of a longer one only as many n-grams are read.
_LINEAR_SCALE = 1 << 20
_LINEAR_LANE = 48
_LINEAR_OFFSET = 1 << 27
_LINEAR_MASK = (1 << _LINEAR_LANE) - 1
_LINEAR_MAX_GRAMS = 1 << (_LINEAR_LANE - 28)


@dataclass(frozen=True, slots=True)
class LinearWeights:
    """What the linear model is: its classes, their biases, and for each n-gram its idf and its
    weights (idf times the coefficient) for the classes it has any for, by their index. As a file::

        {"bias": [...], "codes": [...], "grams": {"gram": [idf, {"class index": weight, ...}], ...}}
    """

    codes: list[str]
    bias: list[float]
    grams: dict[str, tuple[float, dict[int, float]]]

    def to_json(self) -> str:
        grams = {g: [idf, {str(i): w for i, w in kept.items()}] for g, (idf, kept) in self.grams.items()}
        raw = {"codes": self.codes, "bias": self.bias, "grams": grams}
        return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LinearWeights:
        raw = json.loads(text)
        grams = {g: (idf, {int(i): w for i, w in kept.items()}) for g, (idf, kept) in raw["grams"].items()}
        return cls(raw["codes"], raw["bias"], grams)


class LinearModel:
    """A linear model over the n-grams a text has, each once: a class's decision value is its bias
    plus the sum of the n-grams' weights for it over the length of their idf vector (the text's
    vector scaled to length 1). An n-gram it has no weights for counts only in that length; one
    not in the file, not at all."""

    def __init__(self, weights: LinearWeights) -> None:
        self.codes = tuple(weights.codes)
        self._bias = list(weights.bias)
        if len(self._bias) != len(self.codes):
            raise ValueError(f"{len(self._bias)} biases for {len(self.codes)} classes")
        norm_lane = _LINEAR_LANE * len(self.codes)
        offsets = sum(_LINEAR_OFFSET << (_LINEAR_LANE * i) for i in range(len(self.codes) + 1))
        self._table: dict[str, int] = {}
        for gram, (idf, kept) in weights.grams.items():
            if not 0 < idf * idf < 1 << 7 or any(abs(w) >= 1 << 6 for w in kept.values()):
                raise ValueError(f"{gram}: an idf or a weight beyond the fixed point's range")
            if any(not 0 <= i < len(self.codes) for i in kept):
                raise ValueError(f"{gram}: a weight for a class the model does not have")
            packed = offsets + (round(idf * idf * _LINEAR_SCALE) << norm_lane)
            for i, weight in kept.items():  # a negative weight borrows from its lane's offset
                packed += round(weight * _LINEAR_SCALE) << (_LINEAR_LANE * i)
            self._table[gram] = packed
        self._lanes = tuple(_LINEAR_LANE * i for i in range(len(self.codes) + 1))

    @classmethod
    def load(cls, path: Path = LINEAR_WEIGHTS) -> LinearModel:
        """The model shipped (by default), read once a process."""
        return _load_linear(path)

    def decisions(self, text: str) -> tuple[list[float], int] | None:
        """Each class's decision value, in ``codes``' order, and how many known n-grams the text
        has; None with none."""
        text = text.lower().translate(_FOLD)
        grams = set(map(text.__getitem__, _slices(len(text))))
        rows = list(filter(None, map(self._table.get, grams)))[:_LINEAR_MAX_GRAMS]
        if not rows:
            return None
        packed, offset = sum(rows), len(rows) * _LINEAR_OFFSET
        lanes = [((packed >> lane) & _LINEAR_MASK) - offset for lane in self._lanes]
        norm = math.sqrt(lanes.pop() * _LINEAR_SCALE)  # the root of the squares, in fixed point
        return [b + v / norm for b, v in zip(self._bias, lanes, strict=True)], len(rows)


@lru_cache(maxsize=2)
def _load_linear(path: Path) -> LinearModel:
    return LinearModel(LinearWeights.from_json(path.read_text(encoding="utf-8")))


class Opinion:
    """The category model: naive Bayes' tempered log-posteriors plus LINEAR_WEIGHT times the
    linear model's decision values (less below LINEAR_FULL_AT known n-grams), as tempered
    log-posteriors (the likeliest's 0); naive Bayes alone from LINEAR_UNLESS, or with no linear
    model. Either alone when the other knows no n-gram of the text; empty when neither does."""

    def __init__(
        self, bayes: CategoryModel, linear: LinearModel | None, weight: float = LINEAR_WEIGHT
    ) -> None:
        if linear is not None and bayes.codes != linear.codes:
            raise ValueError(f"the two models know other classes: {bayes.codes} and {linear.codes}")
        self.bayes, self.linear, self.weight = bayes, linear, weight
        self.codes = bayes.codes

    def tempered(self, text: str) -> dict[str, float]:
        scores = self.bayes.scaled(text)
        if scores is not None:
            top = max(scores)
            if sum(math.exp(s - top) for s in scores) <= 1.0 / LINEAR_UNLESS:
                return {code: s - top for code, s in zip(self.codes, scores, strict=True)}
        decided = self.linear.decisions(text) if self.linear is not None else None
        if decided is not None:
            decisions, known = decided
            weight = self.weight * min(1.0, known / LINEAR_FULL_AT)
            if scores is None:
                scores = [weight * d for d in decisions]
            else:
                scores = [s + weight * d for s, d in zip(scores, decisions, strict=True)]
        if scores is None:
            return {}
        top = max(scores)
        return {code: s - top for code, s in zip(self.codes, scores, strict=True)}

    def classify(self, text: str) -> tuple[str, float]:
        """The likeliest category code and its posterior; ("", 0.0) with no known n-gram."""
        tempered = self.tempered(text)
        if not tempered:
            return "", 0.0
        best = max(tempered, key=tempered.__getitem__)  # ties: the first code in order
        return best, 1.0 / sum(math.exp(v) for v in tempered.values())
