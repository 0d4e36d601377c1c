"""Scalars whose wire form differs from Strawberry's default."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry


def _serialize(value: datetime) -> str:
    """Return RFC 3339 with its offset: the database stores naive UTC, and a browser reads a stamp
    without an offset as local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# Output only: no argument or input field takes a DateTime, so none is ever parsed.
UTC_DATETIME = strawberry.scalar(
    name="DateTime",
    description="A moment in time, in UTC: RFC 3339 with a `Z` offset, e.g. 2026-11-30T09:15:00Z.",
    serialize=_serialize,
)
