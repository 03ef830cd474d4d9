"""Masking of personal data (a resident's name and phone) for everything that leaves intake/notify."""

from __future__ import annotations

import re
from typing import Any

_DIGITS = re.compile(r"\d")
# Mainland mobile numbers and landlines with area code, as they appear in free text.
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)|(?<!\d)(0\d{2,3}-?)\d{4}(\d{3,4})(?!\d)")


def mask_name(name: str | None) -> str | None:
    """孙大爷 -> 孙**: the family name stays so a department can address the resident politely."""
    if not name:
        return name
    name = name.strip()
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_phone(phone: str | None) -> str | None:
    """13800000000 -> 138****0000: enough to confirm a number, not enough to dial it."""
    if not phone:
        return phone
    digits = "".join(_DIGITS.findall(phone))
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_phones_in_text(text: str) -> str:
    """Residents often dictate their number into the complaint itself."""

    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return f"{m.group(1)}****{m.group(2)}"
        return f"{m.group(3)}****{m.group(4)}"

    return _PHONE_IN_TEXT.sub(repl, text)


def masked_contact(caller: dict[str, Any] | None) -> dict[str, str | None] | None:
    if not caller:
        return None
    return {"name": mask_name(caller.get("name")), "phone": mask_phone(caller.get("phone"))}
