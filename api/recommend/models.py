"""ORM row for a user's kept recommendation list."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base


class KeptList(Base):
    """A user's top movies and the fingerprint of what they were computed from (api/recommend/kept.py).

    A row answers a request only while its fingerprint is the one computed for that request.
    """

    __tablename__ = "kept_recommendations"
    __table_args__ = MYSQL_TABLE_ARGS

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    fingerprint: Mapped[str] = mapped_column(String(32))
    newest_rating: Mapped[int | None] = mapped_column(BigInteger)  # epoch s, read by the fingerprint
    items: Mapped[str] = mapped_column(Text)  # JSON [[movie_id, score, [because ids]], ...], best first
    computed_at: Mapped[datetime] = mapped_column(DateTime)
