"""The three rates (三率) over the read model: dispatch's definitions, the api's arithmetic. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

# ---- the three rates (三率) ---------------------------------------------------------------------

# Dispatch's definitions (docs/architecture.md), over the read model: the dispatches assigned in
# the window; the orders rated in it. The counting is the store's (``queries.rate_counts``).
RATE_WINDOW = timedelta(days=30)
SATISFIED = ("satisfied", "basically_satisfied")


@dataclass(frozen=True, slots=True)
class RateCounts:
    dispatches: int = 0  # assigned in the window
    signed_in_time: int = 0  # signed for (签收) by their accept-by
    due: int = 0  # lead dispatches resolved, or past their resolve-by
    resolved_in_time: int = 0  # lead dispatches resolved by their resolve-by
    rated: int = 0  # orders the residents answered for (a department's: those it resolved as lead)
    satisfied: int = 0  # of which satisfied or basically satisfied

    def rates(self) -> tuple[float | None, float | None, float | None]:
        """Response, resolution, satisfaction; None where nothing counts yet (an answer says so,
        where dispatch's gauge reads 1)."""
        return (
            ratio(self.signed_in_time, self.dispatches),
            ratio(self.resolved_in_time, self.due),
            ratio(self.satisfied, self.rated),
        )


def ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def rate_counts(
    activity: Iterable[tuple[str, int, int, int, int]], ratings: Iterable[tuple[str, int, int]]
) -> dict[str, RateCounts]:
    """Per name (a department or a community), the dispatches' counts and the residents' answers."""
    counts = {name: RateCounts(*numbers) for name, *numbers in activity}
    for name, rated, satisfied in ratings:
        c = counts.get(name, RateCounts())
        counts[name] = RateCounts(c.dispatches, c.signed_in_time, c.due, c.resolved_in_time, rated, satisfied)
    return dict(sorted(counts.items()))
