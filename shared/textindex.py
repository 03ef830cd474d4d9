"""Many phrases, one pass over a text: an Aho-Corasick automaton with leftmost-longest matches.

Used for category keywords and for place names, where the longest phrase must win
(暖气不热 over 暖气; 墨翠府社区, a community, over 墨翠府, a compound).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

import ahocorasick

T = TypeVar("T")


class PhraseIndex(Generic[T]):
    def __init__(self, phrases: Iterable[tuple[str, T]]) -> None:
        by_phrase: dict[str, list[T]] = {}
        for phrase, payload in phrases:
            if phrase:
                by_phrase.setdefault(phrase, []).append(payload)
        self._automaton = ahocorasick.Automaton()
        for phrase, payloads in by_phrase.items():
            self._automaton.add_word(phrase, (phrase, tuple(payloads)))
        self._empty = not by_phrase
        if not self._empty:
            self._automaton.make_automaton()

    def find(self, text: str) -> Iterator[tuple[str, tuple[T, ...]]]:
        """Leftmost-longest, non-overlapping matches, in text order: (phrase, payloads)."""
        if self._empty or not text:
            return
        for _end, (phrase, payloads) in self._automaton.iter_long(text):
            yield phrase, payloads
