"""What intake reads a call with: the jurisdiction's words (keywords, symptoms, danger, markers,
dialect) in indexes built once per loaded jurisdiction, never per call.

- ``normalise`` reads dialect words as the standard ones the categories are written in (俺 -> 我,
  梯子 -> 电梯): one pass, and a copy of the text only when one is found.
- ``phrases`` finds every category phrase and every marker, each with what it says (``Sense``).
- ``sounds`` finds category phrases by their sound (toneless pinyin, the sound-alikes of
  ``speech.sound_alike`` merged), for the speech-to-text's slips: 电题, 店梯 and 垫梯 are 电梯. A
  call's characters become one symbol per syllable (``str.translate``), matched in one more pass.
- ``parts`` finds the parts of the categories' situations (water + power room).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Generic, TypeVar

from ahocorasick_rs import AhoCorasick, MatchKind

from shared.reference import Jurisdiction

# Markers, as bits: a phrase may be a marker and a category's word at once (冒充).
CONTEXT, FEE, REQUEST, NOT_NOW, NOT_NOW_CLAUSE, NEUTRAL, ALARMED = 1, 2, 4, 8, 16, 32, 64
# What a category's word is worth against a plain keyword (weighed by its length). Danger words
# and alarms weigh more: a trapped person or a gas smell is the problem, whatever else is said.
KEYWORD, SYMPTOM, DANGER = 1.0, 1.0, 1.5
# Danger, as the order's urgency reads it: none, the category's own, or wherever it is said.
OWN, ALARM = 1, 2
# Syllables as symbols of the Unicode private use area: no character of a call is one of them.
_SYMBOLS = 0xE000

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Word:
    """A category's phrase: which category, its weight, and its danger (0, OWN or ALARM)."""

    category: str
    weight: float
    danger: int


@dataclass(frozen=True, slots=True)
class Sense:
    """All a phrase says: the category words it is, and the markers (bits) it is."""

    words: tuple[Word, ...]
    markers: int


@dataclass(frozen=True, slots=True)
class Situation:
    """Danger told in parts (电箱 … 进水): an alarm of ``category`` when every part is said."""

    category: str
    parts: int


_START, _END = itemgetter(1), itemgetter(2)


class Index(Generic[T]):
    """Phrases to what they say. ``find`` gives (start, end, payload) in text order: every phrase
    found, but none inside a longer one (暖气不热, not 暖气 in it). Two that only overlap are both
    kept, so that a keyword never hides a danger word that begins inside it (自来水|管爆了)."""

    def __init__(self, payloads: dict[str, T]) -> None:
        ordered = sorted(payloads.items())  # sorted: the same automaton every run
        self._payloads = [payload for _, payload in ordered]
        self._automaton = (
            AhoCorasick([p for p, _ in ordered], matchkind=MatchKind.Standard) if ordered else None
        )

    def find(self, text: str) -> list[tuple[int, int, T]]:
        if self._automaton is None:
            return []
        matches = self._automaton.find_matches_as_indexes(text, overlapping=True)
        if len(matches) > 1:  # by start, the longest first: two stable sorts in C, not a key's tuples
            matches.sort(key=_END, reverse=True)
            matches.sort(key=_START)
        payloads, found, reach = self._payloads, [], -1
        for i, start, end in matches:
            if end > reach:  # not inside the match that reaches furthest so far
                found.append((start, end, payloads[i]))
                reach = end
        return found


@cache
def _syllables() -> dict[str, str]:
    """Every character pypinyin knows, to its first reading without tone (ü as u): once a process."""
    from pypinyin.pinyin_dict import pinyin_dict  # ~40,000 characters, loaded only by intake

    readings: dict[str, str] = {}
    for code, spelled in pinyin_dict.items():
        first = unicodedata.normalize("NFD", spelled.split(",", 1)[0])
        readings[chr(code)] = "".join(c for c in first if not unicodedata.combining(c))
    return readings


def sound_table(alike: dict[str, str]) -> tuple[dict[int, str], int]:
    """Character -> the symbol of its syllable, sound-alikes merged (zh -> z: 知 and 资 are one), and
    how many symbols there are."""
    symbols: dict[str, str] = {}
    table: dict[int, str] = {}
    for char, syllable in _syllables().items():
        for heard, as_ in alike.items():
            syllable = syllable.replace(heard, as_)
        table[ord(char)] = symbols.setdefault(syllable, chr(_SYMBOLS + len(symbols)))
    return table, len(symbols)


