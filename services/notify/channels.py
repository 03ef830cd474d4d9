"""Channels behind one interface. Adding a channel means one class here and one line in CHANNELS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.logs import get_logger
from shared.pii import mask_phone

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Recipient:
    audience: str
    address: str  # a phone number for residents, a department code or supervisor level otherwise
    work_order_id: str


class Channel(Protocol):
    name: str

    async def send(self, to: Recipient, body: str) -> None:
        """Deliver or raise; the caller records the attempt either way."""


class LogChannel:
    """For development: the message goes to the service log (with the phone masked)."""

    name = "log"

    async def send(self, to: Recipient, body: str) -> None:
        address = mask_phone(to.address) if to.audience == "resident" else to.address
        log.info("notification", audience=to.audience, to=address, work_order_id=to.work_order_id, body=body)


CHANNELS: dict[str, Channel] = {"log": LogChannel()}
