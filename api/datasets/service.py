"""Queries and writes for the record of imports."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.datasets.models import ImportedDataset
from api.db import utcnow


def record_import(
    *, session: Session, description: str, layout: str, synthetic: bool, users: int, movies: int, ratings: int
) -> ImportedDataset:
    """Record an import in the caller's transaction (the import's own): what was read, whether it is the
    synthetic sample, and the table counts after it."""
    row = ImportedDataset(
        description=description[:255],
        layout=layout,
        synthetic=synthetic,
        users=users,
        movies=movies,
        ratings=ratings,
        imported_at=utcnow().replace(microsecond=0),  # as MySQL's DATETIME keeps it
    )
    session.add(row)
    session.flush()
    return row


def current_dataset(*, session: Session) -> ImportedDataset | None:
    """Return the newest import, which describes the data the database holds; None before any."""
    query = select(ImportedDataset).order_by(ImportedDataset.id.desc()).limit(1)
    return session.execute(query).scalar_one_or_none()
