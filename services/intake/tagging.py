"""Intake's tagging rules: which category a call is about, how sure that is, and whether it is an
emergency. Pure: the jurisdiction's indexes (lexicon.py) are built once, at the first call.

A call is read, not just searched for words:

- dialect is read as standard words first (俺 -> 我, 梯子 -> 电梯), and the speech-to-text's slips are
  heard by their sound (电题 is 电梯);
- every category phrase found (keyword, symptom, danger word) scores its length for its category;
- a phrase only mentioned around the complaint counts for less: after a context marker in its
  clause (物业说, 上次, 冒充, 交了) or as an item of a bill (垃圾清运费);
- a phrase in the clause that asks for something (麻烦, 赶紧) counts for more;
- danger, unless only feared or past (怕, 万一, 上周), weighs more and makes an emergency: the
  category's own danger words when the order is of that category, alarms (a person trapped, a
  gas smell, sparks, someone collapsed) whatever its category.

The confidence is the winner's share of all scores, with ``PRIOR`` in the denominator so that a
single short word is never sure of itself. Below ``SECOND_OPINION`` the classifier is asked too,
and the two agree or disagree (``_combine``); below ``TAG_THRESHOLD`` the order goes to triage
(其他), where a person decides: a wrong desk costs more than a triage. The classifier reads the call
without its place names and its boilerplate of asking (``_for_classifier``).

Danger the words do not find is the emergency model's to see (``is_emergency``): asked for every
call the words find no danger in, from ``EMERGENCY_THRESHOLD``.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.classifier import EMERGENCY
from shared.reference import Category, Jurisdiction

from .lexicon import ALARM, ALARMED, CONTEXT, DANGER, FEE, NOT_NOW, NOT_NOW_CLAUSE, REQUEST, Lexicon, Sense

# The default of the TAG_THRESHOLD setting: an order goes to a department at this confidence or
# above, to triage below it. The least cost on the trade-off curves (python -m tools.accuracy
# --curve; a wrong desk costs three triages) of the labelled set and the residents' calls trained on
# (tools.accuracy.resident_calls), both cross-validated (docs/performance.md#the-thresholds).
TAG_THRESHOLD = 0.85
# Below this confidence of the words the classifier is asked too, and the two are combined
# (``_combine``); above it the words are trusted alone, and the call never pays for the classifier.
# At or below TAG_THRESHOLD it is TAG_THRESHOLD: a call the words would send to triage is always
# asked about. 1.0, always: on calls in residents' words a confident word was wrong too often for
# the classifier not to be asked (the least cost of the curves, docs/performance.md).
SECOND_OPINION = 1.0
# The words alone (no classifier: TAG_FALLBACK off) are sure enough from this confidence: the
# threshold they were tuned for. TAG_THRESHOLD is chosen for the words and the classifier together
# and would send the words' every two-character keyword to triage; with the classifier off, set
# TAG_THRESHOLD to this. tools.accuracy judges the words alone at it.
WORDS_ALONE_THRESHOLD = 0.4
# The emergency model (shared.classifier.emergency_model) makes an order an emergency the words did
# not from this posterior: chosen cross-validated on the labelled set and dev_residents2's tuning
# half, with the words as they were before they were tuned on it (docs/performance.md).
EMERGENCY_THRESHOLD = 0.7
# The classifier alone (no word of any category) counts from this posterior: lower sends more
# calls to a wrong desk than it saves from triage (cross-validated on the labelled set).
FALLBACK_THRESHOLD = 0.5
# The words' weight against the classifier's, when both are asked (``_combine``): the words'
# shares are raised to this power. Chosen with TAG_THRESHOLD on the same curves
# (docs/performance.md#the-thresholds).
WORDS_WEIGHT = 0.6
# A mention (after a context marker, a bill's item) counts this share of its weight; a phrase in
# the clause that asks for something, this multiple; a phrase heard only by its sound, this share.
CONTEXT_WEIGHT = 0.3
REQUEST_WEIGHT = 1.5
SOUND_WEIGHT = 0.8
# Characters of evidence the winner must outweigh besides the other categories: one two-character
# keyword alone is 2 / (2 + PRIOR) sure.
PRIOR = 1.0
# Clauses end at punctuation (a 、 only lists things) and at spaces of a transcript.
_CLAUSE_END = re.compile(r"[，,。.！!？?；;：:\s]")


@dataclass(slots=True)
class Tag:
    category: Category
    confidence: float
    emergency: bool = False  # danger said, and not only feared: the order's urgency is emergency
    focus: str = ""  # the clause of the complaint (normalised), where placing looks first


@dataclass(slots=True)
class Reading:
    """What one call says, read once: the category scores, the danger said, and where each
    category's heaviest phrase is (for the complaint's clause)."""

    scores: dict[str, float]
    danger: dict[str, int]  # category -> OWN or ALARM, danger said of it and not only feared
    text: str  # as read: dialect as standard words
    ends: list[int]  # where each clause of the text ends
    heaviest: dict[str, tuple[float, int]]  # category -> (weight, clause) of its heaviest phrase

    def is_dangerous(self, category: str) -> bool:
        """An alarm of any category; the category's own danger words; any danger for triage (其他)."""
        if any(kind == ALARM for kind in self.danger.values()):
            return True
        return category in self.danger or (category == "other" and bool(self.danger))

    def focus(self, category: str) -> str:
        """The clause of the category's heaviest phrase: the complaint's, for the winner."""
        if category not in self.heaviest:
            return ""
        clause, ends = self.heaviest[category][1], self.ends
        return self.text[ends[clause - 1] + 1 if clause else 0 : ends[clause]]


