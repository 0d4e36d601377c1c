"""ORM rows for what a user was shown and what they did next."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base, utcnow

ARMS = ("control", "treatment")
FEEDBACK_KINDS = ("click", "watch", "dismiss")
POSITIVE_KINDS = ("click", "watch")


class Impression(Base):
    """One list of recommendations served to a user: by which version, in which arm of which
    experiment (both None outside one), the movies in the order shown."""

    __tablename__ = "impressions"
    __table_args__ = MYSQL_TABLE_ARGS

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)  # random, 63 bits
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    experiment_id: Mapped[int | None] = mapped_column(Integer, index=True)
    arm: Mapped[str | None] = mapped_column(String(9))
    version_id: Mapped[int] = mapped_column(Integer)
    movie_ids: Mapped[str] = mapped_column(Text)  # comma-separated, in the order shown
    shown_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class Feedback(Base):
    """What a user did with a movie an impression showed them, before (or instead of) rating it."""

    __tablename__ = "feedback"
    __table_args__ = (CheckConstraint(f"kind IN {FEEDBACK_KINDS}", name="kind"), MYSQL_TABLE_ARGS)

    id: Mapped[int] = mapped_column(primary_key=True)
    impression_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("impressions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(Integer)
    movie_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
