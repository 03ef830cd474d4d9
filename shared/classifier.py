"""The keyword tagger's second opinion: multinomial naive Bayes over character 1-3-grams, and a
linear model over the same n-grams beside it (``LinearModel``, ``Opinion``).

Intake asks it about every call (services/intake/tagging.py, SECOND_OPINION). Naive Bayes is
trained when loaded, from example calls shipped with the package
(``shared/data/category_examples.jsonl``: one ``{"content", "category"}`` object a line), in well
under a second, and is deterministic: the same examples give the same model.

Scoring is sparse so that a call costs a few dozen µs: with add-alpha smoothing, a class's score is
its prior, plus ``unseen[c]`` for every known n-gram, plus a bonus ``log(1 + count / alpha)`` for
the n-grams the class has actually seen; most n-grams were seen by one or two classes only. A
text's known n-grams are found in one pass (``Grams``: an Aho-Corasick automaton over the model's
n-grams) and their rows summed as integers, a lane per class, read back at once (``_unpack``).

The linear model (a linear support vector machine over the n-grams present, weighted by their
inverse document frequency) separates what naive Bayes only counts: it is trained offline from the
same examples by ``tools.linear`` (scikit-learn, a development dependency) and shipped as its weights
(``shared/data/category_linear.json``); here it is only read and asked.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from operator import itemgetter
from pathlib import Path

from ahocorasick_rs import AhoCorasick, Implementation, MatchKind

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
# a lane of 64 bits per class (an n-gram's bonus is below 2**24 here, refused from 2**32: room for
# 2**32 n-grams at least), so that a sum's lanes are its bytes, read back in one pass (_unpack)
# rather than shifted out one by one.
_SCALE = 1 << 20
_LANE = 64
_BONUS_LIMIT = 1 << 32
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


def _fold(text: str) -> str:
    return text.lower().translate(_FOLD)


def _unpack(packed: int, lanes: int) -> memoryview:
    """The lanes of a sum of packed rows, lowest first, as integers: its bytes, cast (in C)."""
    return memoryview(packed.to_bytes(8 * lanes, sys.byteorder)).cast("Q")


_FIRST = itemgetter(0)


def _less(codes: tuple[str, ...], scores: list[float], top: float) -> dict[str, float]:
    """Each code's score less ``top`` (``s - top``), mapped in C rather than a comprehension."""
    return dict(zip(codes, map(top.__rsub__, scores), strict=True))


# The automaton's states in one array (~9 MB for naive Bayes' 100,000 n-grams), never a DFA, which
# the library may choose by itself: as fast here, and 127 MB.
_CONTIGUOUS = Implementation.ContiguousNFA