_LEXICONS: dict[int, tuple[Jurisdiction, Lexicon]] = {}


def lexicon_for(ref: Jurisdiction) -> Lexicon:
    """The jurisdiction's indexes, built at its first call (~0.2 s) and kept with it."""
    entry = _LEXICONS.get(id(ref))
    if entry is None or entry[0] is not ref:
        if len(_LEXICONS) >= 8:  # a process loads one or two jurisdictions; tests a few
            _LEXICONS.pop(next(iter(_LEXICONS)))
        entry = _LEXICONS[id(ref)] = (ref, Lexicon(ref))
    return entry[1]


def read(text: str, ref: Jurisdiction) -> Reading:
    """Score every category a call names, weighing the complaint over what it only mentions."""
    lexicon = lexicon_for(ref)
    text = lexicon.normalise(text)
    ends = [m.start() for m in _CLAUSE_END.finditer(text)]
    ends.append(len(text))
    hits: list[tuple[int, int, Sense, float]] = []  # start, end, what it says, SOUND_WEIGHT or 1
    spans: list[tuple[int, int]] = []
    context: dict[int, int] = {}  # clause -> where its first context marker ends
    not_now: dict[int, int] = {}  # clause -> where its danger stops being present (-1: all of it)
    request: set[int] = set()
    fees: set[int] = set()
    alarmed: list[tuple[int, int]] = []  # danger whatever the category: where, in which clause
    for start, end, sense in lexicon.phrases.find(text):
        spans.append((start, end))
        markers = sense.markers
        if markers:
            clause = bisect_left(ends, start)
            if markers & CONTEXT:  # what follows the marker; a marker that is a word counts in full
                context.setdefault(clause, end)
            if markers & NOT_NOW:  # from its start: 真着 (if it caught) reaches into 着火了
                not_now.setdefault(clause, start)
            if markers & NOT_NOW_CLAUSE:
                not_now[clause] = -1
            if markers & REQUEST:
                request.add(clause)
            if markers & FEE:
                fees.add(start)
            if markers & ALARMED:
                alarmed.append((start, clause))
        if sense.words:
            hits.append((start, end, sense, 1.0))
    for start, end, (sense, phrases) in lexicon.sounds.find(lexicon.sound(text)):
        # Heard by its sound where nothing was found as written (what was sounds the same).
        # Not where something was read as written: an overlap is that word heard with a neighbour
        # (5号楼|煤气 is no 漏煤气).
        heard = text[start:end]
        if heard in phrases or any(s < end and start < e for s, e in spans):
            continue
        if lexicon.anchored(heard, phrases):
            hits.append((start, end, sense, SOUND_WEIGHT))
    # A bill's items: the phrases right before 费, and those right before them (垃圾清运费).
    billed: set[int] = set()
    if fees:
        for start, end, _, _ in sorted(hits, key=lambda h: -h[0]):
            if end in fees:
                billed.add(start)
                fees.add(start)
    scores: dict[str, float] = {}
    danger: dict[str, int] = {}
    heaviest: dict[str, tuple[float, int]] = {}
    for start, end, sense, by_sound in hits:
        clause = bisect_left(ends, start)
        scale = (end - start) * by_sound
        if start in billed or start >= context.get(clause, len(text)):
            scale *= CONTEXT_WEIGHT
        if clause in request:
            scale *= REQUEST_WEIGHT
        present = _present(not_now, clause, start)
        for word in sense.words:
            code = word.category
            weight = scale * (word.weight if word.danger == 0 or present else 1.0)
            scores[code] = scores.get(code, 0.0) + weight
            if word.danger and present:
                danger[code] = max(danger.get(code, 0), word.danger)
            if code not in heaviest or weight > heaviest[code][0]:
                heaviest[code] = (weight, clause)
    if any(_present(not_now, clause, start) for start, clause in alarmed):
        danger[""] = ALARM  # no category's: the order is an emergency, whichever desk it goes to
    if lexicon.situations:
        _situations(lexicon, text, ends, not_now, scores, danger)
    return Reading(scores, danger, text, ends, heaviest)


