"""Migrations: reversible on every backend, and in step with the ORM models."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from api.cli import alembic_config
from api.db import compare_type, make_engine
from api.models import metadata
from api.settings import Settings
from tests.conftest import DatabaseFactory

TABLES = {
    "users", "occupations", "movies", "genres", "movie_genres", "ratings", "model_versions", "kept_recommendations",
    "api_keys", "admin_sessions", "sign_in_failures", "activations", "movie_tags",
}  # fmt: skip


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_factory: DatabaseFactory) -> None:
    url = database_factory.new_url()
    config = alembic_config(Settings(database_url=url))
    command.upgrade(config, "head")
    assert _tables(url) == TABLES
    command.downgrade(config, "base")
    assert _tables(url) == set()
    command.upgrade(config, "head")
    assert _tables(url) == TABLES


def test_models_and_migrations_agree(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_reference_vocabularies_are_seeded(migrated_url: str) -> None:
    from sqlalchemy import text

    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            occupations = dict(connection.execute(text("SELECT id, name FROM occupations")).all())
            genres = [r[0] for r in connection.execute(text("SELECT name FROM genres ORDER BY id"))]
    finally:
        engine.dispose()
    assert len(occupations) == 21
    assert occupations[12] == "programmer"
    assert genres[:3] == ["Action", "Adventure", "Animation"] and len(genres) == 18


def test_half_stars_up_down_up_with_ratings_in_the_table(database_factory: DatabaseFactory) -> None:
    """0008 keeps whole-star ratings as they were, admits half stars only in half steps (the database
    checks it), and refuses to go back while a half star would be lost."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import (
        DBAPIError,
    )  # MariaDB reports a failed CHECK as error 4025, not an IntegrityError

    url = database_factory.new_url()
    config = alembic_config(Settings(database_url=url))
    command.upgrade(config, "0007")
    engine = make_engine(url)

    def rate(connection: object, movie: int, stars: float) -> None:
        connection.execute(  # type: ignore[attr-defined]
            text(
                "INSERT INTO ratings (user_id, movie_id, rating, rated_at) VALUES (1, :m, :r, '2026-01-01 00:00:00')"
            ),
            {"m": movie, "r": stars},
        )

    def ratings() -> list[tuple[int, float]]:
        with engine.connect() as connection:
            return [
                (m, float(r))
                for m, r in connection.execute(text("SELECT movie_id, rating FROM ratings ORDER BY movie_id"))
            ]

    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, gender, age, occupation_id, zip_code, ratings_version, created_at)"
                    " VALUES (1, 'F', 25, 1, '12345', 0, '2026-01-01 00:00:00')"
                )
            )
            for movie in (1, 2, 3):
                connection.execute(
                    text(
                        "INSERT INTO movies (id, title, year, created_at) VALUES (:m, 'A', 1999, '2026-01-01 00:00:00')"
                    ),
                    {"m": movie},
                )
            rate(connection, 1, 4)
            rate(connection, 2, 1)
        command.upgrade(config, "head")
        assert ratings() == [(1, 4.0), (2, 1.0)]
        with engine.begin() as connection:
            rate(connection, 3, 0.5)  # below the old range: the old check is gone
            connection.execute(text("UPDATE ratings SET rating = 4.5 WHERE movie_id = 3"))
        for bad in (4.3, 0, 0.25, 5.5, -1):
            with pytest.raises(DBAPIError), engine.begin() as connection:
                connection.execute(text("UPDATE ratings SET rating = :r WHERE movie_id = 1"), {"r": bad})
        assert ratings() == [(1, 4.0), (2, 1.0), (3, 4.5)]

        with pytest.raises(RuntimeError, match="1 ratings have half stars"):
            command.downgrade(config, "0007")
        assert ratings() == [(1, 4.0), (2, 1.0), (3, 4.5)]  # nothing changed
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM ratings WHERE movie_id = 3"))
        command.downgrade(config, "0007")
        assert ratings() == [(1, 4.0), (2, 1.0)]
        with pytest.raises(DBAPIError), engine.begin() as connection:
            rate(connection, 3, 6)  # whole stars 1-5 are checked again
        command.upgrade(config, "head")
        assert ratings() == [(1, 4.0), (2, 1.0)]
    finally:
        engine.dispose()