class Grams:
    """Where a text has a vocabulary's n-grams: the vocabulary's index of each occurrence,
    overlapping ones and repeats included, as slicing the text into every n-gram and looking each
    up would find them. One pass of an Aho-Corasick automaton (in Rust): a third of that time, and
    no probe of a large dict (a cache miss or more) for every n-gram of the text."""

    def __init__(self, grams: Sequence[str]) -> None:
        self._automaton = (
            AhoCorasick(list(grams), matchkind=MatchKind.Standard, implementation=_CONTIGUOUS)
            if grams
            else None
        )

    def find(self, text: str) -> list[int]:
        if self._automaton is None or not text:
            return []
        matches = self._automaton.find_matches_as_indexes(_fold(text), overlapping=True)
        return list(map(_FIRST, matches))


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
        # lanes read back once; several times faster than summing 25 columns of floats. Equal rows
        # are one object (a tenth as many): fewer cache lines for the same sums.
        rows: dict[int, int] = {}
        self._table: dict[str, int] = {}
        for gram, row in table.items():
            if len(row) - row.count(0.0) <= MAX_CLASSES and totals[gram] >= min_count:
                if max(row) * _SCALE >= _BONUS_LIMIT:
                    raise ValueError(f"{gram}: a bonus beyond the fixed point's range")
                packed = sum(round(bonus * _SCALE) << (_LANE * i) for i, bonus in enumerate(row))
                self._table[gram] = rows.setdefault(packed, packed)
        self._rows = list(self._table.values())
        self._temperature = temperature

    @cached_property
    def _grams(self) -> Grams:
        # Built at the first text (~0.1 s): a model only fused into an Opinion never needs it.
        return Grams(list(self._table))

    def log_likelihoods(self, text: str) -> list[float] | None:
        """Each class's log-likelihood of the text's known n-grams, in ``codes``' order, without the
        prior; None with no known n-gram."""
        found = self._grams.find(text)
        if not found:
            return None
        lanes = _unpack(sum(map(self._rows.__getitem__, found)), len(self.codes))
        return self.likelihoods(len(found), lanes)

    def likelihoods(self, known: int, lanes: Sequence[int]) -> list[float]:
        """The log-likelihoods of ``known`` n-grams whose rows summed to ``lanes`` (one a class)."""
        return [known * u + v / _SCALE for u, v in zip(self._unseen, lanes, strict=True)]

    def posteriors_of(self, known: int, lanes: Sequence[int]) -> list[float]:
        """``posteriors(likelihoods(known, lanes))`` in one pass: the same sums, a list fewer."""
        t = self._temperature
        return [
            (p + (known * u + v / _SCALE)) / t
            for p, u, v in zip(self._prior, self._unseen, lanes, strict=True)
        ]

    def tempered(self, text: str) -> dict[str, float]:
        """Every class's log-posterior divided by the temperature, less the likeliest's (0 for it,
        negative for the others); empty with no known n-gram. The posteriors are their exponentials,
        normalised."""
        scores = self.scaled(text)
        if scores is None:
            return {}
        return _less(self.codes, scores, max(scores))

    def scaled(self, text: str) -> list[float] | None:
        """Every class's log-posterior divided by the temperature, unnormalised, in ``codes``'
        order; None with no known n-gram."""
        likelihoods = self.log_likelihoods(text)
        return None if likelihoods is None else self.posteriors(likelihoods)

    def posteriors(self, likelihoods: list[float]) -> list[float]:
        """The log-posteriors of these log-likelihoods, divided by the temperature, unnormalised."""
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


# The linear model's weights in fixed point, a lane of 64 bits per class and one more for the
# squared idfs (the norm): each n-gram's value is offset to be positive (weights and squared idfs
# are below 2**6 and 2**7: a value below 2**28), and the offsets taken off once, knowing how many
# n-grams were summed. Each n-gram counts once, so a lane never holds more than the vocabulary's
# values: far below 2**64.
_LINEAR_SCALE = 1 << 20
_LINEAR_OFFSET = 1 << 27


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
        norm_lane = _LANE * len(self.codes)
        offsets = sum(_LINEAR_OFFSET << (_LANE * i) for i in range(len(self.codes) + 1))
        self._table: dict[str, int] = {}
        for gram, (idf, kept) in weights.grams.items():
            if not 0 < idf * idf < 1 << 7 or any(abs(w) >= 1 << 6 for w in kept.values()):
                raise ValueError(f"{gram}: an idf or a weight beyond the fixed point's range")
            if any(not 0 <= i < len(self.codes) for i in kept):
                raise ValueError(f"{gram}: a weight for a class the model does not have")
            packed = offsets + (round(idf * idf * _LINEAR_SCALE) << norm_lane)
            for i, weight in kept.items():  # a negative weight borrows from its lane's offset
                packed += round(weight * _LINEAR_SCALE) << (_LANE * i)
            self._table[gram] = packed
        self._rows = list(self._table.values())

    @classmethod
    def load(cls, path: Path = LINEAR_WEIGHTS) -> LinearModel:
        """The model shipped (by default), read once a process."""
        return _load_linear(path)

    @cached_property
    def _grams(self) -> Grams:
        return Grams(list(self._table))  # at the first text, as CategoryModel's

    def decisions(self, text: str) -> tuple[list[float], int] | None:
        """Each class's decision value, in ``codes``' order, and how many known n-grams the text
        has; None with none."""
        found = set(self._grams.find(text))
        if not found:
            return None
        lanes = _unpack(sum(map(self._rows.__getitem__, found)), len(self.codes) + 1)
        return self.values(len(found), lanes), len(found)

    def values(self, known: int, lanes: Sequence[int]) -> list[float]:
        """The decision values of ``known`` n-grams whose rows summed to ``lanes`` (one a class,
        then the norm's)."""
        offset = known * _LINEAR_OFFSET
        norm = math.sqrt((lanes[-1] - offset) * _LINEAR_SCALE)  # the root of the squares, in fixed point
        return [b + (v - offset) / norm for b, v in zip(self._bias, lanes[:-1], strict=True)]

    def added(
        self, scores: list[float] | None, weight: float, known: int, lanes: Sequence[int]
    ) -> list[float]:
        """``scores`` plus ``weight`` times ``values(known, lanes)`` (those alone without scores),
        in one pass: the same sums, a list fewer."""
        offset = known * _LINEAR_OFFSET
        norm = math.sqrt((lanes[-1] - offset) * _LINEAR_SCALE)
        if scores is None:
            return [weight * (b + (v - offset) / norm) for b, v in zip(self._bias, lanes[:-1], strict=True)]
        return [
            s + weight * (b + (v - offset) / norm)
            for s, b, v in zip(scores, self._bias, lanes[:-1], strict=True)
        ]


