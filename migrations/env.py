"""Alembic environment: the URL comes from the Alembic configuration, else from movierec's settings."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import JSON
from sqlalchemy.types import TypeEngine

import admin.models
import api.access.models
import api.datasets.models
import api.experiments.models
import api.movies.models
import api.ratings.models
import api.recommend.models
import api.users.models
import api.versions.models
from api.db import Base, make_engine
from api.settings import Settings

# Every table of the product, including the dashboard's: the modules above declare them on Base.
MODEL_MODULES = (admin.models, api.access.models, api.datasets.models, api.movies.models,
                 api.ratings.models, api.recommend.models, api.users.models, api.versions.models)  # fmt: skip

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)
url = config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url


def compare_type(
    _context: object, _inspected: object, _column: object, inspected: TypeEngine, ours: TypeEngine
) -> bool | None:
    """Alembic's type comparison: MariaDB reflects JSON as LONGTEXT, which is no difference."""
    return False if isinstance(ours, JSON) and type(inspected).__name__ in {"LONGTEXT", "JSON"} else None


def include_object(item: object, name: str | None, kind: str, _reflected: bool, _compare_to: object) -> bool:
    """Whether autogenerate compares an object: not the title search's, which migration 0012 makes by
    hand (MySQL's title_words column and its FULLTEXT index, SQLite's FTS5 table and the tables FTS5
    keeps beside it)."""
    return not (
        (kind == "column" and name == "title_words")
        or (kind == "index" and name == "ix_movies_title_words")
        or (kind == "table" and (name or "").startswith("movie_search"))
    )


OPTIONS: dict[str, Any] = {
    "target_metadata": Base.metadata,
    "compare_type": compare_type,
    "include_object": include_object,
}


def run_migrations_online() -> None:
    """Run the migrations in one transaction. On SQLite, with foreign keys unchecked while they run:
    batch mode rebuilds a table by copy, drop and rename, and dropping a table that others reference
    would fail (Alembic's advice); the keys are checked whole before the transaction commits."""
    engine = make_engine(url)
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        context.configure(connection=connection, render_as_batch=sqlite, **OPTIONS)
        raw = connection.connection.driver_connection if sqlite else None
        if raw is not None:  # outside a transaction, where SQLite lets this pragma change
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with context.begin_transaction():
                context.run_migrations()
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all() if raw else []
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=url, literal_binds=True, **OPTIONS)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