def test_optional_demographics_up_down_up(database_factory: DatabaseFactory) -> None:
    """0009 lets a user's demographics be unknown (NULL), still checks the values given, and refuses
    to go back while a user without them exists."""
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    url = database_factory.new_url()
    config = alembic_config(Settings(database_url=url))
    command.upgrade(config, "0008")
    engine = make_engine(url)
    insert = text(
        "INSERT INTO users (id, gender, age, occupation_id, zip_code, ratings_version, created_at)"
        " VALUES (:id, :g, :a, :o, :z, 0, '2026-01-01 00:00:00')"
    )
    try:
        with engine.begin() as connection:
            connection.execute(insert, {"id": 1, "g": "F", "a": 25, "o": 4, "z": "10001"})
        with pytest.raises(DBAPIError), engine.begin() as connection:  # not yet
            connection.execute(insert, {"id": 2, "g": None, "a": None, "o": None, "z": None})
        command.upgrade(config, "head")
        with engine.begin() as connection:
            connection.execute(insert, {"id": 2, "g": None, "a": None, "o": None, "z": None})
        with pytest.raises(DBAPIError), engine.begin() as connection:  # values given are still checked
            connection.execute(insert, {"id": 3, "g": "X", "a": None, "o": None, "z": None})
        with pytest.raises(RuntimeError, match="1 users have unknown demographics"):
            command.downgrade(config, "0008")
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM users WHERE id = 2"))
        command.downgrade(config, "0008")
        command.upgrade(config, "head")
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, gender, age, occupation_id, zip_code FROM users")
            ).all()
        assert [tuple(r) for r in rows] == [(1, "F", 25, 4, "10001")]
    finally:
        engine.dispose()


def test_movie_text_up_down_up(database_factory: DatabaseFactory) -> None:
    """0010 adds a movie's description and its tags in order (going with the movie), keeps the movies
    there were, and refuses to go back while text would be lost."""
    import pytest
    from sqlalchemy import text

    url = database_factory.new_url()
    config = alembic_config(Settings(database_url=url))
    command.upgrade(config, "0009")
    engine = make_engine(url)
    movie = text(
        "INSERT INTO movies (id, title, year, created_at) VALUES (:id, :t, 1999, '2026-01-01 00:00:00')"
    )
    tag = text("INSERT INTO movie_tags (movie_id, position, tag) VALUES (:m, :p, :t)")

    def rows(query: str) -> list[tuple[object, ...]]:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(text(query))]

    def movies() -> list[tuple[object, ...]]:
        return rows("SELECT id, title, year FROM movies ORDER BY id")

    try:
        with engine.begin() as connection:
            connection.execute(movie, [{"id": 1, "t": "Heat"}, {"id": 2, "t": "Café"}])
        command.upgrade(config, "head")
        assert movies() == [(1, "Heat", 1999), (2, "Café", 1999)]
        described = "A thief. " * 400
        with engine.begin() as connection:
            connection.execute(text("UPDATE movies SET description = :d WHERE id = 1"), {"d": described})
            # case and accents are the reader's business: both spellings fit on every backend
            connection.execute(tag, [{"m": 2, "p": 0, "t": "café"}, {"m": 2, "p": 1, "t": "cafe"}])
        assert rows("SELECT description FROM movies WHERE id = 1") == [(described,)]
        assert rows("SELECT tag FROM movie_tags ORDER BY movie_id, position") == [("café",), ("cafe",)]
        with pytest.raises(RuntimeError, match="1 movies have a description and 1 have tags"):
            command.downgrade(config, "0009")
        with engine.begin() as connection:
            connection.execute(text("UPDATE movies SET description = NULL"))
            connection.execute(text("DELETE FROM movies WHERE id = 2"))  # its tags go with it
            assert connection.execute(text("SELECT COUNT(*) FROM movie_tags")).scalar_one() == 0
        command.downgrade(config, "0009")
        assert movies() == [(1, "Heat", 1999)] and "movie_tags" not in _tables(url)
        command.upgrade(config, "head")
        assert movies() == [(1, "Heat", 1999)]
    finally:
        engine.dispose()