class Lexicon:
    """The indexes of one jurisdiction's words."""

    def __init__(self, ref: Jurisdiction) -> None:
        speech = ref.speech
        self.dialect: Index[str] = Index(dict(speech.dialect))
        words: dict[str, dict[str, Word]] = {}

        def add(phrases: Iterable[str], category: str, weight: float, danger: int) -> None:
            for phrase in phrases:
                known = words.setdefault(phrase, {}).get(category)
                if known is not None:  # a phrase in two lists: the higher weight, the wider danger
                    weight, danger = max(weight, known.weight), max(danger, known.danger)
                words[phrase][category] = Word(category, weight, danger)

        self.situations: list[Situation] = []
        parts: dict[str, list[tuple[int, int]]] = {}
        for c in ref.categories:
            add((c.name, *c.keywords), c.code, KEYWORD, 0)
            add(c.symptoms, c.code, SYMPTOM, 0)
            add(c.danger_keywords, c.code, DANGER, OWN)
            add(c.alarms, c.code, DANGER, ALARM)
            for situation in c.situations:
                for part, phrases in enumerate(situation):
                    for phrase in phrases:
                        parts.setdefault(phrase, []).append((len(self.situations), part))
                self.situations.append(Situation(c.code, len(situation)))
        # A part found inside a longer one is still said: 配电室 is a 配电 of the sparks' situation.
        for phrase, said in parts.items():
            said.extend(
                part
                for shorter, its in parts.items()
                if shorter != phrase and shorter in phrase
                for part in its
                if part not in said
            )
        self.parts: Index[tuple[tuple[int, int], ...]] = Index({p: tuple(s) for p, s in parts.items()})
        markers: dict[str, int] = {}
        for bit, phrases in (
            (CONTEXT, speech.context),
            (FEE, speech.fee),
            (REQUEST, speech.request),
            (NOT_NOW, speech.not_now),
            (NOT_NOW_CLAUSE, speech.not_now_clause),
            (NEUTRAL, speech.neutral),
            (ALARMED, speech.alarms),
        ):
            for phrase in phrases:
                markers[phrase] = markers.get(phrase, 0) | bit
        # What asks for something (麻烦, 尽快, 派人, 来看看): said of every problem, no category's.
        # The classifier reads the call without it (tagging._for_classifier).
        self.boilerplate = re.compile("|".join(map(re.escape, sorted(speech.request, key=len, reverse=True))))
        self.phrases: Index[Sense] = Index(
            {p: Sense(tuple(words.get(p, {}).values()), markers.get(p, 0)) for p in words.keys() | markers}
        )
        self._table, count = sound_table(speech.sound_alike)
        symbols = range(_SYMBOLS, _SYMBOLS + count)
        by_sound: dict[str, dict[str, Word]] = {}
        spelled: dict[str, list[str]] = {}
        for phrase, per_category in words.items():
            key = self.sound(phrase)
            # Two syllables at least, and every character with a reading (not KTV).
            if len(phrase) < 2 or phrase in speech.no_sound or any(ord(ch) not in symbols for ch in key):
                continue
            spelled.setdefault(key, []).append(phrase)
            merged = by_sound.setdefault(key, {})
            for category, word in sorted(per_category.items()):
                known = merged.get(category)
                # Heard, not read: a two-character danger word's sound is too often something else's.
                danger = word.danger if len(phrase) > 2 else 0
                if known is None or word.weight > known.weight or danger > known.danger:
                    merged[category] = Word(category, word.weight, danger)
        self.sounds: Index[tuple[Sense, tuple[str, ...]]] = Index(
            {k: (Sense(tuple(w.values()), 0), tuple(spelled[k])) for k, w in by_sound.items()}
        )
        self._function_chars = frozenset(speech.function_chars)

    def anchored(self, heard: str, phrases: tuple[str, ...]) -> bool:
        """A slip keeps a character of the word it is heard as, in its place, and not 了 or 的: 电题
        is 电梯, but neither 问问 (嗡嗡) nor 下的 (瞎的) is what it sounds like."""
        stop = self._function_chars
        return any(a == b and a not in stop for phrase in phrases for a, b in zip(heard, phrase, strict=True))

    def normalise(self, text: str) -> str:
        """Dialect words as the standard ones (the keywords' spelling)."""
        found = self.dialect.find(text)
        if not found:
            return text
        parts: list[str] = []
        at = 0
        for start, end, standard in found:
            if start >= at:  # two dialect words that overlap: the first one read
                parts += (text[at:start], standard)
                at = end
        parts.append(text[at:])
        return "".join(parts)

    def sound(self, text: str) -> str:
        """The text with each character pypinyin knows as the symbol of its syllable."""
        return text.translate(self._table)
