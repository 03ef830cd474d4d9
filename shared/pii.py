"""Masking of personal data (a resident's name and phone) for everything that leaves intake/notify."""

from __future__ import annotations

import re
from typing import Any

_DIGITS = re.compile(r"\d")
# Residents dictate numbers in many spellings: full-width digits, +86, spaces or dashes inside.
_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_MOBILE = re.compile(r"(?<!\d)((?:\+?86[\s-]?)?1[3-9]\d)[\s-]?\d{4}[\s-]?(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3}-?)\d{4}(\d{3,4})(?!\d)")
# Both patterns hold four digits in a row (\d matches full-width digits too).
_FOUR_DIGITS = re.compile(r"\d{4}")


def mask_name(name: str | None) -> str | None:
    """孙大爷 -> 孙**: the family name stays so a department can address the resident politely."""
    if not name or not name.strip():
        return name if name is None else ""
    name = name.strip()
    return name[0] + "*" * max(len(name) - 1, 1)


def mask_phone(phone: str | int | None) -> str | None:
    """13800000000 -> 138****0000: enough to confirm a number, not enough to dial it. Shorter
    numbers (landlines without area code) keep only their last two digits."""
    if phone is None or phone == "":
        return None if phone is None else ""
    digits = "".join(_DIGITS.findall(str(phone).translate(_FULL_WIDTH)))
    if len(digits) >= 11:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    if len(digits) > 5:
        return "*" * (len(digits) - 2) + digits[-2:]
    return "*" * len(digits)


def mask_phones_in_text(text: str) -> str:
    """Residents often dictate their number into the complaint itself."""
    if not _FOUR_DIGITS.search(text):  # most texts: no number of either kind can be in them
        return text
    normalised = text.translate(_FULL_WIDTH)
    masked = _MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", normalised)
    masked = _LANDLINE.sub(lambda m: f"{m.group(1)}****{m.group(2)}", masked)
    return masked if masked != normalised else text


def masked_contact(caller: dict[str, Any] | None) -> dict[str, str | None] | None:
    if not caller:
        return None
    return {"name": mask_name(caller.get("name")), "phone": mask_phone(caller.get("phone"))}
