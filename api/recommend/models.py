"""ORM row for a user's kept recommendation list, computed ahead of requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base


class KeptList(Base):
    """A user's top movies as a model version computed them, and what they were computed from.

    A row answers a request only while every input it names is still current (api/recommend/kept.py):
    the active version, the user's ratings version, the catalogue's newest movie and the time bucket.
    """

    __tablename__ = "kept_recommendations"
    __table_args__ = MYSQL_TABLE_ARGS

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    ratings_version: Mapped[int] = mapped_column(BigInteger)
    newest_movie: Mapped[int | None] = mapped_column(Integer)
    time_key: Mapped[int] = mapped_column(Integer)
    newest_rating: Mapped[int | None] = mapped_column(BigInteger)  # epoch seconds
    items: Mapped[str] = mapped_column(Text)  # JSON [[movie_id, score, [because ids]], ...], best first
    computed_at: Mapped[datetime] = mapped_column(DateTime)