@lru_cache(maxsize=2)
def _load_linear(path: Path) -> LinearModel:
    return LinearModel(LinearWeights.from_json(path.read_text(encoding="utf-8")))


class Opinion:
    """The category model: naive Bayes' tempered log-posteriors plus LINEAR_WEIGHT times the
    linear model's decision values (less below LINEAR_FULL_AT known n-grams), as tempered
    log-posteriors (the likeliest's 0); naive Bayes alone from LINEAR_UNLESS, or with no linear
    model. Either alone when the other knows no n-gram of the text; empty when neither does.

    Both read the same n-grams, so they are found once, over both vocabularies (``Grams``): each
    n-gram's naive Bayes row has a lane more, counting the n-grams it knows, and its linear row
    one more than the linear model's own, counting those."""

    def __init__(
        self, bayes: CategoryModel, linear: LinearModel | None, weight: float = LINEAR_WEIGHT
    ) -> None:
        if linear is not None and bayes.codes != linear.codes:
            raise ValueError(f"the two models know other classes: {bayes.codes} and {linear.codes}")
        self.bayes, self.linear, self.weight = bayes, linear, weight
        self.codes = bayes.codes
        classes = len(self.codes)
        by_bayes = bayes._table
        by_linear = linear._table if linear is not None else {}
        vocabulary = list(dict.fromkeys([*by_bayes, *by_linear]))
        known_bayes, known_linear = 1 << (_LANE * classes), 1 << (_LANE * (classes + 1))
        rows: dict[int, int] = {}  # equal rows, one object (as CategoryModel's)
        self._bayes_rows = [
            rows.setdefault(r, r) if (r := by_bayes[g] + known_bayes if g in by_bayes else 0) else 0
            for g in vocabulary
        ]
        self._linear_rows = [by_linear[g] + known_linear if g in by_linear else 0 for g in vocabulary]
        self._grams = Grams(vocabulary)

    def tempered(self, text: str) -> dict[str, float]:
        found = self._grams.find(text)
        if not found:
            return {}
        classes, scores = len(self.codes), None
        lanes = _unpack(sum(map(self._bayes_rows.__getitem__, found)), classes + 1)
        if known := lanes[classes]:
            scores = self.bayes.posteriors_of(known, lanes[:classes])
            top = max(scores)
            if sum(map(math.exp, map(top.__rsub__, scores))) <= 1.0 / LINEAR_UNLESS:
                return _less(self.codes, scores, top)
        if self.linear is not None:
            lanes = _unpack(sum(map(self._linear_rows.__getitem__, set(found))), classes + 2)
            if known := lanes[classes + 1]:
                weight = self.weight * min(1.0, known / LINEAR_FULL_AT)
                scores = self.linear.added(scores, weight, known, lanes[: classes + 1])
        if scores is None:
            return {}
        return _less(self.codes, scores, max(scores))

    def classify(self, text: str) -> tuple[str, float]:
        """The likeliest category code and its posterior; ("", 0.0) with no known n-gram."""
        tempered = self.tempered(text)
        if not tempered:
            return "", 0.0
        best = max(tempered, key=tempered.__getitem__)  # ties: the first code in order
        return best, 1.0 / sum(math.exp(v) for v in tempered.values())