def _present(not_now: dict[int, int], clause: int, at: int) -> bool:
    """Danger at ``at`` is happening: not after a marker of fear or of the past in its clause."""
    since = not_now.get(clause)
    return since is None or 0 <= at < since


def _situations(
    lexicon: Lexicon,
    text: str,
    ends: list[int],
    not_now: dict[int, int],
    scores: dict[str, float],
    danger: dict[str, int],
) -> None:
    """Alarms told in parts anywhere in the call (配电房 … 进水): each part said, none only feared."""
    said: dict[int, set[int]] = {}
    chars: dict[int, int] = {}
    for start, end, parts in lexicon.parts.find(text):
        if _present(not_now, bisect_left(ends, start), start):
            for index, part in parts:
                said.setdefault(index, set()).add(part)
                chars[index] = chars.get(index, 0) + end - start
    for index, parts_said in said.items():
        situation = lexicon.situations[index]
        if len(parts_said) == situation.parts:
            danger[situation.category] = ALARM
            scores[situation.category] = scores.get(situation.category, 0.0) + DANGER * chars[index]


class Classifier(Protocol):
    """What the tagger asks for a second opinion (shared.classifier.Opinion, CategoryModel)."""

    def tempered(self, text: str) -> dict[str, float]: ...


def tag_category(
    text: str,
    hint: str | None,
    ref: Jurisdiction,
    threshold: float | None = None,
    fallback: Classifier | None = None,
    second_opinion: float = SECOND_OPINION,
    alarm: Classifier | None = None,
) -> Tag:
    """The operator's hint wins when it names a known category; otherwise what the call says.

    The confidence is the winner's share of all scores (ties: the category named first), with
    PRIOR; below ``second_opinion`` the ``fallback`` classifier is asked too (the confident path
    never pays for it); below ``threshold`` the order is 其他, for the triage desk rather than a
    wrong department. No threshold: TAG_THRESHOLD with the classifier, WORDS_ALONE_THRESHOLD
    without it. ``alarm``, the emergency model, is asked when the words say no danger
    (``is_emergency``).
    """
    if threshold is None:
        threshold = TAG_THRESHOLD if fallback is not None else WORDS_ALONE_THRESHOLD
    reading = read(text, ref)
    if hint:
        hinted = ref.find_category(hint)
        if hinted is not None:
            danger = reading.is_dangerous(hinted.code) or is_emergency(reading, ref, alarm)
            return Tag(hinted, 1.0, danger, reading.focus(hinted.code))
    best, confidence = decide(
        reading.scores,
        ref,
        threshold,
        second_opinion,
        (lambda: fallback.tempered(_for_classifier(reading.text, ref))) if fallback else None,
    )
    danger = reading.is_dangerous(best) or is_emergency(reading, ref, alarm)
    return Tag(ref.category_by_code[best], confidence, danger, reading.focus(best))


