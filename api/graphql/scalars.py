"""Scalars whose wire form differs from Strawberry's default."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry


def utc_stamp(value: datetime) -> str:
    """Return a moment as the API writes every one: RFC 3339 in UTC, to the second, with a `Z`. The
    database stores naive UTC, and a browser reads a stamp without an offset as local time; stamps
    the service makes carry microseconds and those it imports none, so all are cut to the second."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# Output only: no argument or input field takes a DateTime, so none is ever parsed.
UTC_DATETIME = strawberry.scalar(
    name="DateTime",
    description="A moment in UTC, to the second: RFC 3339 with a `Z` offset, e.g. 2026-11-30T09:15:00Z.",
    serialize=utc_stamp,
)
