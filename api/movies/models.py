"""ORM rows for movies, genres and the many-to-many between them, and movies' tags."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, SmallInteger, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import MYSQL_TABLE_ARGS, Base, CreatedAtMixin
from ml.movielens.format import MAX_TAG

movie_genres = Table(
    "movie_genres",
    Base.metadata,
    # A movie's genre links belong to the movie; a genre still in use cannot be deleted.
    Column("movie_id", Integer, ForeignKey("movies.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "genre_id", SmallInteger, ForeignKey("genres.id", ondelete="RESTRICT"), primary_key=True, index=True
    ),
    **MYSQL_TABLE_ARGS,
)


class Genre(Base):
    __tablename__ = "genres"
    __table_args__ = MYSQL_TABLE_ARGS

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(32), unique=True)


class Movie(CreatedAtMixin, Base):
    __tablename__ = "movies"
    __table_args__ = MYSQL_TABLE_ARGS

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(255), index=True)
    year: Mapped[int | None] = mapped_column(SmallInteger, index=True)
    description: Mapped[str | None] = mapped_column(Text)  # at most MAX_DESCRIPTION characters
    # how many ratings the movie has, kept by api/ratings/writes.py (migration 0012 says why not a trigger)
    rating_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0", index=True)

    genres: Mapped[list[Genre]] = relationship(secondary=movie_genres, lazy="raise", order_by=Genre.name)


class MovieTag(Base):
    """One of a movie's tags, by position: 0 is the most applied (migration 0010 says why no tag key)."""

    __tablename__ = "movie_tags"
    __table_args__ = MYSQL_TABLE_ARGS

    movie_id: Mapped[int] = mapped_column(ForeignKey("movies.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    tag: Mapped[str] = mapped_column(String(MAX_TAG))
