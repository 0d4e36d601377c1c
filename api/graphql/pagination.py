"""Cursor pagination: opaque cursors, page-size bounds and the Relay-style connection types."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Generic, Self, TypeVar

import strawberry

from api.errors import BadUserInput

MAX_PAGE = 100  # bounds every first and limit argument
Node = TypeVar("Node")
T = TypeVar("T")


def check_bound(value: int, name: str) -> int:
    """Return value, or raise BadUserInput when it is outside 1..MAX_PAGE."""
    if not 1 <= value <= MAX_PAGE:
        raise BadUserInput(f"{name} must be between 1 and {MAX_PAGE}")
    return value


def encode_cursor(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(kind: str, cursor: str | None, parse: Callable[[str], T | None]) -> T | None:
    """Return the position inside a cursor of this kind, as `parse` reads it (None: no position of this
    list), or raise BadUserInput for a foreign or broken cursor."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
    except ValueError:  # binascii.Error and UnicodeError too
        raise BadUserInput("after is not a valid cursor") from None
    prefix, _, value = text.partition(":")
    position = parse(value) if prefix == kind else None
    if position is None:
        raise BadUserInput("after is not a valid cursor for this list")
    return position


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[Node]):
    cursor: str
    node: Node


@strawberry.type
class Connection(Generic[Node]):
    edges: list[Edge[Node]]
    page_info: PageInfo

    @strawberry.field
    def nodes(self) -> list[Node]:
        return [edge.node for edge in self.edges]

    @classmethod
    def of(cls, rows: Sequence[T], first: int, cursor: Callable[[T], str], node: Callable[[T], Node]) -> Self:
        """Return the page of the first `first` rows; a row more tells that there is a next page."""
        edges = [Edge(cursor=cursor(row), node=node(row)) for row in rows[:first]]
        end = edges[-1].cursor if edges else None
        return cls(edges=edges, page_info=PageInfo(has_next_page=len(rows) > first, end_cursor=end))
