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
from pathlib import Path

DEFAULT_EXAMPLES = Path(__file__).parent / "data" / "category_examples.jsonl"
NGRAMS = (1, 2, 3)
ALPHA = 0.1
# An n-gram seen in more categories than this (的, 小区, 了 …) says little about any of them and
# would cost most of the scoring loop: it is left out of the model, like an unknown one.
MAX_CLASSES = 12
# Naive Bayes sums ~100 correlated n-grams as if independent, so its raw posteriors are all but
# 0 or 1; dividing the log-odds by this temperature makes the top posterior a usable confidence.
TEMPERATURE = 8.0
# Digits (house, room and plate numbers) carry no category: one symbol stands for them all.
_FOLD = str.maketrans("0123456789", "0000000000")


@dataclass(frozen=True, slots=True)
class Example:
    content: str
    category: str


def load_examples(path: Path = DEFAULT_EXAMPLES) -> list[Example]:
    examples: list[Example] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        raw = json.loads(line)
        content, category = raw.get("content"), raw.get("category")
        if not (isinstance(content, str) and content and isinstance(category, str) and category):
            raise ValueError(f"{path}: line {number}: content and category must be non-empty strings")
        examples.append(Example(content, category))
    return examples


def ngrams(text: str) -> list[str]:
    text = text.lower().translate(_FOLD)
    return [text[i : i + n] for n in NGRAMS for i in range(len(text) - n + 1)]


class CategoryModel:
    """Trained on example calls; ``classify`` says which category a text most resembles, and how surely.
    Alpha, temperature and MAX_CLASSES were chosen by cross-validation on the labelled set."""

    def __init__(
        self, examples: Iterable[Example], alpha: float = ALPHA, temperature: float = TEMPERATURE
    ) -> None:
        counts: dict[str, Counter[str]] = {}
        docs: Counter[str] = Counter()
        for example in examples:
            counts.setdefault(example.category, Counter()).update(ngrams(example.content))
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
        table: dict[str, list[tuple[int, float]]] = {}
        for i, code in enumerate(self.codes):
            for gram, n in counts[code].items():
                table.setdefault(gram, []).append((i, math.log1p(n / alpha)))
        self._table = {gram: tuple(entries) for gram, entries in table.items() if len(entries) <= MAX_CLASSES}
        self._temperature = temperature

    def classify(self, text: str) -> tuple[str, float]:
        """The likeliest category code and its posterior (tempered); ("", 0.0) with no known n-gram."""
        bonus = [0.0] * len(self.codes)
        known = 0
        for entries in map(self._table.get, ngrams(text)):
            if entries is not None:
                known += 1
                for i, weight in entries:
                    bonus[i] += weight
        if not known:
            return "", 0.0
        scores = [p + known * u + b for p, u, b in zip(self._prior, self._unseen, bonus, strict=True)]
        best = max(range(len(scores)), key=scores.__getitem__)  # ties: the first code in order
        top, t = scores[best], self._temperature
        return self.codes[best], 1.0 / sum(math.exp((s - top) / t) for s in scores)
