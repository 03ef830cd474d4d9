"""诉求类型: whether a call asks to know (inquiry), for help, complains of someone (complaint),
reports a wrong (report) or suggests (suggestion). Pure; the words are the jurisdiction's
(``request_types`` in its reference data, from tools/yantai/request_types.yaml).

Every cue found weighs its length, and a word that names a type outright (投诉, 举报, 建议)
``SAID_WEIGHT`` times that: one Aho-Corasick pass over the text. Cues that lead by ``DECISIVE``
characters decide. Otherwise, with a trained model
(``TypeModel``: shared.classifier's naive Bayes over character n-grams, trained on
shared/data/request_type_examples.jsonl) the text's log-likelihood under each type is the base,
each character of cue adds ``CUE_NATS``, and the category's usual type (a noise call is a
complaint, a 违建 a report) only ``PRIOR_NATS``: a weak prior that decides near-ties, not the call.
The heaviest type wins, the category's on a tie.

Without a model (intake's classifier switched off) the call starts from its category's usual type
with ``CATEGORY_PRIOR`` characters of weight and the cues move it. The cues alone lean on the
category: on calls written by someone who never saw them they tag about half right; the model,
which has read how each type is said (a question, a grievance against someone, someone else's
wrong, an idea), is what generalises (docs/performance.md).
"""

from __future__ import annotations

from typing import Protocol

from shared.contract import REQUEST_TYPES, RequestType
from shared.reference import Category, Jurisdiction
from shared.textindex import PhraseIndex

# The category's type counts as this many characters of cue: two short cues outweigh it, one
# does not ("问问" in a heating call that wants heat is still help).
CATEGORY_PRIOR = 2.5
# A word that names the type outright counts this many times its length.
SAID_WEIGHT = 3.0
# With a model: the natural-log weight of a character of cue, and of the category's usual type.
# Chosen on the dev set's tuning half (and the labelled set) with the cues as they were before the
# half was read, so that the cues' weight was not chosen on calls they had been tuned on: 12.8 and 0
# were the best there (74.1%); 1 nat of prior costs 3 calls of 201 and lets the category decide
# when the words say nothing (docs/performance.md).
CUE_NATS = 12.8
PRIOR_NATS = 1.0
# Cues that lead by this many characters decide without the model: 4 characters are 51 nats, more
# than the model's reading of a call moves a type (none of the 1,031 calls it is trained on, each
# asked of a model trained without it, was tagged otherwise), and a quarter of calls skip its cost.
DECISIVE = 4.0


class TypeModel(Protocol):
    """What the type tagger reads the text with (shared.classifier.CategoryModel over the types)."""

    codes: tuple[str, ...]

    def log_likelihoods(self, text: str) -> list[float] | None: ...


_TYPES: dict[str, RequestType] = {kind: kind for kind in REQUEST_TYPES}
_INDEXES: dict[int, tuple[Jurisdiction, PhraseIndex[tuple[RequestType, float]]]] = {}


def _index(ref: Jurisdiction) -> PhraseIndex[tuple[RequestType, float]]:
    """The jurisdiction's cues in one automaton, built at its first call and kept with it."""
    entry = _INDEXES.get(id(ref))
    if entry is None or entry[0] is not ref:
        if len(_INDEXES) >= 8:  # a process loads one or two jurisdictions; tests a few
            _INDEXES.pop(next(iter(_INDEXES)))
        words = ref.request_types
        phrases = [(p, (kind, 1.0)) for kind, cues in words.cues.items() for p in cues]
        phrases += [(p, (kind, SAID_WEIGHT)) for p, kind in words.said.items()]
        entry = _INDEXES[id(ref)] = (ref, PhraseIndex(phrases))
    return entry[1]


def tag_request_type(
    text: str, category: Category, ref: Jurisdiction, model: TypeModel | None = None
) -> RequestType:
    """The call's 诉求类型, from its words, the model's reading of them, and its category."""
    cues: dict[RequestType, float] = {}
    for phrase, senses in _index(ref).find(text):
        for kind, weight in senses:
            cues[kind] = cues.get(kind, 0.0) + len(phrase) * weight
    if model is None:
        scores: dict[RequestType, float] = {category.request_type: CATEGORY_PRIOR}
        for kind, weight in cues.items():
            scores[kind] = scores.get(kind, 0.0) + weight
    else:
        ranked = sorted(cues.values(), reverse=True)
        if ranked and ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0) >= DECISIVE:
            return max(cues, key=cues.__getitem__)
        scores = {category.request_type: PRIOR_NATS}
        likelihoods = model.log_likelihoods(text)
        if likelihoods is not None:
            top = max(likelihoods)
            for code, likelihood in zip(model.codes, likelihoods, strict=True):
                read = _TYPES.get(code)
                if read is not None:
                    scores[read] = scores.get(read, 0.0) + likelihood - top
        for kind, weight in cues.items():
            scores[kind] = scores.get(kind, 0.0) + weight * CUE_NATS
    best = category.request_type
    for kind, score in scores.items():
        if score > scores[best]:
            best = kind
    return best


def request_type_of(
    given: RequestType | None,
    text: str,
    category: Category,
    ref: Jurisdiction,
    model: TypeModel | None = None,
) -> RequestType:
    """The operator's type wins; otherwise what the call says."""
    return given if given is not None else tag_request_type(text, category, ref, model)
