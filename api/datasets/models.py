"""ORM rows for the datasets imported: where each came from, whether it is synthetic, the counts after."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base, utcnow


class ImportedDataset(Base):
    """One import, written in its transaction: the newest row describes the data the database holds."""

    __tablename__ = "datasets"
    __table_args__ = MYSQL_TABLE_ARGS

    id: Mapped[int] = mapped_column(primary_key=True)
    description: Mapped[str] = mapped_column(String(255))  # e.g. "MovieLens 1M (official archive)"
    layout: Mapped[str] = mapped_column(String(32))  # the layout read, e.g. "ml-1m"
    # Made up by the synthetic generator: its titles look real, its users and ratings are not.
    synthetic: Mapped[bool] = mapped_column(Boolean)
    users: Mapped[int] = mapped_column(Integer)  # the tables' counts after the import
    movies: Mapped[int] = mapped_column(Integer)
    ratings: Mapped[int] = mapped_column(Integer)
    imported_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