def is_emergency(reading: Reading, ref: Jurisdiction, alarm: Classifier | None) -> bool:
    """The emergency model's opinion of a call the words found no danger in: an emergency from
    EMERGENCY_THRESHOLD. It reads what the words' lists cannot hold, the situation (people under
    something falling, a child inside, 快点啊 after a problem told as it happens); a danger the
    words only saw feared or past stays the model's to judge."""
    if alarm is None:
        return False
    tempered = alarm.tempered(reading.text)
    if EMERGENCY not in tempered:
        return False
    emergency = float(tempered[EMERGENCY])  # float's __rsub__, whatever a classifier returned
    return 1.0 / sum(map(math.exp, map(emergency.__rsub__, tempered.values()))) >= EMERGENCY_THRESHOLD


def _for_classifier(text: str, ref: Jurisdiction) -> str:
    """The text as the classifier reads it: without the jurisdiction's place names (a compound's
    name says nothing of the problem, and in a short call would outweigh the one word that does)
    and without the boilerplate of asking (``Lexicon.boilerplate``: 麻烦尽快派人看看 is said of
    every problem, and leant the classifier to the categories whose examples say it most)."""
    for name, _ in ref.place_index.find(text):
        text = text.replace(name, "")
    return lexicon_for(ref).boilerplate.sub("", text)


def decide(
    scores: dict[str, float],
    ref: Jurisdiction,
    threshold: float,
    second_opinion: float,
    ask: Callable[[], dict[str, float]] | None,
) -> tuple[str, float]:
    """The category and its confidence from the scores, and the classifier when unsure (``ask``:
    its log-posterior of every category, tempered)."""
    best = max(scores, key=scores.__getitem__) if scores else "other"
    confidence = scores[best] / (sum(scores.values()) + PRIOR) if scores else 0.0
    if confidence < max(threshold, second_opinion) and ask is not None:
        best, confidence = _combine(scores, best, confidence, ask(), ref)
    return (best, confidence) if confidence >= threshold else ("other", confidence)


def _combine(
    scores: dict[str, float], words: str, sure: float, tempered: dict[str, float], ref: Jurisdiction
) -> tuple[str, float]:
    """The words and the classifier, as two opinions over every category: the product of the
    words' shares (raised to WORDS_WEIGHT) and the classifier's posteriors, normalised. Each
    category's share of the words counts PRIOR spread over all categories, so that a category no
    word names is unlikely, never impossible: the classifier can overrule a word it doubts. With
    no word at all the classifier alone counts, from FALLBACK_THRESHOLD. In logs (``tempered``:
    the classifier's log-posteriors, the likeliest's 0), and the sum's exponentials once."""
    # The sums below are mapped in C (float.__add__, __rsub__): the same as comprehensions, faster.
    if tempered.keys() <= ref.category_by_code.keys():
        known = tempered
    else:
        known = {code: v for code, v in tempered.items() if code in ref.category_by_code}
    if not known:
        return words, sure
    if scores:
        spread = PRIOR / len(ref.categories)
        total = sum(scores.values()) + PRIOR
        unnamed = WORDS_WEIGHT * math.log(spread / total)  # a category no word names
        combined = dict(zip(known, map(unnamed.__add__, known.values()), strict=True))
        for code, score in scores.items():
            if code in combined:
                combined[code] += WORDS_WEIGHT * math.log((score + spread) / total) - unnamed
    else:
        combined = known
    best = max(combined, key=combined.__getitem__)
    top = float(combined[best])  # float's __rsub__, whatever a classifier returned
    confidence = 1.0 / sum(map(math.exp, map(top.__rsub__, combined.values())))
    if not scores and confidence < FALLBACK_THRESHOLD:
        return "other", 0.0
    return best, confidence


def is_dangerous(text: str, category: Category, ref: Jurisdiction) -> bool:
    """Danger said in the text and not only feared: an alarm whatever the category (a person
    trapped, a gas smell), or the category's own danger words ("怕着火" in a parking call is colour)."""
    return read(text, ref).is_dangerous(category.code)
