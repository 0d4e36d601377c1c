"""A portable batched upsert: insert rows, or update them when their key exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from sqlalchemy import Connection, FromClause
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Insert, TableClause


def upsert_statement(
    connection: Connection | AsyncConnection, table: FromClause, key: Sequence[str], update: Sequence[str]
) -> Insert:
    """Return an INSERT that updates `update` columns of an existing row with the same `key` (with none,
    leaves it as it is). Unlike INSERT IGNORE, it turns no other error (CHECK, foreign key) into a warning."""
    target = cast(TableClause, table)  # ORM models expose __table__ as a FromClause
    dialect = connection.dialect.name
    if dialect == "mysql":
        my = mysql.insert(target)
        return my.on_duplicate_key_update({c: my.inserted[c] for c in update} or {key[0]: target.c[key[0]]})
    if dialect != "sqlite":
        raise NotImplementedError(f"upsert is not implemented for the {dialect} dialect")
    lite = sqlite.insert(target)
    if not update:
        return lite.on_conflict_do_nothing(index_elements=list(key))
    return lite.on_conflict_do_update(index_elements=list(key), set_={c: lite.excluded[c] for c in update})
