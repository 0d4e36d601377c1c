"""ORM row for a rating: one per (user, movie), 0.5 to 5 stars in half steps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Float, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from api.db import MYSQL_TABLE_ARGS, Base

HALF_STARS = "rating >= 0.5 AND rating <= 5 AND ROUND(rating * 2) = rating * 2"


class Rating(Base):
    __tablename__ = "ratings"
    __table_args__ = (
        CheckConstraint(HALF_STARS, name="rating_half_stars"),
        # "a user's latest ratings": the user tower reads them on every recommendation.
        Index("ix_ratings_user_id_rated_at", "user_id", "rated_at"),
        # "a movie's ratings": average rating and counts.
        Index("ix_ratings_movie_id_rating", "movie_id", "rating"),
        MYSQL_TABLE_ARGS,
    )

    # Deleting a user or a movie that has ratings is refused rather than losing the ratings.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), primary_key=True)
    movie_id: Mapped[int] = mapped_column(ForeignKey("movies.id", ondelete="RESTRICT"), primary_key=True)
    rating: Mapped[float] = mapped_column(Float)  # exact: halves are binary fractions
    rated_at: Mapped[datetime] = mapped_column(DateTime)
