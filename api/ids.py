"""Ids from untrusted text: ASCII digits only, within the database's signed 32-bit id columns."""

from __future__ import annotations

MAX_ID = 2**31 - 1  # GraphQL's Int and every id column; a larger number is nobody's id


def parse_id(raw: str, largest: int = MAX_ID) -> int | None:
    """Return the id written in raw, or None when raw is not one (empty, not ASCII digits, too big)."""
    if not (0 < len(raw) <= len(str(largest)) and raw.isascii() and raw.isdigit()):  # "²".isdigit() is True
        return None
    value = int(raw)
    return value if value <= largest else None
