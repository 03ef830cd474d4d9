"""How the events we publish are made: their ids, derived from their cause, and their bytes, a
CloudEvent in structured JSON mode (the envelope ``shared.contract`` describes)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel

from shared.contract import SPECVERSION

_ID_NAMESPACE = uuid.UUID("6f1c7a52-3f0b-4c5e-9d6e-2a7b8c9d0e1f")
_ID_HASH = hashlib.sha1(_ID_NAMESPACE.bytes, usedforsecurity=False)


def derived_id(*parts: str) -> str:
    """Ids of the events we publish derive from their cause, so a replay yields the same ids.

    ``str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts)))``, computed without the uuid module's
    objects: it runs for every event we publish, and those cost more than the hash."""
    digest = _ID_HASH.copy()
    digest.update("/".join(parts).encode())
    b = bytearray(digest.digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50  # version 5
    b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def encode_event(
    *,
    type: str,
    source: str,
    subject: str,
    time: datetime | str,
    data: BaseModel | dict[str, Any],
    id: str,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> bytes:
    """A CloudEvent in structured JSON mode, the bytes we publish. A model's data is serialised by
    pydantic straight to JSON (nulls kept), without the dict ``model_dump`` would build first.
    ``time`` may come already as RFC 3339 text, for a caller that stamps several events with one.

    The trace context (the CloudEvents distributed-tracing extension, ``shared.tracing``) follows
    ``type`` at once: the relay copies it to Kafka headers from there, without parsing the event."""
    # dict first: a model class's isinstance check goes through ABCMeta, a Python-level call.
    payload = data if isinstance(data, dict) else orjson.Fragment(data.__pydantic_serializer__.to_json(data))
    stamp = time if isinstance(time, str) else time.isoformat()
    # A literal per shape: built at once, where inserting the optional keys costs a call each.
    if tracestate is not None and traceparent is not None:
        return orjson.dumps(
            {
                "specversion": SPECVERSION,
                "id": id,
                "source": source,
                "type": type,
                "traceparent": traceparent,
                "tracestate": tracestate,
                "time": stamp,
                "subject": subject,
                "datacontenttype": "application/json",
                "data": payload,
            }
        )
    if traceparent is not None:
        return orjson.dumps(
            {
                "specversion": SPECVERSION,
                "id": id,
                "source": source,
                "type": type,
                "traceparent": traceparent,
                "time": stamp,
                "subject": subject,
                "datacontenttype": "application/json",
                "data": payload,
            }
        )
    return orjson.dumps(
        {
            "specversion": SPECVERSION,
            "id": id,
            "source": source,
            "type": type,
            "time": stamp,
            "subject": subject,
            "datacontenttype": "application/json",
            "data": payload,
        }
    )
