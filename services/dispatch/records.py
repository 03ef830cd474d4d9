"""What a command on an order leaves behind: the events to publish and the lines of its history.
The handler stages the one and saves the other with the order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class Event:
    topic: str
    type: str
    data: BaseModel


@dataclass(frozen=True, slots=True)
class Entry:
    """A line of the order's history: what happened, and the status and level it left."""

    event: str
    status: str
    level: str
    detail: dict[str, Any] | None
