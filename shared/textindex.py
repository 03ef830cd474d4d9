"""Many phrases, one pass over a text: an Aho-Corasick automaton with leftmost-longest matches.

Used for category keywords and for place names, where the longest phrase must win
(暖气不热 over 暖气; 墨翠府社区, a community, over 墨翠府, a compound).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from ahocorasick_rs import AhoCorasick, MatchKind

T = TypeVar("T")


class PhraseIndex(Generic[T]):
    def __init__(self, phrases: Iterable[tuple[str, T]]) -> None:
        by_phrase: dict[str, list[T]] = {}
        for phrase, payload in phrases:
            if phrase:
                by_phrase.setdefault(phrase, []).append(payload)
        # The automaton gives the index of the phrase it found: the same index in these.
        self._found = [(phrase, tuple(payloads)) for phrase, payloads in by_phrase.items()]
        # ahocorasick_rs (Rust's aho-corasick): a third of pyahocorasick's time on a large
        # gazetteer, whose node lookups scan a node's children one by one.
        self._automaton = (
            AhoCorasick(list(by_phrase), matchkind=MatchKind.LeftmostLongest) if by_phrase else None
        )

    def find(self, text: str) -> Iterator[tuple[str, tuple[T, ...]]]:
        """Leftmost-longest, non-overlapping matches, in text order: (phrase, payloads)."""
        if self._automaton is None or not text:
            return
        found = self._found
        for index, _start, _end in self._automaton.find_matches_as_indexes(text):
            yield found[index]
