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
    "api_keys", "admin_sessions", "sign_in_failures", "activations",
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
